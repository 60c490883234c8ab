// Which CAs a node trusts for its cluster, and how that follows the cluster: discovery from
// cluster-info with the bootstrap token (no CA copied by hand), then the union of what the node
// trusts and what cluster-info lists, a CA dropped only once the server no longer needs it.
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { ApiError, ConfigError, TlsbootError } from '../base/errors.js';
import { ApiClient, UNKNOWN_AUTHORITY } from '../kube/api.js';
import { ClusterInfoError, fetchClusterInfo, verifyClusterInfo } from '../kube/clusterinfo.js';
import { readKubeconfig, type ClientConfig } from '../kube/kubeconfig.js';
import type { Logger } from '../base/log.js';
import type { Random } from '../base/time.js';
import { caList } from '../pki/certs.js';
import { pinned, spkiPin } from '../pki/pin.js';
import { USER_AGENT } from '../base/version.js';

/** How often the CAs are read from cluster-info by default (jittered). */
export const DEFAULT_CA_REFRESH_MS = 60 * 60_000;
/** Over how long a node spreads its re-issue after a signer change by default. */
export const DEFAULT_REISSUE_JITTER_MS = 10 * 60_000;

const der = (pem: string): string => new X509Certificate(pem).raw.toString('base64');

/**
 * Token discovery, as kubeadm join does it: cluster-info over TLS that is not verified yet, its
 * signature checked with the token, and with pins only the CAs they name (a token alone could
 * be used to slip in a CA of one's own). Every pin counts, not only the first (kubeadm#2471).
 */
export async function discoverCas(cluster: Pick<ClientConfig, 'server' | 'tlsServerName'>, token: string, pins: readonly string[], signal?: AbortSignal): Promise<string[]> {
  const api = new ApiClient({
    server: cluster.server, insecureSkipTlsVerify: true, credentials: { kind: 'anonymous' }, userAgent: USER_AGENT,
    ...(cluster.tlsServerName ? { tlsServerName: cluster.tlsServerName } : {}),
  });
  try {
    const info = await fetchClusterInfo(api, signal);
    verifyClusterInfo(info, token, cluster.server);
    if (pins.length === 0) return info.caPems;
    const trusted = pinned(info.caPems, pins);
    if (trusted.length === 0) {
      throw new ClusterInfoError(
        `${cluster.server}: no CA in cluster-info matches --ca-cert-hash (cluster-info offers ${info.caPems.map(spkiPin).join(', ')}); ` +
          'check the pin with the cluster\'s admin (openssl x509 -pubkey -in ca.crt | openssl pkey -pubin -outform der | sha256sum); nothing was trusted',
      );
    }
    return trusted;
  } finally {
    await api.close();
  }
}

/**
 * How long one read of cluster-info serves every identity of the process with the same server
 * and trust: a daemon of 1,000 identities refreshes with one request, not 1,000.
 */
const SHARED_READ_MS = 10_000;
const recentReads = new Map<string, { at: number; cas: Promise<string[]> }>();

/** The CAs cluster-info lists, read over TLS verified against what the node trusts now. */
export function listedCas(cluster: ClientConfig, signal?: AbortSignal): Promise<string[]> {
  const now = Date.now();
  for (const [k, v] of recentReads) if (now - v.at >= SHARED_READ_MS) recentReads.delete(k);
  const key = [cluster.server, cluster.tlsServerName ?? '', cluster.caPem ?? ''].join('\n');
  const hit = recentReads.get(key);
  if (hit) return hit.cas;
  const cas = readListedCas(cluster, signal);
  recentReads.set(key, { at: now, cas });
  cas.catch(() => recentReads.delete(key));
  return cas;
}

