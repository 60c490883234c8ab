// An in-process fake of the parts of kube-apiserver + kube-controller-manager that tlsboot
// talks to, for fast tests and fault injection. It follows the real API: paths under
// /apis/certificates.k8s.io/v1/certificatesigningrequests, bearer-token and client-cert
// authentication, Status bodies with the real codes and reasons, resourceVersions, watch event
// streams (410 as an ERROR event), and the controller-manager's approver and signer rules
// (kubelet-behaviour.md 4.2-4.5). Scenarios live in the tests, not here; every behaviour faked
// here is also exercised against the real control plane in test/e2e.
import { randomBytes, randomUUID, webcrypto } from 'node:crypto';
import { promises as fs } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { CsrCondition, CsrObject } from '../../src/kube/csrtypes.js';
import { parseCsrPem } from '../../src/pki/csr.js';
import { x509 } from '../../src/pki/x509.js';

export interface FakeUser {
  username: string;
  groups: string[];
}

export interface FakeApiOptions {
  /** Bearer tokens the server accepts. */
  tokens?: Record<string, FakeUser>;
  /** Groups whose kubelet-client CSRs the approver approves (the nodeclient SAR). */
  nodeClientGroups?: string[];
  /** Run the approver (csrapproving). Default true. */
  autoApprove?: boolean;
  /** Run the signer (csrsigning). Default true. */
  sign?: boolean;
  /** --cluster-signing-duration in seconds (default 8760h). */
  signingDurationSeconds?: number;
  port?: number;
}

export const DEFAULT_BOOTSTRAP_GROUP = 'system:bootstrappers:kubeadm:default-node-token';
const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const KUBELET_CLIENT = 'kubernetes.io/kube-apiserver-client-kubelet';
const SIGNERS = new Set([KUBELET_CLIENT, 'kubernetes.io/kube-apiserver-client', 'kubernetes.io/kubelet-serving']);
const KNOWN_USAGES = new Set([
  'signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement', 'data encipherment',
  'cert sign', 'crl sign', 'encipher only', 'decipher only', 'any', 'server auth', 'client auth', 'code signing',
  'email protection', 's/mime', 'ipsec end system', 'ipsec tunnel', 'ipsec user', 'timestamping', 'ocsp signing',
  'microsoft sgc', 'netscape sgc',
]);

interface Watcher {
  name: string | undefined;
  res: ServerResponse;
  sent: number;
}

interface Keys {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

const EC: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' };

export class FakeApiServer {
  readonly dir: string;
  readonly caPem: string;
  readonly caPath: string;
  port = 0;
  readonly csrs = new Map<string, CsrObject>();
  readonly requests: Array<{ method: string; path: string; user: string; at: number }> = [];
  /** Creates held this long before they are answered (to see how many a client sends at once). */
  createDelayMs = 0;
  /** The most creates that were in flight at once. */
  peakCreates = 0;
  private creating = 0;
  /** Replace what the signer issues (fault injection: a cert for someone else's key). */
  issueHook: ((csr: CsrObject, certPem: string) => Promise<string>) | undefined;

  private readonly opts: FakeApiOptions;
  private readonly caKeys: Keys;
  private readonly caCert: x509.X509Certificate;
  private readonly serving: { cert: string; key: string };
  private server: https.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<Watcher>();
  private rv = 100;
  private compactedRv = 0;
  private readonly history: Array<{ rv: number; type: string; object: CsrObject }> = [];
  private failures: Array<{ status: number; method?: string; retryAfter?: number }> = [];

  private constructor(dir: string, opts: FakeApiOptions, ca: { keys: Keys; cert: x509.X509Certificate }, serving: { cert: string; key: string }) {
    this.dir = dir;
    this.opts = opts;
    this.caKeys = ca.keys;
    this.caCert = ca.cert;
    this.caPem = ca.cert.toString('pem') + '\n';
    this.caPath = path.join(dir, 'ca.crt');
    this.serving = serving;
  }

