// Which credentials an identity has now: its current certificate, when the written kubeconfig
// holds one that is usable, else the bootstrap token. The agent and `tlsboot doctor` decide the
// same way, from here.
import { X509Certificate } from 'node:crypto';
import { ApiError, BootstrapTokenRejectedError, ConfigError, errorMessage } from '../base/errors.js';
import { readIfExists } from '../base/fsutil.js';
import { USER_AGENT } from '../base/version.js';
import { clientFor, type Credentials } from '../kube/api.js';
import { checkToken, readKubeconfig, type ClientConfig } from '../kube/kubeconfig.js';
import { parseChain, type CertInfo } from '../pki/certs.js';
import { loadPrivateKey } from '../pki/keys.js';
import type { IdentitySettings } from './identity.js';

/** A usable current certificate: its kubeconfig, the pair, and the parsed chain. */
export interface Current {
  config: ClientConfig;
  cert: { certPem: string; keyPem: string };
  leaf: CertInfo;
  chain: CertInfo[];
}

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
  const unusable = (kind: Problem['kind'], error: string): { problem: Problem } =>
    ({ problem: { kind, message: 'the client certificate in the kubeconfig is unusable; bootstrapping again', fields: { kubeconfig, error } } });
  let chain: CertInfo[];
  try {
    chain = parseChain(cc.certPem);
    const key = loadPrivateKey(cc.keyPem, cc.keyPath ?? kubeconfig);
    if (!new X509Certificate(cc.certPem).checkPrivateKey(key.privateKey)) return unusable('mismatch', 'the private key does not match the certificate');
  } catch (err) {
    return unusable('unreadable', errorMessage(err));
  }
  const expired = chain.find((c) => c.notAfter.getTime() <= now.getTime());
  if (expired) {
    return { problem: { kind: 'expired', message: 'the client certificate has expired; falling back to the bootstrap kubeconfig', fields: { kubeconfig, notAfter: expired.notAfter.toISOString() } } };
  }
  const early = chain.find((c) => c.notBefore.getTime() > now.getTime());
  if (early) {
    return {
      problem: {
        kind: 'not yet valid', message: 'the client certificate is not valid yet (is this clock, or the signer\'s, off?); falling back to the bootstrap kubeconfig',
        fields: { kubeconfig, notBefore: early.notBefore.toISOString() },
      },
    };
  }
  return { current: { config, cert: { certPem: cc.certPem, keyPem: cc.keyPem }, leaf: chain[0]!, chain } };
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