async function readListedCas(cluster: ClientConfig, signal?: AbortSignal): Promise<string[]> {
  const api = new ApiClient({
    server: cluster.server, credentials: { kind: 'anonymous' }, userAgent: USER_AGENT,
    ...(cluster.caPem ? { caPem: cluster.caPem } : {}), ...(cluster.tlsServerName ? { tlsServerName: cluster.tlsServerName } : {}),
  });
  try {
    return (await fetchClusterInfo(api, signal)).caPems;
  } finally {
    await api.close();
  }
}

export interface TrustUpdate {
  /** The new bundle: what was trusted, plus what is new, less what may go. */
  trusted: string[];
  added: string[];
  dropped: string[];
  /** No longer listed, but the server's chain still needs it. */
  kept: string[];
}

/**
 * The union of `current` and `listed`. A CA no longer listed is dropped only once the server's
 * certificate verifies without it (`verifies`), so a node never stops trusting the server it
 * talks to because cluster-info moved first.
 */
export async function reconcile(current: string[], listed: string[], verifies: (cas: string[]) => Promise<boolean>): Promise<TrustUpdate> {
  const have = new Set(current.map(der));
  const wanted = new Set(listed.map(der));
  const added = listed.filter((c, i) => !have.has(der(c)) && listed.findIndex((d) => der(d) === der(c)) === i);
  const unlisted = current.filter((c) => !wanted.has(der(c)));
  const without = [...current.filter((c) => wanted.has(der(c))), ...added];
  const drop = unlisted.length > 0 && without.length > 0 && (await verifies(without));
  return { trusted: drop ? without : [...current, ...added], added, dropped: drop ? unlisted : [], kept: drop ? [] : unlisted };
}

/** Whether a TLS handshake with the server verifies against exactly these CAs. */
export function serverVerifies(cluster: Pick<ClientConfig, 'server' | 'tlsServerName'>, cas: string[], timeoutMs = 10_000): Promise<boolean> {
  const url = new URL(cluster.server);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // SNI carries a name, never an address.
  const sni = cluster.tlsServerName ?? (isIP(host) ? undefined : host);
  return new Promise((resolve) => {
    const socket = tls.connect({
      host, port: Number(url.port || 443), ca: cas, rejectUnauthorized: false, ...(sni ? { servername: sni } : {}),
      // Only the chain is in question here; the name is checked by every real request.
      checkServerIdentity: () => undefined,
    });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('secureConnect', () => done(socket.authorized));
    socket.once('error', () => done(false));
  });
}

/** Whether one of `cas` signed `leafPem` (its issuer is among them). */
export function issuedByOneOf(leafPem: string, cas: string[]): boolean {
  const leaf = new X509Certificate(leafPem);
  return cas.some((pem) => {
    const ca = new X509Certificate(pem);
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  });
}

/** A TLS verification failure: the server's certificate does not chain to what the node trusts. */
export function isUntrustedServer(err: unknown): err is ApiError {
  return err instanceof ApiError && err.reason === UNKNOWN_AUTHORITY;
}

/** What to tell a user whose server no longer verifies and who has no token to refresh the CAs with. */
export function untrustedServerError(kubeconfig: string): TlsbootError {
  return new TlsbootError(
    `there is no bootstrap token to take them with. The cluster's CA may have changed: run tlsboot doctor to see which CA would verify the server; ` +
      `with a bootstrap token (bootstrapKubeconfig) tlsboot refreshes the CAs in ${kubeconfig} from cluster-info by itself`,
  );
}

/** A bootstrap kubeconfig that names no CA may use discovery only with a bootstrap token. */
export function discoveryToken(config: ClientConfig): string {
  if (!config.token) throw new ConfigError(`${config.file}: no certificate-authority(-data): discovery from cluster-info needs a bootstrap token to verify it with`);
  return config.token;
}

