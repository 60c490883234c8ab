// Which credentials an identity has now: its current certificate, when the written kubeconfig
// holds one that is usable, else the bootstrap token. The agent and `tlsboot doctor` decide the
// same way, from here.
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { isMap, isSeq, parseDocument } from 'yaml';
import { ApiError, BootstrapTokenRejectedError, ConfigError, TlsbootError, errorMessage } from '../base/errors.js';
import { readIfExists, writeFileAtomic } from '../base/fsutil.js';
import { USER_AGENT } from '../base/version.js';
import { clientFor, type Credentials } from '../kube/api.js';
import { checkToken, readKubeconfig, type ClientConfig } from '../kube/kubeconfig.js';
import { parseChain, type CertInfo } from '../pki/certs.js';
import { loadPrivateKey } from '../pki/keys.js';
import type { IdentitySettings } from './identity.js';
import { parseCredential } from './store.js';

/** A usable current certificate: its kubeconfig, the pair, and the parsed chain. */
export interface Current {
  config: ClientConfig;
  cert: { certPem: string; keyPem: string };
  leaf: CertInfo;
  chain: CertInfo[];
}

/** A certificate on disk: a client one comes with the kubeconfig that points at it; a serving one does not. */
export type Held = Omit<Current, 'config'> & { config?: ClientConfig };

/** Why a current certificate there is cannot be used (a log line and its fields). */
export interface Problem {
  kind: 'kubeconfig' | 'mismatch' | 'unreadable' | 'expired' | 'not yet valid';
  message: string;
  fields: Record<string, string>;
}

/**
 * The certificate the written kubeconfig points at, if it is usable now: the pair matches, no
 * certificate of the chain has expired, none is valid only later. kubelet checks expiry only; a
 * mismatched pair would fail every TLS handshake for ever, and the API server refuses a client
 * certificate before its NotBefore.
 */
export async function readCurrent(kubeconfig: string, now: Date): Promise<{ current?: Current; problem?: Problem }> {
  let config: ClientConfig;
  try {
    config = await readKubeconfig(kubeconfig);
  } catch (err) {
    if (!(await readIfExists(kubeconfig))) return {};
    return { problem: { kind: 'kubeconfig', message: 'ignoring the unusable kubeconfig; it will be rewritten after bootstrap', fields: { kubeconfig, error: errorMessage(err) } } };
  }
  const cc = config.clientCertificate;
  if (!cc) return {};
  const checked = checkPair(cc.certPem, cc.keyPem, cc.keyPath ?? kubeconfig, now, { what: 'client certificate', unusable: 'the client certificate in the kubeconfig is unusable; bootstrapping again', instead: 'falling back to the bootstrap kubeconfig', kubeconfig });
  return checked.problem ? { problem: checked.problem } : { current: { config, ...checked.pair } };
}

/**
 * A serving certificate: `<prefix>-current.pem` (certificate and key in one file, kubelet's
 * layout) when it is usable now, checked as readCurrent checks a client certificate.
 */
export async function readServing(file: string, now: Date): Promise<{ current?: Omit<Current, 'config'>; problem?: Problem }> {
  const text = (await readIfExists(file))?.toString('utf8');
  if (text === undefined) return {};
  let certPem: string;
  let keyPem: string;
  try {
    ({ chainPem: certPem, keyPem } = parseCredential(text, file));
  } catch (err) {
    return { problem: { kind: 'unreadable', message: 'the serving certificate is unusable; requesting a new one', fields: { file, error: errorMessage(err) } } };
  }
  const checked = checkPair(certPem, keyPem, file, now, { what: 'serving certificate', unusable: 'the serving certificate is unusable; requesting a new one', instead: 'requesting a new one', file });
  return checked.problem ? { problem: checked.problem } : { current: checked.pair };
}

