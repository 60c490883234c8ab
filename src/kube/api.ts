// A small typed client for the one API tlsboot needs: certificates.k8s.io/v1
// CertificateSigningRequests (create, get, list, watch, approve) plus /healthz and plain JSON
// calls for the cluster-side commands.
import { Agent, request, type Dispatcher } from 'undici';
import { checkCsr, checkCsrList, checkEvent, checkNodeAddresses } from './csrschema.js';
import { ApiError } from '../base/errors.js';
import type { CsrList, CsrObject, ResourceAttributes, StatusObject, WatchEvent } from './csrtypes.js';
import type { ClientConfig } from './kubeconfig.js';
import type { RequestLimiter } from './limiter.js';

export const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
/** Largest response body (or watch event line) we accept; a CSR object is a few KiB. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export type Credentials =
  | { kind: 'token'; token: string }
  | { kind: 'certificate'; certPem: string; keyPem: string }
  | { kind: 'anonymous' };

export interface ApiClientOptions {
  server: string;
  caPem?: string;
  insecureSkipTlsVerify?: boolean;
  tlsServerName?: string;
  credentials: Credentials;
  userAgent?: string;
  /** Connect + headers timeout for ordinary requests. */
  requestTimeoutMs?: number;
  /** Shared by the clients of one process: a bound on requests in flight per server (not watches). */
  limiter?: RequestLimiter;
  /** Told the status of every answer (0: none), for metrics. */
  onResponse?: (status: number) => void;
}

/** What a caller may add to a client made from a kubeconfig. */
export type ClientExtras = Pick<ApiClientOptions, 'limiter' | 'onResponse' | 'userAgent'>;

export class ApiClient {
  readonly server: string;
  private readonly agent: Agent;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly limiter: RequestLimiter | undefined;
  private readonly onResponse: ((status: number) => void) | undefined;