export interface TrustKeeperOptions {
  /** The kubeconfig tlsboot writes: its CA bundle is what the node trusts. */
  kubeconfig: string;
  /** The bootstrap kubeconfig with its token, when there is one (read each time: it may change). */
  bootstrap: () => Promise<ClientConfig | undefined>;
  /** --ca-cert-hash pins for token discovery. */
  pins: readonly string[];
  /** Rewrite the kubeconfig with this cluster (the new CA bundle). */
  write: (cluster: ClientConfig) => Promise<void>;
  log: Logger;
  /** The trust changed: outputs and hooks, as for a new certificate. */
  onChanged?: () => Promise<void>;
  /** After each refresh: why the certificate should be re-issued, or undefined (status, metrics). */
  onChecked?: (note: string | undefined) => void;
}

/**
 * One identity's trust in its cluster: discovery for a bootstrap kubeconfig without a CA, the
 * cluster-info refresh, and the recovery through the token when the server no longer verifies.
 */
export class TrustKeeper {
  /** Learned through the token while the written kubeconfig could not hold them yet. */
  private learned: string[] = [];
  /** What was last said of each kind of news, so that each is said once, not at every refresh. */
  private readonly told = new Map<string, string>();
  /** Why the current certificate should be re-issued, for status and doctor. */
  note: string | undefined;
  /** A re-issue after a signer change is under way; what it brings is not re-issued again. */
  private reissuing = false;
  private reissuedSerial: string | undefined;

  constructor(private readonly opts: TrustKeeperOptions) {}

  /**
   * A bootstrap kubeconfig made ready to use: a CA discovered through the token when it names
   * none, and the CAs the node already tracks added (a bootstrap kubeconfig goes stale after a
   * CA rotation; the written kubeconfig does not).
   */
  async complete(config: ClientConfig, signal?: AbortSignal): Promise<ClientConfig> {
    const cas = caList(config.caPem);
    if (cas.length === 0 && !config.insecureSkipTlsVerify && this.learned.length === 0) {
      this.learned = await discoverCas(config, discoveryToken(config), this.opts.pins, signal);
      this.opts.log.info('the bootstrap kubeconfig names no CA: took it from cluster-info, verified with the bootstrap token', {
        server: config.server, cas: this.learned.map(spkiPin).join(','), pinned: this.opts.pins.length > 0 || undefined,
      });
    }
    const union = [...cas, ...(await this.tracked()), ...this.learned].filter((c, i, all) => all.findIndex((d) => der(d) === der(c)) === i);
    if (union.length === cas.length) return config;
    const { caPath: _dropped, ...rest } = config;
    return { ...rest, caPem: union.join('') };
  }

  /**
   * Read cluster-info over verified TLS, take in new CAs, drop the ones the server no longer
   * needs; true when `leafPem` was issued by a CA cluster-info no longer lists (re-issue it).
   */
  async refresh(cluster: ClientConfig, leafPem: string, signal?: AbortSignal): Promise<boolean> {
    let listed: string[];
    try {
      listed = await listedCas(cluster, signal);
    } catch (err) {
      if (!isUntrustedServer(err)) throw err;
      listed = await this.throughToken(signal);
    }
    const update = await reconcile(caList(cluster.caPem), listed, (cas) => serverVerifies(cluster, cas));
    if (update.added.length > 0 || update.dropped.length > 0) {
      const { caPath: _path, ...rest } = cluster;
      await this.opts.write({ ...rest, caPem: update.trusted.join('') });
      this.opts.log.info('the cluster\'s CAs changed: the kubeconfig and ca outputs now trust them', {
        kubeconfig: this.opts.kubeconfig, added: update.added.map(spkiPin).join(',') || undefined, dropped: update.dropped.map(spkiPin).join(',') || undefined,
      });
      await this.opts.onChanged?.();
    }
    this.tell('kept', update.kept.map(spkiPin).join(','), () =>
      this.opts.log.info('a CA that cluster-info no longer lists is kept: the API server\'s certificate still needs it', { cas: update.kept.map(spkiPin).join(',') }));
    const stale = !issuedByOneOf(leafPem, listed);
    this.note = stale ? 'issued by a CA the cluster no longer lists' : undefined;
    this.opts.onChecked?.(this.note);
    return stale;
  }

