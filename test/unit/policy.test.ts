// The approval policy: parsing (errors name the file, the rule and the field) and decisions.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { CsrObject } from '../../src/kube/csrtypes.js';
import { buildCsrPem, parseCsrPem, type ParsedCsr } from '../../src/pki/csr.js';
import { loadConfig } from '../../src/daemon/config.js';
import { buildIdentity, servingOverrides, usagesFor } from '../../src/node/identity.js';
import { generateKey } from '../../src/pki/keys.js';
import { decide, globMatch, loadPolicy, needsNodes, nodeToLookUp, parsePolicy, policySigners, requesterGroups } from '../../src/approver/policy.js';
import { ROOT, runInProcess, tempDir } from '../support/helpers.js';

const SIGNER = 'kubernetes.io/kube-apiserver-client';
const base = {
  name: 'lb', signerName: SIGNER, requesters: { groups: ['system:bootstrappers:lb'] },
  subject: { commonName: 'haproxy:*', organizations: ['tlsboot:lb'] },
  usages: ['digital signature', 'client auth'], dnsNames: ['*.lb.example.com'], ipAddresses: ['10.0.0.0/24', 'fd00::/64'],
  maxExpirationSeconds: 86400,
};
const policy = parsePolicy({ rules: [base, { ...base, name: 'renewal', requesters: { groups: ['tlsboot:lb'] }, subject: { commonName: '${username}', organizations: ['tlsboot:lb'] } }] }, 'p.yaml');

interface Ask {
  cn?: string;
  orgs?: string[];
  dns?: string[];
  ips?: string[];
  usages?: string[];
  expirationSeconds?: number;
  username?: string;
  groups?: string[];
  signer?: string;
}

async function ask(a: Ask = {}): Promise<{ csr: CsrObject; request: ParsedCsr }> {
  const pem = await buildCsrPem(await generateKey('ecdsa-p256'), {
    subject: { commonName: a.cn ?? 'haproxy:lb1', organizations: a.orgs ?? ['tlsboot:lb'] }, dnsNames: a.dns ?? [], ipAddresses: a.ips ?? [],
  });
  const csr: CsrObject = {
    metadata: { name: 'x', uid: 'u' },
    spec: {
      request: Buffer.from(pem).toString('base64'), signerName: a.signer ?? SIGNER, usages: a.usages ?? ['digital signature', 'client auth'],
      username: a.username ?? 'system:bootstrap:abcdef', groups: a.groups ?? ['system:bootstrappers', 'system:bootstrappers:lb', 'system:authenticated'],
      expirationSeconds: 'expirationSeconds' in a ? a.expirationSeconds! : 3600,
    },
  };
  if (a.expirationSeconds === undefined && 'expirationSeconds' in a) delete csr.spec.expirationSeconds;
  return { csr, request: await parseCsrPem(pem) };
}

const verdict = async (a: Ask): Promise<string> => {
  const { csr, request } = await ask(a);
  const d = decide(policy, csr, request);
  return `${d.action}${d.rule ? ` ${d.rule}` : ''}: ${d.message}`;
};

t.test('decisions', async (t) => {
  t.equal(await verdict({}), 'approve lb: approved by tlsboot policy rule "lb"');
  t.equal(await verdict({ dns: ['a.lb.example.com'], ips: ['10.0.0.7', 'fd00::7'] }), 'approve lb: approved by tlsboot policy rule "lb"');
  t.equal(await verdict({ orgs: [] }), 'approve lb: approved by tlsboot policy rule "lb"', 'no O at all is fine');
  const denied: Array<[Ask, string]> = [
    [{ cn: 'admin' }, 'subject CN "admin" does not match "haproxy:*"'],
    [{ orgs: ['system:masters'] }, 'subject O "system:masters" is not allowed (allowed: tlsboot:lb)'],
    [{ usages: ['digital signature', 'server auth'] }, 'usage "server auth" is not allowed (allowed: digital signature, client auth)'],
    [{ dns: ['evil.example.com'] }, 'DNS name "evil.example.com" is not allowed (allowed: *.lb.example.com)'],
    [{ ips: ['10.0.1.1'] }, 'IP address 10.0.1.1 is not allowed (allowed: 10.0.0.0/24, fd00::/64)'],
    [{ ips: ['fd01::1'] }, 'IP address fd01::1 is not allowed (allowed: 10.0.0.0/24, fd00::/64)'],
    [{ expirationSeconds: 86401 }, 'spec.expirationSeconds 86401 is more than 86400'],
    [{ expirationSeconds: undefined }, 'spec.expirationSeconds is not set; ask for at most 86400'],
  ];
  for (const [a, why] of denied) t.equal(await verdict(a), `deny lb: tlsboot policy: rule "lb": ${why}`, why);
  t.match(await verdict({ cn: 'admin', orgs: ['system:masters'] }), /does not match "haproxy:\*"; subject O "system:masters"/, 'every violation is listed');

  t.equal(await verdict({ groups: ['system:bootstrappers:other'] }), 'ignore: no rule for signer kubernetes.io/kube-apiserver-client and requester system:bootstrap:abcdef');
  t.match(await verdict({ signer: 'kubernetes.io/kube-apiserver-client-kubelet' }), /^ignore: no rule for signer kubernetes.io\/kube-apiserver-client-kubelet/);

  // Renewal: the CN must be the requester's own name.
  const renew = { username: 'haproxy:lb1', groups: ['tlsboot:lb', 'system:authenticated'] };
  t.equal(await verdict({ ...renew, cn: 'haproxy:lb1' }), 'approve renewal: approved by tlsboot policy rule "renewal"');
  t.equal(await verdict({ ...renew, cn: 'haproxy:lb2' }), 'deny renewal: tlsboot policy: rule "renewal": subject CN "haproxy:lb2" does not match "haproxy:lb1"');
});