/** The pair matches and every certificate of the chain is valid now; else the problem. */
function checkPair(
  certPem: string, keyPem: string, keyWhere: string, now: Date, say: { what: string; unusable: string; instead: string; [field: string]: string },
): { pair: Omit<Current, 'config'>; problem?: undefined } | { problem: Problem } {
  const { what, instead, unusable: message, ...where } = say;
  const unusable = (kind: Problem['kind'], error: string): { problem: Problem } => ({ problem: { kind, message, fields: { ...where, error } } });
  let chain: CertInfo[];
  try {
    chain = parseChain(certPem);
    const key = loadPrivateKey(keyPem, keyWhere);
    if (!new X509Certificate(certPem).checkPrivateKey(key.privateKey)) return unusable('mismatch', 'the private key does not match the certificate');
  } catch (err) {
    return unusable('unreadable', errorMessage(err));
  }
  const expired = chain.find((c) => c.notAfter.getTime() <= now.getTime());
  if (expired) return { problem: { kind: 'expired', message: `the ${what} has expired; ${instead}`, fields: { ...where, notAfter: expired.notAfter.toISOString() } } };
  const early = chain.find((c) => c.notBefore.getTime() > now.getTime());
  if (early) {
    return {
      problem: {
        kind: 'not yet valid', message: `the ${what} is not valid yet (is this clock, or the signer's, off?); ${instead}`,
        fields: { ...where, notBefore: early.notBefore.toISOString() },
      },
    };
  }
  return { pair: { cert: { certPem, keyPem }, leaf: chain[0]!, chain } };
}

/**
 * What a serving certificate is requested with: the node's client kubeconfig (kubelet's, or the
 * one tlsboot writes for the client identity), whatever it authenticates with. Not a ConfigError
 * while it has no usable certificate yet: the client identity may be bootstrapping right now.
 */
export async function readClientKubeconfig(file: string, now: Date): Promise<{ config: ClientConfig; credentials: Credentials }> {
  let config: ClientConfig;
  try {
    config = await readKubeconfig(file);
  } catch (err) {
    throw new TlsbootError(`the node's client kubeconfig ${file} is unusable (${errorMessage(err)}): a serving certificate is requested with it; bootstrap the node's client certificate first`);
  }
  if (config.token) return { config, credentials: { kind: 'token', token: config.token } };
  const cc = config.clientCertificate;
  if (!cc) throw new ConfigError(`${file}: the current user has no client certificate or token to request the serving certificate with`);
  const checked = checkPair(cc.certPem, cc.keyPem, cc.keyPath ?? file, now, { what: 'client certificate', unusable: '', instead: '' });
  if (checked.problem) {
    const { kind, fields } = checked.problem;
    throw new TlsbootError(`${file}: the node's client certificate is ${kind === 'mismatch' || kind === 'unreadable' ? 'unusable' : kind} (${Object.values(fields).join(', ')}); the serving certificate is requested with it once it is renewed`);
  }
  return { config, credentials: { kind: 'certificate', certPem: cc.certPem, keyPem: cc.keyPem } };
}

/** The bootstrap kubeconfig and what to authenticate with from it; a ConfigError that says what to fix. */
export async function readBootstrap(s: IdentitySettings): Promise<{ config: ClientConfig; credentials: Credentials }> {
  const file = s.bootstrapKubeconfig;
  if (!file) throw new ConfigError(`no valid client certificate in ${s.kubeconfig} and no --bootstrap-kubeconfig given; pass one to bootstrap`);
  let config: ClientConfig;
  try {
    config = await readKubeconfig(file);
  } catch (err) {
    throw new ConfigError(`no valid client certificate in ${s.kubeconfig}, and the bootstrap kubeconfig is unusable: ${errorMessage(err)}`);
  }
  if (s.bootstrapTokenFile) {
    const text = (await readIfExists(s.bootstrapTokenFile))?.toString('utf8');
    if (text === undefined) throw new ConfigError(`${s.bootstrapTokenFile}: the bootstrap token file is missing`);
    config.token = checkToken(text, `${s.bootstrapTokenFile}: the bootstrap token file`);
    config.tokenFile = s.bootstrapTokenFile;
  }
  if (config.insecureSkipTlsVerify && !s.allowInsecureBootstrap) {
    throw new ConfigError(`${file}: insecure-skip-tls-verify is set; add the cluster CA (certificate-authority-data) or pass --allow-insecure-bootstrap`);
  }
  if (config.token) return { config, credentials: { kind: 'token', token: config.token } };
  if (config.clientCertificate) {
    return { config, credentials: { kind: 'certificate', certPem: config.clientCertificate.certPem, keyPem: config.clientCertificate.keyPem } };
  }
  throw new ConfigError(`${file}: the current user has no token, tokenFile or client certificate to bootstrap with`);
}