  constructor(opts: ApiClientOptions) {
    this.limiter = opts.limiter;
    this.onResponse = opts.onResponse;
    this.server = opts.server.replace(/\/+$/, '');
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
    const connect: Record<string, unknown> = {
      rejectUnauthorized: !opts.insecureSkipTlsVerify,
      timeout: this.timeoutMs,
    };
    if (opts.caPem) connect['ca'] = opts.caPem;
    if (opts.tlsServerName) connect['servername'] = opts.tlsServerName;
    if (opts.credentials.kind === 'certificate') {
      connect['cert'] = opts.credentials.certPem;
      connect['key'] = opts.credentials.keyPem;
    }
    this.agent = new Agent({ connect, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    this.headers = { accept: 'application/json', 'user-agent': opts.userAgent ?? 'tlsboot' };
    if (opts.credentials.kind === 'token') this.headers['authorization'] = `Bearer ${opts.credentials.token}`;
  }

  async createCsr(csr: CsrObject, signal?: AbortSignal): Promise<CsrObject> {
    return checkCsr(await this.json<unknown>('POST', CSR_PATH, csr, signal), `POST ${CSR_PATH}`);
  }

  async getCsr(name: string, signal?: AbortSignal): Promise<CsrObject> {
    const path = `${CSR_PATH}/${encodeURIComponent(name)}`;
    return checkCsr(await this.json<unknown>('GET', path, undefined, signal), `GET ${path}`);
  }

  /** A Node's status.addresses (every type), or undefined when there is no such Node. */
  async nodeAddresses(name: string, signal?: AbortSignal): Promise<string[] | undefined> {
    const path = `/api/v1/nodes/${encodeURIComponent(name)}`;
    try {
      return checkNodeAddresses(await this.json<unknown>('GET', path, undefined, signal), `GET ${path}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  async listCsrByName(name: string, signal?: AbortSignal): Promise<CsrList> {
    return this.list(`${CSR_PATH}?${selector(name)}`, signal);
  }

  /** Every CSR (the approver's view), with the list's resourceVersion to watch from. */
  async listCsrs(signal?: AbortSignal): Promise<CsrList> {
    return this.list(CSR_PATH, signal);
  }

  private async list(path: string, signal?: AbortSignal): Promise<CsrList> {
    return checkCsrList(await this.json<unknown>('GET', path, undefined, signal), `GET ${path}`);
  }

  /**
   * Watch one CSR by name from a resourceVersion. Yields events until the server ends the
   * stream (its timeoutSeconds) or the signal aborts; a 410 arrives as an ERROR event.
   */
  watchCsr(name: string, resourceVersion: string, signal: AbortSignal, timeoutSeconds = 300): AsyncGenerator<WatchEvent> {
    return this.watch(`${selector(name)}&`, name, resourceVersion, signal, timeoutSeconds);
  }

  /** Watch every CSR, as watchCsr does one. */
  watchCsrs(resourceVersion: string, signal: AbortSignal, timeoutSeconds = 300): AsyncGenerator<WatchEvent> {
    return this.watch('', 'certificatesigningrequests', resourceVersion, signal, timeoutSeconds);
  }

  /**
   * Write the CSR's conditions through the approval subresource. The object's resourceVersion
   * makes it conditional: if anyone changed the CSR since we read it, the answer is 409.
   */
  async updateApproval(csr: CsrObject, signal?: AbortSignal): Promise<CsrObject> {
    const path = `${CSR_PATH}/${encodeURIComponent(csr.metadata.name ?? '')}/approval`;
    return checkCsr(await this.json<unknown>('PUT', path, csr, signal), `PUT ${path}`);
  }

  private async *watch(filter: string, label: string, resourceVersion: string, signal: AbortSignal, timeoutSeconds: number): AsyncGenerator<WatchEvent> {
    const query = `${filter}watch=1&allowWatchBookmarks=true&timeoutSeconds=${timeoutSeconds}` +
      (resourceVersion ? `&resourceVersion=${encodeURIComponent(resourceVersion)}` : '');
    await this.limiter?.pace(this.server, signal);
    const res = await this.send('GET', `${CSR_PATH}?${query}`, undefined, signal, 0);
    if (res.statusCode !== 200) throw await this.errorFrom('GET', `${CSR_PATH} (watch)`, res);
    let buffered = '';
    try {
      for await (const chunk of res.body) {
        buffered += (chunk as Buffer).toString('utf8');
        if (buffered.length > MAX_BODY_BYTES) throw new ApiError(`watch ${label}: event larger than ${MAX_BODY_BYTES} bytes`, 0);
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) yield parseEvent(line, label);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError) throw err;
      throw new ApiError(`watch of ${label} broke: ${(err as Error).message}`, 0);
    } finally {
      res.body.destroy();
    }
  }

  /** SelfSubjectAccessReview: may the client's identity do this? */
  async canI(attributes: ResourceAttributes, signal?: AbortSignal): Promise<boolean> {
    const r = await this.json<{ status?: { allowed?: boolean } }>('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: attributes },
    }, signal);
    return r.status?.allowed === true;
  }

  /** SelfSubjectReview: who the API server takes these credentials for. */
  async whoami(signal?: AbortSignal): Promise<{ username: string; groups: string[] }> {
    const path = '/apis/authentication.k8s.io/v1/selfsubjectreviews';
    const r = await this.json<unknown>('POST', path, { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }, signal);
    const info = (r as { status?: { userInfo?: { username?: unknown; groups?: unknown } } } | null)?.status?.userInfo;
    if (typeof info?.username !== 'string') throw new ApiError(`POST ${path}: the server's answer is malformed: status.userInfo.username is not a string`, 0, 'MalformedResponse');
    const groups = Array.isArray(info.groups) ? info.groups.filter((g): g is string => typeof g === 'string') : [];
    return { username: info.username, groups };
  }

  /** Any JSON API call (the cluster-side commands: Secrets, RBAC). */
  async request<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    return this.json<T>(method, path, body, signal);
  }

  /**
   * GET /readyz, sent without credentials. 'starting' when the server answers but is not ready:
   * 500, or 403 while its RBAC is not loaded yet (the default policy lets anyone read /readyz).
   * 'unknown' when it will not say: 401 (anonymous requests disabled), or unreachable.
   */
  async readiness(signal?: AbortSignal): Promise<'ready' | 'starting' | 'unknown'> {
    try {
      const res = await this.send('GET', '/readyz', undefined, signal, this.timeoutMs);
      await res.body.dump();
      if (res.statusCode === 200) return 'ready';
      return res.statusCode === 401 ? 'unknown' : 'starting';
    } catch {
      return 'unknown';
    }
  }

  async healthz(signal?: AbortSignal): Promise<boolean> {
    try {
      const res = await this.send('GET', '/healthz', undefined, signal, this.timeoutMs);
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    // destroy, not close: close() waits for open watch streams for ever.
    await this.agent.destroy();
  }

  private async json<T>(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    if (!this.limiter) return this.jsonNow<T>(method, path, body, signal);
    return this.limiter.run(this.server, () => this.jsonNow<T>(method, path, body, signal), signal);
  }

  private async jsonNow<T>(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.send(method, path, body, signal, this.timeoutMs);
    if (res.statusCode < 200 || res.statusCode >= 300) throw await this.errorFrom(method, path, res);
    const text = await readLimited(res.body);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(`${method} ${this.server}${path}: answer is not JSON`, res.statusCode);
    }
  }

  private async send(method: string, path: string, body: unknown, signal: AbortSignal | undefined, bodyTimeout: number): Promise<Dispatcher.ResponseData> {
    const headers = { ...this.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const res = await request(`${this.server}${path}`, {
        dispatcher: this.agent,
        method: method as Dispatcher.HttpMethod,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: signal ?? null,
        bodyTimeout,
      });
      this.onResponse?.(res.statusCode);
      return res;
    } catch (err) {
      if (signal?.aborted) throw err;
      this.onResponse?.(0);
      const { text, tls } = describeNetworkError(err);
      // A server we do not trust will not become trustworthy by asking again.
      throw new ApiError(`cannot reach ${this.server}: ${text}`, 0, tls ? (tls === 'chain' ? UNKNOWN_AUTHORITY : 'TLSVerificationFailed') : '', !tls);
    }
  }

  private async errorFrom(method: string, path: string, res: Dispatcher.ResponseData): Promise<ApiError> {
    let status: StatusObject | undefined;
    try {
      const parsed = JSON.parse(await readLimited(res.body)) as unknown;
      if (isStatus(parsed)) status = parsed;
    } catch {
      // Not a Status body (a proxy's HTML page, say); the code alone has to do.
    }
    const reason = status?.reason ?? '';
    const detail = status?.message ? `: ${status.message}` : '';
    const retryAfterMs = res.statusCode === 429 || res.statusCode === 503 ? parseRetryAfter(res.headers['retry-after'], Date.now()) : 0;
    return new ApiError(`${method} ${path}: ${res.statusCode}${reason ? ' ' + reason : ''}${detail}`, res.statusCode, reason, undefined, retryAfterMs);
  }
}

/**
 * A Retry-After header in ms: delay-seconds, or an HTTP date (RFC 9110 10.2.3). 0 when absent or
 * not understood; kube-apiserver sends seconds (1 for APF's 429s).
 */
export function parseRetryAfter(header: string | string[] | undefined, now: number): number {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (!value) return 0;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? 0 : Math.max(0, at - now);
}

function selector(name: string): string {
  return `fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}`;
}

function parseEvent(line: string, name: string): WatchEvent {
  let ev: unknown;
  try {
    ev = JSON.parse(line);
  } catch {
    throw new ApiError(`watch of ${name}: malformed event`, 0);
  }
  return checkEvent(ev, `watch of ${name}`);
}

function isStatus(v: unknown): v is StatusObject {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'Status';
}

async function readLimited(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      body.destroy();
      throw new ApiError(`response larger than ${MAX_BODY_BYTES} bytes`, 0);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The reason of an ApiError whose server's certificate does not chain to the CAs given: the one
 * TLS failure that new CAs from cluster-info can mend (a clock or a name cannot).
 */
export const UNKNOWN_AUTHORITY = 'TLSUnknownAuthority';

function describeNetworkError(err: unknown): { text: string; tls: false | 'clock' | 'name' | 'chain' } {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code ?? e.code ?? '';
  const msg = e.cause?.message ?? e.message ?? String(err);
  if (code === 'CERT_NOT_YET_VALID' || code === 'CERT_HAS_EXPIRED') {
    const state = code === 'CERT_NOT_YET_VALID' ? 'is not yet valid' : 'has expired';
    return { text: `TLS verification failed: the server's certificate ${state} by this machine's clock (${new Date().toISOString()}); check the clock (timedatectl), then the server's certificate`, tls: 'clock' };
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME/.test(code)) {
    return { text: `TLS verification failed (${msg}); check certificate-authority(-data) and tls-server-name in the kubeconfig`, tls: code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? 'name' : 'chain' };
  }
  return { text: code && !msg.includes(code) ? `${code} ${msg}` : msg, tls: false };
}

/** A client for a kubeconfig's cluster with the given credentials. */
export function clientFor(config: ClientConfig, credentials: Credentials, extras: ClientExtras = {}): ApiClient {
  return new ApiClient({
    ...extras,
    server: config.server,
    ...(config.caPem ? { caPem: config.caPem } : {}),
    insecureSkipTlsVerify: config.insecureSkipTlsVerify,
    ...(config.tlsServerName ? { tlsServerName: config.tlsServerName } : {}),
    credentials,
  });
}