t.test('several rules in scope: any may approve; denial names every rule; onViolation: ignore', async (t) => {
  const two = parsePolicy({ rules: [
    { ...base, name: 'a', subject: { commonName: 'haproxy:a', organizations: [] }, onViolation: 'ignore' },
    { ...base, name: 'b', subject: { commonName: 'haproxy:b', organizations: ['tlsboot:lb'] } },
  ] }, 'two.yaml');
  const run = async (cn: string): Promise<string> => {
    const { csr, request } = await ask({ cn });
    const d = decide(two, csr, request);
    return `${d.action} ${d.rule}: ${d.message}`;
  };
  t.equal(await run('haproxy:b'), 'approve b: approved by tlsboot policy rule "b"');
  t.equal(await run('haproxy:c'), 'deny b: tlsboot policy: rule "a": subject CN "haproxy:c" does not match "haproxy:a"; subject O "tlsboot:lb" is not allowed (the rule allows none) | rule "b": subject CN "haproxy:c" does not match "haproxy:b"');
  const lenient = parsePolicy({ rules: [{ ...base, onViolation: 'ignore' }] }, 'l.yaml');
  const { csr, request } = await ask({ cn: 'root' });
  t.equal(decide(lenient, csr, request).action, 'ignore');
});

t.test('a request that does not parse or is not signed by its key is denied', async (t) => {
  const { csr, request } = await ask({});
  t.match(decide(policy, csr, undefined).message, 'spec.request is not a PKCS#10 certificate request');
  t.match(decide(policy, csr, { ...request, signatureValid: false }).message, 'spec.request is not signed by its own key');
  t.match(decide(policy, csr, { ...request, otherNames: ['email:a@b'] }).message, 'subject alternative name email:a@b is not allowed');
});

t.test('patterns', async (t) => {
  t.ok(globMatch('haproxy:*', 'haproxy:lb1'));
  t.ok(globMatch('*', ''));
  t.notOk(globMatch('haproxy:*', 'xhaproxy:lb1'));
  t.notOk(globMatch('a.b', 'axb'), 'dots are literal');
  t.ok(globMatch('${username}', 'haproxy:lb1', 'haproxy:lb1'));
  t.notOk(globMatch('${username}', 'haproxy:*', 'haproxy:lb1'));
  t.notOk(globMatch('${username}', 'a.b', 'a*b'), 'the user name is literal, not a pattern');
  t.ok(globMatch('node-${username}-*', 'node-x-1', 'x'));
});

t.test('signers and requester groups for the RBAC', async (t) => {
  t.same(policySigners(policy), [SIGNER]);
  t.same(requesterGroups(policy), ['system:bootstrappers:lb', 'tlsboot:lb']);
  t.same(requesterGroups(parsePolicy({ rules: [{ ...base, requesters: { groups: ['team:*'], users: ['u'] } }] }, 'x')), [], 'no wildcards, no users');
});

