// Fuzz targets: every parser of untrusted input, fed mutated copies of valid inputs that hold a
// known bootstrap token and private key. A target passes an input when the parser either
// accepts it or throws a TlsbootError (typed, with an exit code) whose printed form holds neither
// secret, within a time bound. Anything else (a TypeError, a library's own error, a hang, a leak)
// is a failure that fast-check shrinks and reports with its seed.
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { ApiClient } from '../../src/kube/api.js';
import { type CsrObject } from '../../src/kube/csrtypes.js';
import { checkIssued, parseChain } from '../../src/pki/certs.js';
import { parseConfig } from '../../src/daemon/config.js';
import { buildCsrPem, parseCsrPem } from '../../src/pki/csr.js';
import { checkCsr } from '../../src/kube/csrschema.js';
import { certificateOf } from '../../src/kube/csrwait.js';
import { TlsbootError, errorMessage } from '../../src/base/errors.js';
import { generateKey, spkiDer } from '../../src/pki/keys.js';
import { parseKubeconfig } from '../../src/kube/kubeconfig.js';
import { redact } from '../../src/base/log.js';
import { decide, parsePolicy } from '../../src/approver/policy.js';
import { parseYamlText } from '../../src/base/yamlfields.js';
import { FakeApiServer } from '../support/fakeapi.js';
import { ROOT } from '../support/helpers.js';

export const TOKEN = 'abcdef.0123456789abcdef';
const SECRET = TOKEN.split('.')[1]!;
/** One case may take this long; far more than any parse needs, far less than a hang. */
const CASE_MS = 2000;

export interface Outcome {
  failed: boolean;
  numRuns: number;
  seed: number;
  /** fast-check's report: the shrunk input, its path, the error. */
  report: string;
}

export interface Target {
  name: string;
  run(numRuns: number, seed: number): Promise<Outcome>;
}

function target<T>(name: string, inputs: fc.Arbitrary<T>, parse: (input: T) => Promise<unknown>): Target {
  const property = fc.asyncProperty(inputs, (input) => mustBeTyped(() => parse(input)));
  return {
    name,
    run: async (numRuns, seed) => {
      const details = await fc.check(property, { numRuns, seed });
      return { failed: details.failed, numRuns: details.numRuns, seed: details.seed, report: details.failed ? `${errorMessage(details.errorInstance)}\n${fc.defaultReportMessage(details) ?? ''}` : '' };
    },
  };
}

/** Fragments of the private key that must never be printed. */
let keyFragments: string[] = [];
/** Process warnings (a YAML tag, say) raised by the current case: printed too, so checked too. */
const warnings: string[] = [];

function mustNotLeak(printed: string, what: string): void {
  if (printed.includes(SECRET)) throw new Error(`the token secret leaks into ${what}: ${printed}`);
  if (keyFragments.some((f) => printed.includes(f))) throw new Error(`private key material leaks into ${what}: ${printed}`);
}

/** The check every target shares: typed or accepted, no secret in what is printed, in time. */
async function mustBeTyped(run: () => Promise<unknown>): Promise<void> {
  const started = Date.now();
  warnings.length = 0;
  try {
    await run();
  } catch (err) {
    if (!(err instanceof TlsbootError)) throw new Error(`untyped exception ${(err as Error)?.name ?? typeof err}: ${errorMessage(err)}`);
    mustNotLeak(redact(err.message), 'the error');
  }
  await new Promise((r) => setImmediate(r)); // process warnings are emitted on the next tick
  for (const w of warnings) mustNotLeak(w, 'a warning');
  const took = Date.now() - started;
  if (took > CASE_MS) throw new Error(`one case took ${took} ms`);
}

/** Text edits that break YAML, PEM and JSON in the ways people and bugs do. */
const SPECIALS = [
  '!secret ', '!!binary ', '&a ', '*a', '<<: *a', '{', '}', '[', ']', ': ', '- ', '"', "'", '\\', '\n', '\t', '\0', '\u0001',
  '\u202e', '\ufeff', '~', 'null', '1e999', '-1', '0x10', 'true', '---\n', '%YAML 1.1\n', '-----BEGIN CERTIFICATE-----\n',
  '-----END CERTIFICATE-----\n', '=', 'A'.repeat(4096), TOKEN, `token: ${TOKEN}\n`,
];
const edit = fc.record({
  kind: fc.constantFrom('insert', 'delete', 'replace', 'duplicate'),
  at: fc.nat(),
  length: fc.nat({ max: 64 }),
  text: fc.oneof(fc.constantFrom(...SPECIALS), fc.string({ maxLength: 16 }), fc.string({ unit: 'binary', maxLength: 8 })),
});