  static async start(opts: FakeApiOptions = {}): Promise<FakeApiServer> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlsboot-fake-'));
    const caKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as Keys;
    const caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01', name: 'CN=fake-kubernetes-ca', keys: caKeys, signingAlgorithm: SIGN_ALG,
      notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() + 10 * 365 * 86400_000),
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const servingKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as Keys;
    const servingCert = await x509.X509CertificateGenerator.create({
      serialNumber: '02', subject: 'CN=kube-apiserver', issuer: caCert.subject, publicKey: servingKeys.publicKey,
      signingKey: caKeys.privateKey, signingAlgorithm: SIGN_ALG,
      notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() + 365 * 86400_000),
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }, { type: 'ip', value: '::1' }, { type: 'dns', value: 'localhost' }]),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      ],
    });
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', servingKeys.privateKey);
    const serving = { cert: servingCert.toString('pem'), key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
    const fake = new FakeApiServer(dir, opts, { keys: caKeys, cert: caCert }, serving);
    await fs.writeFile(fake.caPath, fake.caPem);
    await fake.listen(opts.port ?? 0);
    return fake;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** Issue a client certificate from the cluster CA directly (for users the tests need). */
  async issueClientCert(cn: string, orgs: string[], lifetimeMs = 3600_000, notBefore = new Date(Date.now() - 60_000)): Promise<{ certPem: string; keyPem: string }> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as Keys;
    const cert = await this.signFor(keys.publicKey, cn, orgs, ['digital signature', 'client auth'], notBefore, new Date(notBefore.getTime() + lifetimeMs));
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    return { certPem: cert.toString('pem') + '\n', keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n' };
  }

  async writeBootstrapKubeconfig(file: string, token: string, opts: { caAsPath?: boolean; tokenFile?: boolean } = {}): Promise<string> {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const ca = opts.caAsPath ? `    certificate-authority: ${this.caPath}` : `    certificate-authority-data: ${Buffer.from(this.caPem).toString('base64')}`;
    let user = `    token: ${token}`;
    if (opts.tokenFile) {
      await fs.writeFile(file + '.token', token + '\n', { mode: 0o600 });
      user = `    tokenFile: ${path.basename(file)}.token`;
    }
    await fs.writeFile(file, [
      'apiVersion: v1', 'kind: Config', 'clusters:', '- name: fake', '  cluster:', `    server: ${this.url}`, ca,
      'users:', '- name: bootstrap', '  user:', user,
      'contexts:', '- name: bootstrap', '  context: {cluster: fake, user: bootstrap}', 'current-context: bootstrap', '',
    ].join('\n'), { mode: 0o600 });
    return file;
  }

  // ---- fault injection and manual approval ----------------------------------------------

  /** The next `count` CSR API requests (optionally only of this method) answer `status`, with Retry-After seconds if given. */
  failNext(count: number, status: number, method?: string, retryAfter?: number): void {
    for (let i = 0; i < count; i++) this.failures.push({ status, ...(method ? { method } : {}), ...(retryAfter !== undefined ? { retryAfter } : {}) });
  }

  approve(name: string): void {
    this.addCondition(name, { type: 'Approved', status: 'True', reason: 'KubectlApprove', message: 'This CSR was approved by kubectl certificate approve.' });
  }

  deny(name: string, reason = 'KubectlDeny', message = 'This CSR was denied by kubectl certificate deny.'): void {
    this.addCondition(name, { type: 'Denied', status: 'True', reason, message });
  }

  fail(name: string, reason: string, message: string): void {
    this.addCondition(name, { type: 'Failed', status: 'True', reason, message });
  }

  deleteCsr(name: string): void {
    const obj = this.csrs.get(name);
    if (!obj) return;
    this.csrs.delete(name);
    this.record('DELETED', obj);
  }

  /** End every watch stream cleanly, as the server does at timeoutSeconds. */
  endWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Cut every watch connection, as a network failure would. */
  dropWatches(): void {
    for (const w of this.watchers) w.res.socket?.destroy();
    this.watchers.clear();
  }

  /**
   * Other writes happened and etcd compacted past them: watches from any resourceVersion seen
   * so far get 410 Gone.
   */
  compact(): void {
    this.rv++;
    this.compactedRv = this.rv;
    this.history.length = 0;
  }

  watcherCount(): number {
    return this.watchers.size;
  }

  /** Stop listening and cut all connections (server down). */
  async down(): Promise<void> {
    const srv = this.server;
    this.server = undefined;
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
    if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
  }

  /** Listen again on the same port. */
  async up(): Promise<void> {
    await this.listen(this.port);
  }

  async stop(): Promise<void> {
    await this.down();
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  // ---- HTTP ------------------------------------------------------------------------------

  private async listen(port: number): Promise<void> {
    const srv = https.createServer({ cert: this.serving.cert, key: this.serving.key, ca: this.caPem, requestCert: true, rejectUnauthorized: false },
      (req, res) => {
        this.handle(req, res).catch((err: Error) => {
          if (!res.headersSent) this.status(res, 500, 'InternalError', err.message);
        });
      });
    srv.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    srv.on('secureConnection', (s: TLSSocket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
    });
    const addr = srv.address();
    this.port = typeof addr === 'object' && addr ? addr.port : port;
    this.server = srv;
  }

  private authenticate(req: IncomingMessage): FakeUser | 'unauthorized' | undefined {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      const user = this.opts.tokens?.[auth.slice(7)];
      return user ? { username: user.username, groups: [...user.groups, 'system:authenticated'] } : 'unauthorized';
    }
    const sock = req.socket as TLSSocket;
    const peer = sock.getPeerCertificate();
    if (peer && Object.keys(peer).length > 0) {
      if (!sock.authorized) return 'unauthorized'; // untrusted or expired client certificate
      const subj = peer.subject as unknown as Record<string, string | string[]>;
      const orgs = subj['O'] === undefined ? [] : ([] as string[]).concat(subj['O']);
      return { username: String(subj['CN'] ?? ''), groups: [...orgs, 'system:authenticated'] };
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const method = req.method ?? 'GET';
    if (url.pathname === '/healthz' || url.pathname === '/readyz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    const user = this.authenticate(req);
    this.requests.push({ method, path: url.pathname + url.search, user: typeof user === 'object' ? user.username : String(user), at: Date.now() });
    if (user === 'unauthorized') return this.status(res, 401, 'Unauthorized', 'Unauthorized');
    if (!url.pathname.startsWith(CSR_PATH)) return this.status(res, 404, 'NotFound', 'the server could not find the requested resource');
    const [rawName, subresource] = url.pathname.slice(CSR_PATH.length + 1).split('/');
    const verb = method === 'POST' ? 'create' : method === 'PUT' ? 'update' : url.searchParams.get('watch') ? 'watch' : url.pathname === CSR_PATH ? 'list' : 'get';
    if (!this.allowed(user, verb === 'update' ? 'approve' : verb)) {
      const who = user?.username ?? 'system:anonymous';
      const resource = subresource ? `certificatesigningrequests/${subresource}` : 'certificatesigningrequests';
      return this.status(res, 403, 'Forbidden', `certificatesigningrequests.certificates.k8s.io is forbidden: User "${who}" cannot ${verb} resource "${resource}" in API group "certificates.k8s.io" at the cluster scope`);
    }
    const failure = this.failures[0];
    if (failure && (!failure.method || failure.method === method)) {
      this.failures.shift();
      const reasons: Record<number, string> = { 409: 'Conflict', 429: 'TooManyRequests', 503: 'ServiceUnavailable' };
      if (failure.retryAfter !== undefined) res.setHeader('retry-after', String(failure.retryAfter));
      return this.status(res, failure.status, reasons[failure.status] ?? 'InternalError', 'injected failure');
    }
    const name = rawName ? decodeURIComponent(rawName) : undefined;
    if (method === 'PUT' && name && subresource === 'approval') return this.updateApproval(req, res, name);
    const selected = fieldSelectorName(url.searchParams.get('fieldSelector'));
    if (method === 'POST' && !name) return this.counted(() => this.create(req, res, user!));
    if (method === 'GET' && name) {
      const obj = this.csrs.get(name);
      if (!obj) return this.status(res, 404, 'NotFound', `certificatesigningrequests.certificates.k8s.io "${name}" not found`, name);
      return this.json(res, 200, obj);
    }
    if (method === 'GET' && url.searchParams.get('watch')) return this.watch(res, selected, url.searchParams);
    if (method === 'GET') {
      const items = [...this.csrs.values()].filter((o) => !selected || o.metadata.name === selected);
      return this.json(res, 200, { kind: 'CertificateSigningRequestList', apiVersion: 'certificates.k8s.io/v1', metadata: { resourceVersion: String(this.rv) }, items });
    }
    return this.status(res, 405, 'MethodNotAllowed', `${method} is not supported`);
  }

  /**
   * RBAC as kubeadm sets it up: bootstrappers and nodes may create/get/list/watch CSRs; only
   * system:masters may approve.
   */
  private allowed(user: FakeUser | undefined, verb: string): boolean {
    if (!user) return false;
    if (user.groups.includes('system:masters')) return true;
    return verb !== 'approve' && (user.groups.includes('system:bootstrappers') || user.groups.includes('system:nodes'));
  }

  /**
   * PUT .../approval: only status.conditions change, conditional on the resourceVersion sent
   * (409 Conflict when stale), Approved and Denied never together (422).
   */
  private async updateApproval(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const obj = this.csrs.get(name);
    if (!obj) return this.status(res, 404, 'NotFound', `certificatesigningrequests.certificates.k8s.io "${name}" not found`, name);
    let body: CsrObject;
    try {
      body = JSON.parse(await readBody(req)) as CsrObject;
    } catch {
      return this.status(res, 400, 'BadRequest', 'the request body is not a valid CertificateSigningRequest');
    }
    const rv = body.metadata?.resourceVersion;
    if (rv && rv !== obj.metadata.resourceVersion) {
      return this.status(res, 409, 'Conflict', `Operation cannot be fulfilled on certificatesigningrequests.certificates.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`, name);
    }
    const conditions = body.status?.conditions ?? [];
    const types = new Set(conditions.map((c) => c.type));
    if (types.has('Approved') && types.has('Denied')) {
      return this.status(res, 422, 'Invalid', `CertificateSigningRequest.certificates.k8s.io "${name}" is invalid: status.conditions: Invalid value: "Denied": Approved and Denied conditions are mutually exclusive`, name);
    }
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    obj.status = { ...obj.status, conditions: conditions.map((c) => ({ ...c, lastTransitionTime: c.lastTransitionTime ?? now, lastUpdateTime: c.lastUpdateTime ?? now })) };
    this.record('MODIFIED', obj);
    this.json(res, 200, obj);
    setImmediate(() => void this.reconcile(name));
  }

  private async counted(create: () => Promise<void>): Promise<void> {
    this.creating++;
    this.peakCreates = Math.max(this.peakCreates, this.creating);
    try {
      if (this.createDelayMs > 0) await new Promise((r) => setTimeout(r, this.createDelayMs));
      await create();
    } finally {
      this.creating--;
    }
  }

  private async create(req: IncomingMessage, res: ServerResponse, user: FakeUser): Promise<void> {
    let body: CsrObject;
    try {
      body = JSON.parse(await readBody(req)) as CsrObject;
    } catch {
      return this.status(res, 400, 'BadRequest', 'the request body is not a valid CertificateSigningRequest');
    }
    const invalid = await this.validate(body);
    if (invalid) return this.status(res, 422, 'Invalid', `CertificateSigningRequest.certificates.k8s.io "${body.metadata?.name ?? ''}" is invalid: ${invalid}`);
    // NodeRestriction: a node may only ask for its own name on the kubelet signers.
    if (user.groups.includes('system:nodes') && (body.spec.signerName === KUBELET_CLIENT || body.spec.signerName === 'kubernetes.io/kubelet-serving')) {
      const parsed = await parseCsrPem(Buffer.from(body.spec.request, 'base64').toString('utf8'));
      if (parsed.subject.commonName !== user.username) {
        return this.status(res, 403, 'Forbidden', `can only create a node CSR with CN=${user.username}`);
      }
    }
    const name = body.metadata.name || `${body.metadata.generateName ?? ''}${randomBytes(3).toString('hex').slice(0, 5)}`;
    if (this.csrs.has(name)) {
      return this.status(res, 409, 'AlreadyExists', `certificatesigningrequests.certificates.k8s.io "${name}" already exists`, name);
    }
    const obj: CsrObject = {
      apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest',
      metadata: { ...body.metadata, name, uid: randomUUID(), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
      spec: { ...body.spec, username: user.username, groups: user.groups },
      status: {},
    };
    this.csrs.set(name, obj);
    this.record('ADDED', obj);
    this.json(res, 201, obj);
    setImmediate(() => void this.reconcile(name));
  }

  private async validate(csr: CsrObject): Promise<string | undefined> {
    if (!csr?.spec || !csr.metadata) return 'spec: Required value';
    if (!csr.metadata.name && !csr.metadata.generateName) return 'metadata.name: Required value: name or generateName is required';
    let parsed;
    try {
      parsed = await parseCsrPem(Buffer.from(csr.spec.request ?? '', 'base64').toString('utf8'));
    } catch {
      return 'spec.request: Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST';
    }
    if (!parsed.signatureValid) return 'spec.request: Invalid value: []byte{...}: x509: ECDSA verification failure';
    if (!csr.spec.usages?.length) return 'spec.usages: Required value';
    if (new Set(csr.spec.usages).size !== csr.spec.usages.length) return 'spec.usages: Duplicate value';
    const bad = csr.spec.usages.find((u) => !KNOWN_USAGES.has(u));
    if (bad) return `spec.usages[0]: Unsupported value: "${bad}"`;
    if (!csr.spec.signerName) return 'spec.signerName: Required value';
    if (!/^[a-z0-9.-]+\/[A-Za-z0-9._\/-]+$/.test(csr.spec.signerName)) return 'spec.signerName: Invalid value';
    if (csr.spec.expirationSeconds !== undefined && csr.spec.expirationSeconds < 600) {
      return 'spec.expirationSeconds: Invalid value: may not specify a duration less than 600 seconds (10 minutes)';
    }
    return undefined;
  }

  private watch(res: ServerResponse, name: string | undefined, q: URLSearchParams): void {
    const from = Number(q.get('resourceVersion') ?? '0');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders(); // the real apiserver answers a watch's headers at once
    const w: Watcher = { name, res, sent: from };
    if (from > 0 && from < this.compactedRv) {
      res.end(JSON.stringify({ type: 'ERROR', object: statusBody(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`) }) + '\n');
      return;
    }
    if (!from) {
      for (const obj of this.csrs.values()) if (!name || obj.metadata.name === name) res.write(JSON.stringify({ type: 'ADDED', object: obj }) + '\n');
      w.sent = this.rv;
    }
    for (const ev of this.history) this.deliver(w, ev);
    this.watchers.add(w);
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => {
      if (timer) clearTimeout(timer);
      this.watchers.delete(w);
    });
  }

  private deliver(w: Watcher, ev: { rv: number; type: string; object: CsrObject }): void {
    if (ev.rv <= w.sent) return;
    if (w.name && ev.object.metadata.name !== w.name) return;
    w.sent = ev.rv;
    w.res.write(JSON.stringify({ type: ev.type, object: ev.object }) + '\n');
  }

  private record(type: string, obj: CsrObject): void {
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    const ev = { rv: this.rv, type, object: structuredClone(obj) };
    this.history.push(ev);
    for (const w of this.watchers) this.deliver(w, ev);
  }

  private addCondition(name: string, c: CsrCondition): void {
    const obj = this.csrs.get(name);
    if (!obj) throw new Error(`no CSR ${name}`);
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    obj.status = { ...obj.status, conditions: [...(obj.status?.conditions ?? []), { ...c, lastUpdateTime: now, lastTransitionTime: now }] };
    this.record('MODIFIED', obj);
    setImmediate(() => void this.reconcile(name));
  }

  // ---- the controller-manager's csrapproving and csrsigning ------------------------------

  private async reconcile(name: string): Promise<void> {
    const obj = this.csrs.get(name);
    if (!obj) return;
    const conds = obj.status?.conditions ?? [];
    const has = (t: string): boolean => conds.some((c) => c.type === t);
    if (has('Denied') || has('Failed') || obj.status?.certificate) return;
    if (!has('Approved')) {
      if (this.opts.autoApprove === false) return;
      const verdict = await this.approverVerdict(obj);
      if (verdict) this.addCondition(name, { type: 'Approved', status: 'True', reason: 'AutoApproved', message: verdict });
      return;
    }
    if (this.opts.sign === false || !SIGNERS.has(obj.spec.signerName)) return;
    const request = await parseCsrPem(Buffer.from(obj.spec.request, 'base64').toString('utf8'));
    if (obj.spec.signerName === KUBELET_CLIENT) {
      const invalid = kubeletClientProblem(request, obj.spec.usages);
      if (invalid) return this.fail(name, 'SignerValidationFailure', invalid);
    }
    const now = Date.now();
    const ttl = Math.min(this.opts.signingDurationSeconds ?? 8760 * 3600, obj.spec.expirationSeconds ?? Infinity) * 1000;
    const notBefore = new Date(now - 5 * 60_000);
    const notAfter = new Date(ttl < 8 * 3600_000 ? now + ttl : now + ttl - 5 * 60_000);
    const publicKey = new x509.PublicKey(new Uint8Array(request.spki));
    const cert = await this.signFor(publicKey, request.subject.commonName, request.subject.organizations, obj.spec.usages, notBefore, notAfter);
    let pem = cert.toString('pem') + '\n';
    if (this.issueHook) pem = await this.issueHook(obj, pem);
    const current = this.csrs.get(name);
    if (!current) return;
    current.status = { ...current.status, certificate: Buffer.from(pem).toString('base64') };
    this.record('MODIFIED', current);
  }

  /** sarapprove.go: selfnodeclient for renewals by the node itself, nodeclient for bootstrap. */
  private async approverVerdict(obj: CsrObject): Promise<string | undefined> {
    if (obj.spec.signerName !== KUBELET_CLIENT) return undefined;
    const request = await parseCsrPem(Buffer.from(obj.spec.request, 'base64').toString('utf8'));
    if (kubeletClientProblem(request, obj.spec.usages)) return undefined;
    const groups = obj.spec.groups ?? [];
    if (obj.spec.username === request.subject.commonName && groups.includes('system:nodes')) {
      return 'Auto approving self kubelet client certificate after SubjectAccessReview.';
    }
    const allowed = this.opts.nodeClientGroups ?? [DEFAULT_BOOTSTRAP_GROUP];
    if (groups.some((g) => allowed.includes(g))) return 'Auto approving kubelet client certificate after SubjectAccessReview.';
    return undefined;
  }

  private async signFor(publicKey: x509.PublicKey | CryptoKey, cn: string, orgs: string[], usages: string[], notBefore: Date, notAfter: Date): Promise<x509.X509Certificate> {
    let ku = 0;
    if (usages.includes('digital signature')) ku |= x509.KeyUsageFlags.digitalSignature;
    if (usages.includes('key encipherment')) ku |= x509.KeyUsageFlags.keyEncipherment;
    const eku: string[] = [];
    if (usages.includes('client auth')) eku.push(x509.ExtendedKeyUsage.clientAuth);
    if (usages.includes('server auth')) eku.push(x509.ExtendedKeyUsage.serverAuth);
    const name: x509.JsonName = [...orgs.map((o) => ({ O: [o] })), { CN: [cn] }];
    return x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
      subject: name, issuer: this.caCert.subject, publicKey, signingKey: this.caKeys.privateKey, signingAlgorithm: SIGN_ALG,
      notBefore, notAfter,
      extensions: [
        new x509.KeyUsagesExtension(ku, true),
        ...(eku.length ? [new x509.ExtendedKeyUsageExtension(eku)] : []),
        new x509.BasicConstraintsExtension(false, undefined, true),
      ],
    });
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string, name?: string): void {
    this.json(res, code, statusBody(code, reason, message, name));
  }
}

/** ValidateKubeletClientCSR (pkg/apis/certificates/helpers.go). */
function kubeletClientProblem(req: { subject: { commonName: string; organizations: string[] }; dnsNames: string[]; ipAddresses: string[] }, usages: string[]): string | undefined {
  if (req.subject.organizations.length !== 1 || req.subject.organizations[0] !== 'system:nodes') return 'subject organization is not system:nodes';
  if (req.dnsNames.length > 0) return 'dnsNames are not allowed';
  if (req.ipAddresses.length > 0) return 'ipAddresses are not allowed';
  if (!req.subject.commonName.startsWith('system:node:')) return 'subject common name does not begin with system:node:';
  const set = [...new Set(usages)].sort().join(',');
  const ok = ['client auth,digital signature,key encipherment', 'client auth,digital signature'];
  if (!ok.includes(set)) return `usages did not match [digital signature key encipherment client auth]`;
  return undefined;
}

function statusBody(code: number, reason: string, message: string, name?: string): Record<string, unknown> {
  const body: Record<string, unknown> = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (name) body['details'] = { name, group: 'certificates.k8s.io', kind: 'certificatesigningrequests' };
  return body;
}

function fieldSelectorName(sel: string | null): string | undefined {
  const m = /^metadata\.name=(.+)$/.exec(sel ?? '');
  return m?.[1];
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
