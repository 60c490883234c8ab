// One attempt at a certificate, as the agent's loop asks for one: bootstrap with the token (its
// CA discovered or completed by node/trust), rotation with the current certificate (back to the
// token when the server no longer takes it), or a serving certificate with the node's client
// kubeconfig; then the CSR made or found again, waited for, checked and written.
import { promises as fs } from 'node:fs';
import { ApiError, CertificateMismatchError, CsrGoneError, CsrRejectedError } from '../base/errors.js';
import type { Fields, Logger } from '../base/log.js';
import { USER_AGENT } from '../base/version.js';
import { clientFor, type ApiClient, type Credentials } from '../kube/api.js';
import { waitForCertificate } from '../kube/csrwait.js';
import type { CsrObject } from '../kube/csrtypes.js';
import type { ClientConfig } from '../kube/kubeconfig.js';
import { checkIssued, type CertInfo } from '../pki/certs.js';
import { digestedName } from '../pki/csr.js';
import { isRsa, privateKeyPem, spkiDer, type KeyPair } from '../pki/keys.js';
import type { AgentOptions, CredentialState } from './agent.js';
import { readBootstrap, readClientKubeconfig, unauthorized, type Held } from './credentials.js';
import { DEFAULT_APPROVAL_TIMEOUT_MS, usagesFor } from './identity.js';
import { createOrReuse, pendingKey } from './request.js';
import type { CertStore } from './store.js';
import { isUntrustedServer, type TrustKeeper } from './trust.js';

/** What an attempt needs of its agent. */
export interface AttemptContext {
  opts: AgentOptions;
  store: CertStore;
  trust: TrustKeeper;
  log: Logger;
  now: () => Date;
  /** The certificate on disk when it is usable now (a problem with it is said once). */
  inspect: () => Promise<Held | undefined>;
  /** The state of a certificate just issued by the CSR `csrName` (its rotation deadline drawn). */
  issued: (leaf: CertInfo, file: string, csrName: string) => CredentialState;
}

/** The attempts of one identity. */
export class Attempts {
  /** A retry, not a first attempt: the opening line goes to debug (the failure log tells). */
  retrying = false;

  constructor(private readonly c: AttemptContext) {}

  /**
   * One attempt: mutual TLS with the current certificate if it is unexpired, else the token. A
   * serving certificate is always requested with the node's client kubeconfig.
   */
  async run(signal: AbortSignal): Promise<CredentialState> {
    try {
      return await this.attemptOnce(signal);
    } catch (err) {
      // The server's certificate no longer verifies: the cluster's CA may have changed.
      if (!isUntrustedServer(err) || this.c.opts.serving) throw err;
      throw await this.c.trust.recover(err, signal);
    }
  }

  private async attemptOnce(signal: AbortSignal): Promise<CredentialState> {
    if (this.c.opts.serving) {
      const auth = await readClientKubeconfig(this.c.opts.kubeconfig, this.c.now());
      const current = await this.c.inspect();
      return this.renew(auth, `requesting a serving certificate, authenticating with the node's client kubeconfig ${this.c.opts.kubeconfig}`, current?.leaf, signal);
    }
    const current = await this.c.inspect();
    if (current?.config) {
      const credentials: Credentials = { kind: 'certificate', ...current.cert };
      try {
        return await this.renew({ config: current.config, credentials }, 'rotating the client certificate, authenticating with the current one', current.leaf, signal);
      } catch (err) {
        // The server no longer accepts the certificate (its CA was dropped from the client CA,
        // say): the bootstrap token is the way back, when there is one.
        if (!(err instanceof ApiError && err.status === 401) || !this.c.opts.bootstrapKubeconfig) throw err;
        if ((await unauthorized(current.config, err, signal)) instanceof ApiError) throw err;
        this.c.log.warn('the API server no longer accepts the current certificate; falling back to the bootstrap token', { kubeconfig: this.c.opts.kubeconfig });
      }
    }
    return this.bootstrap(signal);
  }

  /** An attempt's opening line: info on a first attempt, debug on a retry. */
  private say(msg: string, fields: Fields): void {
    if (this.retrying) this.c.log.debug(1, msg, fields);
    else this.c.log.info(msg, fields);
  }

  private async bootstrap(signal: AbortSignal): Promise<CredentialState> {
    const read = await readBootstrap(this.c.opts);
    const boot = { ...read, config: await this.c.trust.complete(read.config, signal) };
    const id = this.c.opts.identity;
    const key = await pendingKey(this.c.store.keyTmpPath, id.keyAlgorithm, this.c.log);
    const usages = usagesFor(id, isRsa(key), 'bootstrap');
    const name = digestedName(spkiDer(key), id.subject, usages);
    this.say('bootstrapping a client certificate with the bootstrap token', { server: boot.config.server, csr: name, subject: id.subject.commonName });
    const api = this.client(boot.config, boot.credentials);
    try {
      return await this.request(api, name, key, usages, boot.config, signal);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw await unauthorized(boot.config, err, signal);
      throw err;
    } finally {
      await api.close();
    }
  }