t.test('the shipped example policy approves the shipped haproxy identity, first and on renewal', async (t) => {
  const p = await loadPolicy(path.join(ROOT, 'examples', 'approver', 'policy.yaml'));
  t.same(p.rules.map((r) => r.name), ['lb-bootstrap', 'lb-renewal']);
  const cfg = await loadConfig(path.join(ROOT, 'examples', 'approver', 'haproxy.yaml'), { CREDENTIALS_DIRECTORY: '/run/x' });
  const id = cfg.identities[0]!.identity;
  const a = { cn: id.subject.commonName, orgs: id.subject.organizations, usages: usagesFor(id, false, 'bootstrap'), expirationSeconds: id.expirationSeconds!, signer: id.signerName };
  const first = await ask({ ...a, username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:bootstrappers:lb'] });
  t.same(decide(p, first.csr, first.request), { action: 'approve', rule: 'lb-bootstrap', message: 'approved by tlsboot policy rule "lb-bootstrap"' });
  const renewal = await ask({ ...a, username: id.subject.commonName, groups: id.subject.organizations });
  t.equal(decide(p, renewal.csr, renewal.request).rule, 'lb-renewal');
  t.equal(decide(p, renewal.csr, renewal.request).action, 'approve');
});

t.test('policy errors name the file, the rule and the field', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [[], /^p.yaml the policy file must be a mapping with "rules"$/],
    [{ rules: [] }, /^p.yaml: rules must be a non-empty list$/],
    [{ rules: [base], extra: 1 }, /^p.yaml: unknown key "extra"/],
    [{ rules: [{ ...base, name: 'Bad Name' }] }, /rules\[0\] \(Bad Name\).name is required/],
    [{ rules: [{ ...base, signerName: 'nope' }] }, /rules\[0\] \(lb\).signerName is required, e.g. kubernetes.io\/kube-apiserver-client/],
    [{ rules: [{ ...base, requesters: undefined }] }, /rules\[0\] \(lb\).requesters is required/],
    [{ rules: [{ ...base, requesters: {} }] }, /requesters must name at least one user or group/],
    [{ rules: [{ ...base, requesters: { groups: ['system:authenticated'] } }] }, /would let anyone with a login ask/],
    [{ rules: [{ ...base, subject: { organizations: [] } }] }, /subject.commonName is required/],
    [{ rules: [{ ...base, usages: ['client auth', 'fly'] }] }, /usages: "fly" is not a known usage/],
    [{ rules: [{ ...base, ipAddresses: ['10.0.0.0/33'] }] }, /ipAddresses: "10.0.0.0\/33" is not an IP address or CIDR/],
    [{ rules: [{ ...base, ipAddresses: ['host'] }] }, /ipAddresses: "host" is not an IP address or CIDR/],
    [{ rules: [{ ...base, maxExpirationSeconds: 10 }] }, /maxExpirationSeconds must be a whole number of at least 600/],
    [{ rules: [{ ...base, onViolation: 'explode' }] }, /onViolation must be deny or ignore/],
    [{ rules: [{ ...base, dnsNames: 'a' }] }, /dnsNames must be a list of strings/],
    [{ rules: [base, base] }, /the name "lb" is used twice/],
    [{ rules: [{ ...base, sign: true }] }, /rules\[0\] \(lb\): unknown key "sign"/],
  ];
  for (const [doc, re] of bad) t.throws(() => parsePolicy(doc, 'p.yaml'), re, String(re));
});

t.test('tlsboot approve: a bad policy or a missing flag is a one-line error with exit 2', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'policy.yaml');
  await fs.writeFile(file, 'rules:\n  - name: x\n');
  const r = await runInProcess(['approve', '--kubeconfig', '/nonexistent', '--policy', file]);
  t.equal(r.code, 2);
  t.match(r.stderr, `${file}: rules[0] (x).signerName is required`);
  t.equal(r.stderr.trim().split('\n').length, 1);
  const missing = await runInProcess(['approve', '--policy', file]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /Missing required argument: kubeconfig/);
  const noFile = await runInProcess(['approve', '--kubeconfig', '/nonexistent', '--policy', path.join(dir, 'none.yaml')]);
  t.match(noFile.stderr, /none.yaml: policy file not found/);
  await fs.writeFile(file, 'rules: [');
  t.match((await runInProcess(['approve', '--kubeconfig', '/nonexistent', '--policy', file])).stderr, /policy.yaml: not valid YAML/);
});