/**
 * What a 401 for the bootstrap credentials means. A kube-apiserver that has just started answers
 * 401 to every token until its informers have synced (found by the fault suite): that is not a
 * verdict on the token, so while /readyz says the server is starting, the 401 is retried.
 */
export async function unauthorized(config: ClientConfig, err: ApiError, signal: AbortSignal): Promise<Error> {
  const anonymous = clientFor(config, { kind: 'anonymous' }, { userAgent: USER_AGENT });
  try {
    if ((await anonymous.readiness(signal)) === 'starting') {
      return new ApiError(`${config.server} refused the bootstrap token while it is still starting (401, /readyz not ready); retrying`, 503, 'NotReady');
    }
  } finally {
    await anonymous.close();
  }
  return new BootstrapTokenRejectedError(
    `the bootstrap credentials in ${config.file} were rejected (${err.status} ${err.reason || 'Unauthorized'}): the token has expired or was deleted. ` +
      `Create a new bootstrap token (kubeadm token create, or tlsboot token create) and put it in ${config.tokenFile ?? config.file}`,
  );
}

/** What `removeBootstrapCredential` tells status and doctor once the token is gone. */
export const NO_BOOTSTRAP_CREDENTIAL = 'the bootstrap token was removed after the first certificate (removeBootstrapCredential): rotation depends on the current certificate alone; ' +
  'if it ever expires, put a new token in place (tlsboot bundle, or tlsboot token create)';

/**
 * Remove the bootstrap token once it has served: the token file, or the `token` of a bootstrap
 * kubeconfig that tlsboot wrote (`tlsboot kubeconfig bootstrap`, `cluster init`, `bundle`: user
 * tls-bootstrap). A kubeconfig written by someone else is left alone, with a reason. Returns what
 * was removed, or why nothing could be.
 */
export async function removeBootstrapToken(s: Pick<IdentitySettings, 'bootstrapTokenFile' | 'bootstrapKubeconfig'>): Promise<{ removed: string[]; problem?: string }> {
  const tokenFile = s.bootstrapTokenFile ?? (s.bootstrapKubeconfig ? (await readKubeconfig(s.bootstrapKubeconfig).catch(() => undefined))?.tokenFile : undefined);
  if (tokenFile) {
    try {
      await fs.rm(tokenFile, { force: true });
      return { removed: [tokenFile] };
    } catch (err) {
      return { removed: [], problem: `cannot remove the bootstrap token file ${tokenFile}: ${errorMessage(err)}; remove it where it comes from` };
    }
  }
  const file = s.bootstrapKubeconfig;
  const text = file ? (await readIfExists(file))?.toString('utf8') : undefined;
  if (!file || text === undefined) return { removed: [] };
  const doc = parseDocument(text);
  const users = doc.get('users');
  if (!isSeq(users)) return { removed: [] };
  let found = false;
  let ours = true;
  for (const u of users.items) {
    if (!isMap(u) || !u.hasIn(['user', 'token'])) continue;
    found = true;
    if (u.get('name') !== 'tls-bootstrap') ours = false;
    else u.deleteIn(['user', 'token']);
  }
  if (!found) return { removed: [] };
  if (!ours) return { removed: [], problem: `${file} was not written by tlsboot (its user is not tls-bootstrap): remove its token by hand` };
  await writeFileAtomic(file, doc.toString({ lineWidth: 0 }), { mode: 0o600 });
  return { removed: [`${file} (token)`] };
}