  /**
   * When to rotate `leaf`, given whether refresh() found its CA unlisted: at a random point within
   * jitterMs (a fleet does not re-issue at once), unless `next` is sooner. Once per signer change:
   * if what the re-issue brought is unlisted too, the signer has not moved yet; say so, wait.
   */
  reissueAt(leaf: { serialNumber: string; issuer: string }, stale: boolean, next: Date, o: { now: Date; rand: Random; jitterMs: number }): Date {
    if (this.reissuing) {
      this.reissuing = false;
      this.reissuedSerial = leaf.serialNumber;
    }
    if (!stale) return next;
    if (this.reissuedSerial === leaf.serialNumber) {
      this.tell('still', leaf.serialNumber, () => this.opts.log.warn('the signer still issues from a CA that cluster-info does not list; not re-issuing again', { issuer: leaf.issuer }));
      return next;
    }
    const at = new Date(o.now.getTime() + o.rand() * o.jitterMs);
    if (at.getTime() >= next.getTime()) return next;
    this.reissuing = true;
    this.opts.log.info('the certificate was issued by a CA the cluster no longer lists: re-issuing it', { issuer: leaf.issuer, at: at.toISOString() });
    return at;
  }

  /**
   * The server's certificate did not verify: the CAs from cluster-info through the bootstrap
   * token, added to what is trusted (an error to retry on at once), or the server's error with
   * why it could not be mended (not retried under --once).
   */
  async recover(err: ApiError, signal?: AbortSignal): Promise<TlsbootError> {
    try {
      const cas = await this.throughToken(signal);
      const known = new Set([...this.learned, ...(await this.tracked())].map(der));
      // Nothing new to trust: asking again would fail the same way.
      if (cas.every((c) => known.has(der(c)))) throw new TlsbootError('cluster-info (verified with the bootstrap token) offers no CA the node does not trust already; run tlsboot doctor');
      this.learned = cas;
      const written = await this.written();
      if (written) {
        const update = await reconcile(caList(written.caPem), cas, async () => false);
        if (update.added.length > 0) {
          const { caPath: _path, ...rest } = written;
          await this.opts.write({ ...rest, caPem: update.trusted.join('') });
          await this.opts.onChanged?.();
        }
      }
      this.opts.log.info('the API server\'s certificate did not verify: took the cluster\'s CAs from cluster-info, verified with the bootstrap token', { cas: cas.map(spkiPin).join(',') });
      return new TlsbootError('the API server\'s certificate did not verify; the CAs were refreshed from cluster-info; retrying');
    } catch (e) {
      // The server's own error stays first: it says what is wrong; then why it could not be mended.
      return new ApiError(`${err.message}; the CAs could not be refreshed from cluster-info: ${e instanceof Error ? e.message : String(e)}`, 0, UNKNOWN_AUTHORITY, false);
    }
  }

  private async throughToken(signal?: AbortSignal): Promise<string[]> {
    const boot = await this.opts.bootstrap().catch(() => undefined);
    if (!boot?.token) throw untrustedServerError(this.opts.kubeconfig);
    return discoverCas(boot, boot.token, this.opts.pins, signal);
  }

  /** The written kubeconfig, if it reads (its certificate may be gone; its CA is what counts). */
  private async written(): Promise<ClientConfig | undefined> {
    return readKubeconfig(this.opts.kubeconfig).catch(() => undefined);
  }

  private async tracked(): Promise<string[]> {
    return caList((await this.written())?.caPem);
  }

  /** Say it when the state of this kind of news changed to something (not back to nothing). */
  private tell(kind: string, state: string, say: () => void): void {
    if (state === (this.told.get(kind) ?? '')) return;
    this.told.set(kind, state);
    if (state) say();
  }
}
