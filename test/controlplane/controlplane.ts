// Starts a real Kubernetes control plane on 127.0.0.1 for tests and the demo: etcd,
// kube-apiserver (bootstrap-token auth, Node,RBAC, NodeRestriction) and kube-controller-manager
// (CSR approving/signing/cleaning, bootstrap signer, token cleaner), with a PKI made by openssl,
// kubeadm's TLS-bootstrap RBAC and a bootstrap token. Everything lives in one temp folder and is
// removed by stop(); logs are kept when asked (failed tests).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, promises as fs, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { CsrObject } from '../../src/kube/csrtypes.js';
import { readKubeconfig } from '../../src/kube/kubeconfig.js';
import { tlsbootCommand } from '../support/paths.js';

const run = promisify(execFile);

export interface ControlPlaneOptions {
  /** kube-controller-manager --cluster-signing-duration (default 8760h). */
  signingDuration?: string;
  /** Skip kubeadm's TLS-bootstrap RBAC: a bare cluster, as `tlsboot cluster init` finds one. */
  bare?: boolean;
  /** Where the binaries are; default $TLSBOOT_CONTROLPLANE_BIN or running build.sh. */
  binDir?: string;
  log?: (line: string) => void;
  /** Write kube-apiserver's audit log (Metadata level, one line per finished request). */
  audit?: boolean;
}

/** One finished request, from kube-apiserver's audit log: the server's own count of its load. */
export interface AuditEvent {
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  objectRef?: { resource?: string; subresource?: string; name?: string };
}

export interface Token {
  id: string;
  secret: string;
  value: string;
}

export class ControlPlane {
  /** Attached to a cluster we did not start (kind): processes cannot be stopped or restarted. */
  readonly external: boolean;
  readonly dir: string;
  readonly binDir: string;
  readonly server: string;
  readonly caPath: string;
  readonly adminKubeconfig: string;
  readonly ports: { etcd: number; peer: number; apiserver: number; kcm: number };
  private readonly procs = new Map<string, ChildProcess>();
  private readonly spawnErrors = new Map<string, Error>();
  private readonly opts: ControlPlaneOptions;

  private constructor(dir: string, binDir: string, ports: ControlPlane['ports'], opts: ControlPlaneOptions, external?: { server: string; kubeconfig: string }) {
    this.dir = dir;
    this.binDir = binDir;
    this.ports = ports;
    this.opts = opts;
    this.external = external !== undefined;
    this.server = external?.server ?? `https://127.0.0.1:${ports.apiserver}`;
    this.caPath = path.join(dir, 'pki', 'ca.crt');
    this.adminKubeconfig = external?.kubeconfig ?? path.join(dir, 'admin.kubeconfig');
  }