t.test('kubelet serving: ${nodeName}, dnsNameRegex, maxSubjectAltNames, nodeAddresses', async (t) => {
  const SERVING = 'kubernetes.io/kubelet-serving';
  const rule = {
    name: 'serving', signerName: SERVING, requesters: { groups: ['system:nodes'] },
    subject: { commonName: '${username}', organizations: ['system:nodes'] }, usages: ['digital signature', 'server auth'],
    dnsNames: ['${nodeName}'], dnsNameRegex: '[a-z0-9-]+\\.nodes\\.example\\.com', ipAddresses: ['10.0.0.0/8', 'fd00::/8'], maxSubjectAltNames: 3,
  };
  const p = parsePolicy({ rules: [rule] }, 's.yaml');
  const node = { username: 'system:node:srv1', groups: ['system:nodes', 'system:authenticated'], cn: 'system:node:srv1', orgs: ['system:nodes'], usages: ['digital signature', 'server auth'], signer: SERVING };
  const run = async (a: Ask, pol = p, facts = {}): Promise<string> => {
    const { csr, request } = await ask(a);
    const d = decide(pol, csr, request, facts);
    return `${d.action}: ${d.message}`;
  };
  t.equal(await run({ ...node, dns: ['srv1', 'srv1.nodes.example.com'], ips: ['10.1.2.3'] }), 'approve: approved by tlsboot policy rule "serving"');
  t.match(await run({ ...node, dns: ['srv2'] }), /DNS name "srv2" is not allowed \(allowed: \$\{nodeName\}, \/\^\(\?:\[a-z0-9-\]\+\\.nodes\\.example\\.com\)\$\/\)/, 'another node\'s name');
  t.match(await run({ ...node, dns: ['x.nodes.example.com.evil.org'] }), /DNS name "x.nodes.example.com.evil.org" is not allowed/, 'the regex is anchored');
  t.match(await run({ ...node, dns: ['srv1', 'a.nodes.example.com'], ips: ['10.0.0.1', '10.0.0.2'] }), /4 subject alternative names are more than 3/);
  t.match(await run({ ...node, username: 'haproxy:lb1', groups: ['system:nodes'], dns: ['srv1'] }), /DNS name "srv1" is not allowed/, '${nodeName} matches nothing for a requester that is not a node');

  const checked = parsePolicy({ rules: [{ ...rule, nodeAddresses: true }] }, 's.yaml');
  t.equal(nodeToLookUp(checked, (await ask({ ...node })).csr), 'srv1');
  t.equal(nodeToLookUp(p, (await ask({ ...node })).csr), undefined, 'no lookup without nodeAddresses');
  t.ok(needsNodes(checked));
  t.notOk(needsNodes(p));
  const asked = { ...node, dns: ['srv1'], ips: ['10.1.2.3', 'fd00::0:1'] };
  t.equal(await run(asked, checked, { nodeAddresses: ['10.1.2.3', 'SRV1', 'fd00::1'] }), 'approve: approved by tlsboot policy rule "serving"', 'IPv6 and names compared in one spelling');
  t.match(await run(asked, checked, { nodeAddresses: ['10.1.2.3', 'srv1'] }), /fd00::1 is not among Node srv1's addresses \(10.1.2.3, srv1\)/);
  t.match(await run(asked, checked, { nodeAddresses: null }), /Node "srv1" does not exist, so its addresses cannot be checked/);
  t.match(await run({ ...asked, username: 'haproxy:lb1' }, checked, {}), /the requester "haproxy:lb1" is not a node/);

  const bad: Array<[unknown, RegExp]> = [
    [{ ...rule, dnsNameRegex: '([' }, /rules\[0\] \(serving\).dnsNameRegex is not a valid regular expression/],
    [{ ...rule, dnsNameRegex: 7 }, /dnsNameRegex must be a regular expression/],
    [{ ...rule, maxSubjectAltNames: -1 }, /maxSubjectAltNames must be a whole number/],
    [{ ...rule, nodeAddresses: 'yes' }, /nodeAddresses must be true or false/],
  ];
  for (const [r, re] of bad) t.throws(() => parsePolicy({ rules: [r] }, 's.yaml'), re, String(re));
});

t.test('the shipped kubelet-serving policy approves the serving preset of tlsboot run', async (t) => {
  const p = await loadPolicy(path.join(ROOT, 'examples', 'approver', 'kubelet-serving.yaml'));
  const cfg = await loadConfig(path.join(ROOT, 'examples', 'kubelet', 'serving.yaml'), { CREDENTIALS_DIRECTORY: '/run/x' });
  const serving = cfg.identities.find((i) => i.serving)!;
  const id = buildIdentity('srv1', servingOverrides('srv1', { dnsNames: ['srv1', 'srv1.nodes.example.com'], ipAddresses: ['10.0.0.5'] }));
  t.equal(serving.identity.signerName, id.signerName);
  const a = { cn: id.subject.commonName, orgs: id.subject.organizations, usages: usagesFor(id, false, 'rotation'), signer: id.signerName, dns: id.dnsNames, ips: id.ipAddresses, username: 'system:node:srv1', groups: ['system:nodes', 'system:authenticated'] };
  const ok = await ask(a);
  t.equal(decide(p, ok.csr, ok.request).action, 'approve');
  const far = await ask({ ...a, ips: ['203.0.113.9'] });
  t.match(decide(p, far.csr, far.request).message, /IP address 203.0.113.9 is not allowed/);
});