  /**
   * Unlike kubelet's rotation (a fresh key and generateName each attempt), the key is kept and
   * the name derived from it, as for bootstrap: a retry, an approval timeout or a restart finds
   * the same pending CSR instead of leaving one more behind (kubernetes#132947).
   */
  private async renew(auth: { config: ClientConfig; credentials: Credentials }, what: string, held: CertInfo | undefined, signal: AbortSignal): Promise<CredentialState> {
    const id = this.c.opts.identity;
    const key = await pendingKey(this.c.store.keyTmpPath, id.keyAlgorithm, this.c.log);
    const usages = usagesFor(id, isRsa(key), 'rotation');
    const name = digestedName(spkiDer(key), id.subject, usages, 'csr-');
    this.say(what, { server: auth.config.server, csr: name, ...(held ? { notAfter: held.notAfter.toISOString() } : {}) });
    const api = this.client(auth.config, auth.credentials);
    try {
      return await this.request(api, name, key, usages, auth.config, signal);
    } catch (err) {
      // A deleted rotation CSR may have been deleted on purpose: ask again with a new key.
      if (err instanceof CsrGoneError) await fs.rm(this.c.store.keyTmpPath, { force: true });
      throw err;
    } finally {
      await api.close();
    }
  }

  /** Create (or find again) the CSR, wait for it, and put the certificate in place. */
  private async request(api: ApiClient, name: string, key: KeyPair, usages: string[], cluster: ClientConfig, signal: AbortSignal): Promise<CredentialState> {
    try {
      const created = await createOrReuse(api, { name, key, usages, identity: this.c.opts.identity, keyFile: this.c.store.keyTmpPath, now: this.c.now(), log: this.c.log }, signal);
      return await this.finish(api, created, key, usages, cluster, signal);
    } catch (err) {
      if (err instanceof CsrRejectedError || err instanceof CertificateMismatchError) {
        // That CSR is spoiled. A fresh key next time gives a fresh CSR name instead of finding
        // the same one again by its digest.
        await fs.rm(this.c.store.keyTmpPath, { force: true });
      }
      throw err;
    }
  }

  private async finish(api: ApiClient, csr: CsrObject, key: KeyPair, usages: string[], cluster: ClientConfig, signal: AbortSignal): Promise<CredentialState> {
    const name = csr.metadata.name ?? '';
    const chainPem = await waitForCertificate(api, csr, {
      signal, log: this.c.log, timeoutMs: this.c.opts.approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS,
      ...(this.c.opts.watchTimeoutSeconds ? { watchTimeoutSeconds: this.c.opts.watchTimeoutSeconds } : {}),
    });
    const chain = checkIssued(chainPem, { csrName: name, spki: spkiDer(key), subject: this.c.opts.identity.subject, usages }, this.c.now());
    const file = await this.c.store.update(chainPem, privateKeyPem(key), this.c.now());
    // A serving certificate authenticates nobody: its kubeconfig is the node's, left as it is.
    if (!this.c.opts.serving) await this.c.store.writeKubeconfig(this.c.opts.kubeconfig, cluster);
    // Only now: a crash before this line reruns with the same key and finds the same CSR.
    await fs.rm(this.c.store.keyTmpPath, { force: true });
    await this.c.store.prune();
    const leaf = chain[0]!;
    const state = this.c.issued(leaf, file, name);
    const createdAt = Date.parse(csr.metadata.creationTimestamp ?? '');
    // creationTimestamp has whole seconds; never report less than nothing
    if (Number.isFinite(createdAt)) state.issuanceSeconds = Math.max(0, (this.c.now().getTime() - createdAt) / 1000);
    this.c.log.info(`${this.c.opts.serving ? 'serving' : 'client'} certificate issued and written`, {
      csr: name, file, notAfter: leaf.notAfter.toISOString(), nextRotation: state.deadline.toISOString(),
    });
    await this.c.opts.onCertificate?.(state);
    return state;
  }

  /** A client of this identity's API server, with the daemon's limiter and response counter. */
  client(config: ClientConfig, credentials: Credentials): ApiClient {
    return clientFor(config, credentials, {
      userAgent: USER_AGENT,
      ...(this.c.opts.limiter ? { limiter: this.c.opts.limiter } : {}),
      ...(this.c.opts.onResponse ? { onResponse: this.c.opts.onResponse } : {}),
    });
  }
}