  /**
   * Start a control plane, or attach to the cluster whose admin kubeconfig is in
   * $TLSBOOT_E2E_KUBECONFIG (make e2e-kind). Any cluster with bootstrap-token authentication and
   * the CSR controllers will do: the bindings the suite needs are applied with `tlsboot cluster rbac`.
   */
  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const binDir = opts.binDir ?? process.env['TLSBOOT_CONTROLPLANE_BIN'] ?? (await buildBinaries());
    const attach = process.env['TLSBOOT_E2E_KUBECONFIG'];
    if (attach) return ControlPlane.attach(attach, binDir, opts);
    // Another test file's control plane (tap runs two at once) or an outgoing connection can take
    // a port between the check and the bind: then start again on other ports.
    for (let attempt = 1; ; attempt++) {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlsboot-cp-'));
      const ports = { etcd: await freePort(), peer: await freePort(), apiserver: await freePort(), kcm: await freePort() };
      const cp = new ControlPlane(dir, binDir, ports, opts);
      try {
        await cp.makePki();
        await cp.startEtcd();
        await cp.startApiserver();
        if (!opts.bare) await cp.applyBootstrapRbac();
        await cp.startControllerManager();
        return cp;
      } catch (err) {
        const inUse = /address already in use/.test((err as Error).message);
        await cp.stop({ keepLogs: !inUse || attempt >= 3 });
        if (inUse && attempt < 3) {
          opts.log?.(`a port was taken while starting; starting again (${(err as Error).message.slice(0, 120)})`);
          continue;
        }
        throw new Error(`control plane did not start (logs in ${dir}): ${(err as Error).message}`);
      }
    }
  }

  private static async attach(kubeconfig: string, binDir: string, opts: ControlPlaneOptions): Promise<ControlPlane> {
    const config = await readKubeconfig(kubeconfig);
    if (!config.caPem) throw new Error(`${kubeconfig}: needs the cluster CA (certificate-authority-data)`);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlsboot-ext-'));
    const cp = new ControlPlane(dir, binDir, { etcd: 0, peer: 0, apiserver: 0, kcm: 0 }, opts, { server: config.server, kubeconfig });
    await fs.mkdir(path.join(dir, 'pki'));
    await fs.writeFile(cp.caPath, config.caPem);
    // The suite's tokens are in kubeadm's default group; a cluster whose own bindings name other
    // groups would answer 403 at the first bootstrap. tlsboot's own rbac command is idempotent.
    const rbac = tlsbootCommand(['cluster', 'rbac', '--kubeconfig', kubeconfig]);
    await run(rbac.file, rbac.args);
    return cp;
  }

  private say(line: string): void {
    this.opts.log?.(line);
  }

  /** A file of the control plane's PKI folder (the CA rotation helper changes them). */
  pki(name: string): string {
    return path.join(this.dir, 'pki', name);
  }

  private async makePki(): Promise<void> {
    const dir = path.join(this.dir, 'pki');
    await fs.mkdir(dir, { recursive: true });
    const ossl = (...args: string[]): Promise<unknown> => run('openssl', args, { cwd: dir });
    await ossl('req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-sha256', '-days', '3650',
      '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=tlsboot-test-ca');
    const issue = async (name: string, subj: string, eku: string, san?: string): Promise<void> => {
      await ossl('req', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj);
      const ext = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${eku}`];
      if (san) ext.push(`subjectAltName=${san}`);
      await fs.writeFile(path.join(dir, `${name}.ext`), ext.join('\n') + '\n');
      await ossl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
        '-days', '365', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
    };
    await issue('apiserver', '/CN=kube-apiserver', 'serverAuth',
      'IP:127.0.0.1,IP:::1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc');
    await this.issueFuture(ossl);
    await issue('admin', '/O=system:masters/CN=kubernetes-admin', 'clientAuth');
    await issue('kcm', '/CN=system:kube-controller-manager', 'clientAuth');
    await ossl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key');
    await ossl('pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
    await this.writeCertKubeconfig(this.adminKubeconfig, 'admin');
    await this.writeCertKubeconfig(path.join(this.dir, 'kcm.kubeconfig'), 'kcm');
    // The API server's client CA and the controller-manager's signer in files of their own, so
    // that a CA rotation (carotation.ts) can change each apart, as a real one does.
    await fs.copyFile(this.pki('ca.crt'), this.pki('client-ca.crt'));
    await fs.copyFile(this.pki('ca.crt'), this.pki('signer.crt'));
    await fs.copyFile(this.pki('ca.key'), this.pki('signer.key'));
  }

  /**
   * A serving certificate valid only from ten years on, presented for the SNI name FUTURE_SNI:
   * what a node whose clock is far behind sees (doctor's clock-skew case). `openssl ca` is the
   * one openssl 3.0 command that sets a start date.
   */
  private async issueFuture(ossl: (...args: string[]) => Promise<unknown>): Promise<void> {
    const dir = path.join(this.dir, 'pki');
    await fs.writeFile(path.join(dir, 'future.cnf'), [
      '[ca]', 'default_ca = d', '[d]', 'database = future.index', 'new_certs_dir = .', 'serial = future.serial',
      'default_md = sha256', 'policy = p', 'unique_subject = no', '[p]', 'commonName = supplied',
      '[ext]', 'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth', `subjectAltName = DNS:${FUTURE_SNI}`, '',
    ].join('\n'));
    await fs.writeFile(path.join(dir, 'future.index'), '');
    await fs.writeFile(path.join(dir, 'future.serial'), '1000\n');
    const year = new Date().getUTCFullYear() + 10;
    await ossl('req', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', 'future.key', '-out', 'future.csr', '-subj', '/CN=kube-apiserver-future');
    await ossl('ca', '-batch', '-notext', '-config', 'future.cnf', '-extensions', 'ext', '-cert', 'ca.crt', '-keyfile', 'ca.key',
      '-in', 'future.csr', '-out', 'future.crt', '-startdate', `${year}0101000000Z`, '-enddate', `${year + 1}0101000000Z`);
  }

  /**
   * Sign a client certificate for `keyPem` with the cluster CA and any validity, in the past or
   * the future: what a node finds on disk after a long power-off, say. `openssl ca` is the one
   * openssl 3.0 command that takes both dates.
   */
  async signClientCertificate(keyPem: string, subject: string, start: Date, end: Date): Promise<string> {
    this.local('sign with the CA');
    const dir = await fs.mkdtemp(path.join(this.dir, 'sign-'));
    const ossl = (...args: string[]): Promise<unknown> => run('openssl', args, { cwd: dir });
    const stamp = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
    await fs.writeFile(path.join(dir, 'ca.cnf'), [
      '[ca]', 'default_ca = d', '[d]', 'database = index', 'new_certs_dir = .', 'serial = serial',
      'default_md = sha256', 'policy = p', 'unique_subject = no', '[p]', 'commonName = supplied', 'organizationName = optional',
      '[ext]', 'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = clientAuth', '',
    ].join('\n'));
    await fs.writeFile(path.join(dir, 'index'), '');
    await fs.writeFile(path.join(dir, 'serial'), `${randomBytes(8).toString('hex')}\n`);
    await fs.writeFile(path.join(dir, 'key.pem'), keyPem, { mode: 0o600 });
    await ossl('req', '-new', '-key', 'key.pem', '-out', 'req.csr', '-subj', subject);
    await ossl('ca', '-batch', '-notext', '-config', 'ca.cnf', '-extensions', 'ext', '-cert', this.pki('ca.crt'), '-keyfile', this.pki('ca.key'),
      '-in', 'req.csr', '-out', 'cert.pem', '-startdate', stamp(start), '-enddate', stamp(end));
    const pem = await fs.readFile(path.join(dir, 'cert.pem'), 'utf8');
    await fs.rm(dir, { recursive: true, force: true });
    return pem;
  }

  /** Rewrite the admin and controller-manager kubeconfigs from the PKI files (after a CA change). */
  async rewriteKubeconfigs(): Promise<void> {
    await this.writeCertKubeconfig(this.adminKubeconfig, 'admin');
    await this.writeCertKubeconfig(path.join(this.dir, 'kcm.kubeconfig'), 'kcm');
  }

  private async writeCertKubeconfig(file: string, who: string): Promise<void> {
    const b64 = async (f: string): Promise<string> => (await fs.readFile(this.pki(f))).toString('base64');
    await fs.writeFile(file, [
      'apiVersion: v1', 'kind: Config',
      'clusters:', '- name: test', '  cluster:', `    server: ${this.server}`, `    certificate-authority-data: ${await b64('ca.crt')}`,
      'users:', `- name: ${who}`, '  user:', `    client-certificate-data: ${await b64(`${who}.crt`)}`, `    client-key-data: ${await b64(`${who}.key`)}`,
      'contexts:', '- name: test', `  context: {cluster: test, user: ${who}}`, 'current-context: test', '',
    ].join('\n'), { mode: 0o600 });
  }

  /** A bootstrap kubeconfig for a token, CA embedded (or as a path with caAsPath). */
  async writeBootstrapKubeconfig(file: string, token: string, opts: { caAsPath?: boolean } = {}): Promise<string> {
    const ca = opts.caAsPath
      ? `    certificate-authority: ${this.caPath}`
      : `    certificate-authority-data: ${(await fs.readFile(this.caPath)).toString('base64')}`;
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, [
      'apiVersion: v1', 'kind: Config',
      'clusters:', '- name: test', '  cluster:', `    server: ${this.server}`, ca,
      'users:', '- name: bootstrap', '  user:', `    token: ${token}`,
      'contexts:', '- name: bootstrap', '  context: {cluster: test, user: bootstrap}', 'current-context: bootstrap', '',
    ].join('\n'), { mode: 0o600 });
    return file;
  }

  private spawnLogged(name: string, args: string[]): ChildProcess {
    const out = createWriteStream(path.join(this.dir, `${name}.log`));
    const child = spawn(path.join(this.binDir, name), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    child.on('exit', () => out.end());
    child.on('error', (err) => {
      this.spawnErrors.set(name, err);
      out.end(`spawn failed: ${err.message}\n`);
    });
    this.procs.set(name, child);
    return child;
  }

  async startEtcd(): Promise<void> {
    this.local('start etcd');
    const { etcd, peer } = this.ports;
    this.spawnLogged('etcd', [
      '--name', 'test', '--data-dir', path.join(this.dir, 'etcd'),
      '--listen-client-urls', `http://127.0.0.1:${etcd}`, '--advertise-client-urls', `http://127.0.0.1:${etcd}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `test=http://127.0.0.1:${peer}`, '--unsafe-no-fsync', '--log-level', 'warn',
    ]);
    await this.waitFor('etcd', () => httpOk(`http://127.0.0.1:${etcd}/health`), 60_000);
  }

  async startApiserver(): Promise<void> {
    this.local('start kube-apiserver');
    this.spawnLogged('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${this.ports.etcd}`,
      '--bind-address=127.0.0.1', `--secure-port=${this.ports.apiserver}`,
      '--advertise-address=127.0.0.1', '--endpoint-reconciler-type=none',
      `--tls-cert-file=${this.pki('apiserver.crt')}`, `--tls-private-key-file=${this.pki('apiserver.key')}`,
      `--tls-sni-cert-key=${this.pki('future.crt')},${this.pki('future.key')}:${FUTURE_SNI}`,
      `--client-ca-file=${this.pki('client-ca.crt')}`,
      '--enable-bootstrap-token-auth=true',
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-signing-key-file=${this.pki('sa.key')}`,
      `--service-account-key-file=${this.pki('sa.pub')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      `--cert-dir=${path.join(this.dir, 'apiserver')}`,
      '--watch-cache=true',
      ...(this.opts.audit ? [`--audit-policy-file=${this.auditPolicy()}`, `--audit-log-path=${this.auditLogPath}`, '--audit-log-format=json', '--audit-log-maxsize=0', '--audit-log-mode=blocking'] : []),
    ]);
    await this.waitFor('kube-apiserver', () => httpOk(`${this.server}/readyz`, this.pki('ca.crt')), 180_000);
  }

  async startControllerManager(): Promise<void> {
    this.local('start kube-controller-manager');
    this.spawnLogged('kube-controller-manager', [
      `--kubeconfig=${path.join(this.dir, 'kcm.kubeconfig')}`,
      '--use-service-account-credentials=true',
      '--controllers=csrapproving,csrsigning,csrcleaner,bootstrapsigner,tokencleaner,serviceaccount-token,serviceaccount',
      `--cluster-signing-cert-file=${this.pki('signer.crt')}`, `--cluster-signing-key-file=${this.pki('signer.key')}`,
      `--cluster-signing-duration=${this.opts.signingDuration ?? '8760h'}`,
      `--service-account-private-key-file=${this.pki('sa.key')}`,
      `--root-ca-file=${this.pki('ca.crt')}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1', `--secure-port=${this.ports.kcm}`,
    ]);
    await this.waitFor('kube-controller-manager', () => httpOk(`https://127.0.0.1:${this.ports.kcm}/healthz`, 'insecure'), 120_000);
  }

  /** Where the audit log goes (ControlPlaneOptions.audit). */
  get auditLogPath(): string {
    return path.join(this.dir, 'audit.log');
  }

  private auditPolicy(): string {
    const file = path.join(this.dir, 'audit-policy.yaml');
    // Metadata for every request, logged once it is complete (a watch: when it ends).
    writeFileSync(file, 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived, ResponseStarted]\nrules:\n- level: Metadata\n');
    return file;
  }

  /** The requests the API server has finished since it started with `audit` (a watch counts when it ends). */
  async auditEvents(): Promise<AuditEvent[]> {
    const text = await fs.readFile(this.auditLogPath, 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent);
  }

  /** Stop the apiserver (SIGTERM) and start it again on the same port. */
  async restartApiserver(downMs = 0): Promise<void> {
    await this.stopProcess('kube-apiserver');
    if (downMs > 0) await sleep(downMs);
    await this.startApiserver();
  }

  async restartControllerManager(): Promise<void> {
    await this.stopProcess('kube-controller-manager');
    await this.startControllerManager();
  }

  private local(what: string): void {
    if (this.external) throw new Error(`cannot ${what} of a cluster tlsboot did not start`);
  }

  /** Whether this control plane's process `name` is up (started and not exited). */
  running(name: string): boolean {
    const child = this.procs.get(name);
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Stop one of etcd, kube-apiserver, kube-controller-manager: SIGTERM, or SIGKILL (a power cut). */
  async stopProcess(name: string, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    this.local(`stop ${name}`);
    const child = this.procs.get(name);
    this.procs.delete(name);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const killed = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
    if (!killed) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  private async waitFor(name: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const child = this.procs.get(name);
    const start = Date.now();
    while (Date.now() - start < timeoutMs) {
      const spawnError = this.spawnErrors.get(name);
      if (spawnError) throw new Error(`${name} could not be started: ${spawnError.message}`);
      if (child && (child.exitCode !== null || child.signalCode !== null)) {
        const log = await fs.readFile(path.join(this.dir, `${name}.log`), 'utf8').catch(() => '');
        throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}): ${log.split('\n').slice(-5).join(' | ')}`);
      }
      if (await ready()) {
        this.say(`${name} ready after ${((Date.now() - start) / 1000).toFixed(1)} s`);
        return;
      }
      await sleep(250);
    }
    throw new Error(`${name} not ready after ${timeoutMs / 1000} s`);
  }

  /** Run the control plane's own kubectl with the admin kubeconfig. */
  async kubectl(args: string[], opts: { input?: string; kubeconfig?: string } = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(path.join(this.binDir, 'kubectl'), [`--kubeconfig=${opts.kubeconfig ?? this.adminKubeconfig}`, ...args],
        { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
          if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr.trim() || err.message}`));
          else resolve(stdout);
        });
      if (opts.input !== undefined) child.stdin?.end(opts.input);
    });
  }

  async apply(yaml: string): Promise<void> {
    await this.kubectl(['apply', '-f', '-'], { input: yaml });
  }

  /** kubeadm's three TLS-bootstrap bindings for the bootstrap group (real-control-plane.md 4.4). */
  private async applyBootstrapRbac(): Promise<void> {
    const group = 'system:bootstrappers:kubeadm:default-node-token';
    const binding = (name: string, role: string, subject: string): string => [
      'apiVersion: rbac.authorization.k8s.io/v1', 'kind: ClusterRoleBinding', `metadata: {name: "${name}"}`,
      `roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "${role}"}`,
      `subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "${subject}"}]`,
    ].join('\n');
    await this.apply([
      binding('kubeadm:kubelet-bootstrap', 'system:node-bootstrapper', group),
      binding('kubeadm:node-autoapprove-bootstrap', 'system:certificates.k8s.io:certificatesigningrequests:nodeclient', group),
      binding('kubeadm:node-autoapprove-certificate-rotation', 'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient', 'system:nodes'),
    ].join('\n---\n'));
  }

  /** Let a bootstrap group create CSRs (system:node-bootstrapper) without auto-approval. */
  async allowCsrCreation(group: string): Promise<void> {
    await this.apply([
      'apiVersion: rbac.authorization.k8s.io/v1', 'kind: ClusterRoleBinding', `metadata: {name: "csr-create-${group.replace(/[^a-z0-9-]/g, '-')}"}`,
      'roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node-bootstrapper"}',
      `subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "${group}"}]`,
    ].join('\n'));
  }

  /**
   * Create a bootstrap token Secret. By default in kubeadm's node group, which the bindings
   * let create CSRs and have them auto-approved; `groups` overrides (e.g. a group with only
   * the right to create CSRs, whose CSRs then stay Pending).
   */
  async createToken(opts: { groups?: string[]; expiration?: Date } = {}): Promise<Token> {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
    const pick = (n: number): string => [...randomBytes(n)].map((b) => alphabet[b % alphabet.length]).join('');
    const id = pick(6);
    const secret = pick(16);
    const groups = opts.groups ?? ['system:bootstrappers:kubeadm:default-node-token'];
    const lines = [
      'apiVersion: v1', 'kind: Secret', `metadata: {name: bootstrap-token-${id}, namespace: kube-system}`,
      'type: bootstrap.kubernetes.io/token', 'stringData:', `  token-id: ${id}`, `  token-secret: ${secret}`,
      '  usage-bootstrap-authentication: "true"', '  usage-bootstrap-signing: "true"',
    ];
    if (groups.length > 0) lines.push(`  auth-extra-groups: "${groups.join(',')}"`);
    if (opts.expiration) lines.push(`  expiration: "${opts.expiration.toISOString().replace(/\.\d+Z$/, 'Z')}"`);
    await this.apply(lines.join('\n'));
    return { id, secret, value: `${id}.${secret}` };
  }

  async deleteToken(id: string): Promise<void> {
    await this.kubectl(['-n', 'kube-system', 'delete', 'secret', `bootstrap-token-${id}`]);
  }

  /** All CSRs as JSON objects. */
  async csrs(): Promise<CsrObject[]> {
    const out = await this.kubectl(['get', 'csr', '-o', 'json']);
    return (JSON.parse(out) as { items: CsrObject[] }).items;
  }

  async stop(opts: { keepLogs?: boolean } = {}): Promise<void> {
    if (!this.external) for (const name of ['kube-controller-manager', 'kube-apiserver', 'etcd']) await this.stopProcess(name);
    if (opts.keepLogs) {
      for (const entry of await fs.readdir(this.dir)) {
        if (!entry.endsWith('.log')) await fs.rm(path.join(this.dir, entry), { recursive: true, force: true });
      }
      this.say(`control plane logs kept in ${this.dir}`);
    } else {
      await fs.rm(this.dir, { recursive: true, force: true });
    }
  }
}

async function buildBinaries(): Promise<string> {
  const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'build.sh');
  const scriptPath = existsSync(script) ? script : path.resolve('test/controlplane/build.sh');
  const { stdout } = await run(scriptPath, [], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim().split('\n').pop() ?? '';
}

/** The server name for which the API server presents a not-yet-valid certificate. */
export const FUTURE_SNI = 'future.clock.test';

export async function freePort(): Promise<number> {
  // Below the kernel's ephemeral range (32768-60999 by default), which outgoing connections and
  // listen(0) draw from: a port picked there can be taken again before the server binds it.
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (await canBind(port)) return port;
  }
  throw new Error('no free port found between 20000 and 32000');
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function httpOk(url: string, ca?: string): Promise<boolean> {
  const caPem = ca && ca !== 'insecure' ? await fs.readFile(ca) : undefined;
  return new Promise((resolve) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { ...(caPem ? { ca: caPem } : {}), rejectUnauthorized: ca !== 'insecure', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}