export function mutatedText(seed: string): fc.Arbitrary<string> {
  return fc.array(edit, { minLength: 1, maxLength: 6 }).map((edits) => {
    let s = seed;
    for (const e of edits) {
      const at = s.length === 0 ? 0 : e.at % s.length;
      if (e.kind === 'insert') s = s.slice(0, at) + e.text + s.slice(at);
      else if (e.kind === 'delete') s = s.slice(0, at) + s.slice(at + e.length);
      else if (e.kind === 'replace') s = s.slice(0, at) + e.text + s.slice(at + e.length);
      else s = s.slice(0, at) + s.slice(at, at + e.length).repeat(2) + s.slice(at + e.length);
    }
    return s;
  });
}

/** A PEM whose DER has bytes flipped, cut or added: what a parser of certificates meets. */
function mutatedDer(pem: string): fc.Arbitrary<string> {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
  const byteEdit = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom('set', 'cut', 'insert') });
  return fc.array(byteEdit, { minLength: 1, maxLength: 8 }).map((edits) => {
    let b = Buffer.from(der);
    for (const e of edits) {
      const at = e.at % Math.max(1, b.length);
      if (e.kind === 'set' && b.length > 0) b[at] = e.value;
      else if (e.kind === 'cut') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + (e.value % 64))]);
      else b = Buffer.concat([b.subarray(0, at), Buffer.from([e.value]), b.subarray(at)]);
    }
    return `-----BEGIN CERTIFICATE-----\n${b.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
  });
}

/** A JSON value with one or more of its fields replaced by arbitrary JSON, or removed. */
function mutatedJson(seed: unknown): fc.Arbitrary<unknown> {
  const paths: string[][] = [];
  const walk = (v: unknown, p: string[]): void => {
    paths.push(p);
    if (typeof v === 'object' && v !== null) for (const [k, c] of Object.entries(v)) walk(c, [...p, k]);
  };
  walk(seed, []);
  const change = fc.record({ path: fc.constantFrom(...paths), value: fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant(undefined)) });
  return fc.array(change, { minLength: 1, maxLength: 4 }).map((changes) => {
    let out: unknown = structuredClone(seed);
    for (const { path: p, value } of changes) {
      if (p.length === 0) {
        out = value;
        continue;
      }
      let node: unknown = out;
      for (const k of p.slice(0, -1)) node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[k] : undefined;
      if (typeof node === 'object' && node !== null) (node as Record<string, unknown>)[p[p.length - 1]!] = value;
    }
    return out;
  });
}

/** Valid inputs to mutate, with a real key, certificate and CA; and the HTTP server for watches. */
export async function makeTargets(): Promise<{ targets: Target[]; close: () => Promise<void> }> {
  // As the CLI does (routeProcessWarnings): warnings are logged one line each, redacted.
  process.removeAllListeners('warning');
  process.on('warning', (w) => warnings.push(redact(w.message)));
  const fake = await FakeApiServer.start();
  const client = await fake.issueClientCert('system:node:fuzz', ['system:nodes']);
  await fake.stop();
  keyFragments = client.keyPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '').match(/.{24}/g) ?? [];
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const kubeconfig = [
    'apiVersion: v1', 'kind: Config', 'clusters:', '- name: c', '  cluster:', '    server: https://127.0.0.1:6443',
    `    certificate-authority-data: ${b64(fake.caPem)}`, '    tls-server-name: kubernetes',
    'users:', '- name: u', '  user:', `    token: ${TOKEN}`, `    client-certificate-data: ${b64(client.certPem)}`, `    client-key-data: ${b64(client.keyPem)}`,
    'contexts:', '- name: x', '  context: {cluster: c, user: u}', 'current-context: x', '',
  ].join('\n');
  const configText = await fs.readFile(path.join(ROOT, 'examples/haproxy/haproxy.yaml'), 'utf8');
  const policyText = await fs.readFile(path.join(ROOT, 'examples/approver/policy.yaml'), 'utf8');
  const policy = parsePolicy(parseYamlText(policyText, 'policy.yaml'), 'policy.yaml');
  const key = await generateKey('ecdsa-p256');
  const subject = { commonName: 'haproxy:lb1', organizations: ['tlsboot:lb'] };
  const request = await buildCsrPem(key, { subject, dnsNames: ['lb1.example.test'], ipAddresses: ['10.0.0.1'] });
  const csr: CsrObject = {
    apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest',
    metadata: { name: 'csr-fuzz', uid: 'u1', resourceVersion: '7', creationTimestamp: '2026-12-01T00:00:00Z' },
    spec: { request: b64(request), signerName: 'kubernetes.io/kube-apiserver-client', usages: ['digital signature', 'client auth'], expirationSeconds: 86400,
      username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:bootstrappers:lb'] },
    status: { conditions: [{ type: 'Approved', status: 'True', reason: 'AutoApproved' }], certificate: b64(client.certPem + fake.caPem) },
  };
  const expect = { csrName: 'csr-fuzz', spki: spkiDer(key), subject, usages: ['digital signature', 'client auth'] };
  const events = [
    { type: 'ADDED', object: { ...csr, status: {} } }, { type: 'BOOKMARK', object: { metadata: { resourceVersion: '8' } } }, { type: 'MODIFIED', object: csr },
  ].map((e) => JSON.stringify(e)).join('\n') + '\n';

  // The watch stream: each request is answered with the body the current case set.
  let body = '';
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const api = new ApiClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, credentials: { kind: 'token', token: TOKEN }, requestTimeoutMs: CASE_MS });

  const env = { CREDENTIALS_DIRECTORY: '/run/credentials/tlsboot@haproxy.service' };
  const jsonOrText = (s: string): unknown => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      return s;
    }
  };
  // cluster-info as a man in the middle may serve it: a ConfigMap, signed for the token.
  const { detachedJws, parseClusterInfo, renderClusterInfoKubeconfig, verifyClusterInfo } = await import('../../src/kube/clusterinfo.js');
  const { checkNodeAddresses } = await import('../../src/kube/csrschema.js');
  const infoKubeconfig = renderClusterInfoKubeconfig('https://127.0.0.1:6443', [fake.caPem, client.certPem]);
  const clusterInfo = { kind: 'ConfigMap', data: { kubeconfig: infoKubeconfig, 'jws-kubeconfig-abcdef': detachedJws(infoKubeconfig, 'abcdef', SECRET) } };
  const node = { kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }, { type: 'Hostname', address: 'n1' }] } };
  const targets: Target[] = [
    target('kubeconfig', mutatedText(kubeconfig), (input) => parseKubeconfig(input, 'bootstrap.kubeconfig')),
    target('config file', mutatedText(configText), async (input) => parseConfig(parseYamlText(input, 'config.yaml'), '/etc/tlsboot/config.yaml', env)),
    target('policy file', mutatedText(policyText), async (input) => parsePolicy(parseYamlText(input, 'policy.yaml'), 'policy.yaml')),
    target('PEM chain from the API', fc.oneof(mutatedDer(client.certPem), mutatedText(client.certPem + fake.caPem)), async (input) => {
      parseChain(input);
      return checkIssued(input, expect, new Date());
    }),
    target('CSR object (the approver)', fc.oneof(mutatedJson(csr), mutatedText(JSON.stringify(csr)).map(jsonOrText)), async (input) => {
      const obj = checkCsr(input, 'fuzz');
      const parsed = await parseCsrPem(Buffer.from(obj.spec.request, 'base64').toString('utf8')).catch(() => undefined);
      return decide(policy, obj, parsed);
    }),
    target('cluster-info (discovery)', fc.oneof(mutatedJson(clusterInfo), mutatedText(JSON.stringify(clusterInfo)).map(jsonOrText)), async (input) => {
      const info = parseClusterInfo(input, 'cluster-info');
      verifyClusterInfo(info, TOKEN, 'cluster-info');
      return info.caPems.map((pem) => parseChain(pem));
    }),
    target('Node addresses (the approver)', mutatedJson(node), async (input) => checkNodeAddresses(input, 'node')),
    target('watch event stream', mutatedText(events), async (input) => {
      body = input;
      for await (const ev of api.watchCsr('csr-fuzz', '7', AbortSignal.timeout(CASE_MS))) {
        if (ev.type !== 'ADDED' && ev.type !== 'MODIFIED') continue;
        const chain = certificateOf(ev.object);
        if (chain !== undefined) checkIssued(chain, expect, new Date());
      }
    }),
  ];
  return {
    targets,
    close: async () => {
      await api.close();
      await new Promise((r) => server.close(r));
    },
  };
}
