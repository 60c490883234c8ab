// `tlsboot kubeconfig bootstrap`: a bootstrap kubeconfig from a server, a CA and a token.
// `tlsboot kubeconfig exec`: a kubeconfig whose user is `tlsboot credential` (an exec plugin).
import path from 'node:path';
import { ConfigError, ExitCode } from '../base/errors.js';
import { readInputFile, writeFileAtomic } from '../base/fsutil.js';
import { isBootstrapToken } from '../kube/vocabulary.js';
import { kubeconfigLib, readCa, TOKEN_SHAPE_ERROR, type Handler } from './admin.js';
import type { Io } from './io.js';

export const kubeconfigBootstrap: Handler<{
  server: string; ca?: string; discover: boolean; 'ca-cert-hash'?: string[]; token?: string; 'token-file'?: string; 'tls-server-name'?: string; out: string;
}> = async (a, io) => {
  if (Boolean(a.ca) === a.discover) throw new ConfigError('give exactly one of --ca (the cluster CA file) and --discover (take it from cluster-info, verified with the token)');
  if (a['ca-cert-hash']?.length && !a.discover) throw new ConfigError('--ca-cert-hash goes with --discover');
  if (Boolean(a.token) === Boolean(a['token-file'])) throw new ConfigError('give exactly one of --token and --token-file');
  const token = a.token ?? (await readInputFile(a['token-file']!, { setting: '--token-file' })).trim();
  if (!isBootstrapToken(token)) throw new ConfigError(TOKEN_SHAPE_ERROR);
  let url: URL;
  try {
    url = new URL(a.server);
  } catch {
    throw new ConfigError(`--server ${JSON.stringify(a.server)} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new ConfigError('--server must be an https:// URL');
  const { renderBootstrapKubeconfig } = await kubeconfigLib();
  const server = a.server.replace(/\/+$/, '');
  const caPem = a.ca ? await readCa(a.ca) : await discover(server, token, a['ca-cert-hash'] ?? [], a['tls-server-name'], io);
  await writeFileAtomic(a.out, renderBootstrapKubeconfig({ server, caPem, token, ...(a['tls-server-name'] ? { tlsServerName: a['tls-server-name'] } : {}) }), { mode: 0o600 });
  io.stdout(`bootstrap kubeconfig written to ${a.out}\n`);
  return ExitCode.ok;
};

/** Token discovery (node/trust): the CAs cluster-info lists, verified with the token and the pins. */
async function discover(server: string, token: string, pinsGiven: string[], tlsServerName: string | undefined, io: Io): Promise<string> {
  const [{ discoverCas }, { parsePin, spkiPin }] = await Promise.all([import('../node/trust.js'), import('../pki/pin.js')]);
  const pins = pinsGiven.map((p) => parsePin(String(p), '--ca-cert-hash'));
  const cas = await discoverCas({ server, ...(tlsServerName ? { tlsServerName } : {}) }, token, pins, AbortSignal.timeout(60_000));
  io.stderr(`discovered ${cas.length} CA(s) from ${server} cluster-info, verified with the token${pins.length ? ' and pinned' : ''}: ${cas.map(spkiPin).join(', ')}\n`);
  return cas.join('');
}

/**
 * The cluster of the kubeconfig tlsboot writes, with `tlsboot credential --kubeconfig` as the
 * user: kubectl and client-go then always present the certificate tlsboot keeps current.
 */
export const kubeconfigExec: Handler<{ kubeconfig: string; out: string; command: string; user: string }> = async (a, io) => {
  const { readKubeconfig, renderExecKubeconfig } = await kubeconfigLib();
  let config;
  try {
    config = await readKubeconfig(a.kubeconfig);
  } catch (err) {
    throw new ConfigError(`--kubeconfig ${a.kubeconfig}: ${(err as Error).message}; give the kubeconfig tlsboot run writes`);
  }
  const caPem = config.caPem ?? (config.caPath ? await readInputFile(config.caPath, { setting: `${a.kubeconfig}: certificate-authority` }) : undefined);
  if (!caPem) throw new ConfigError(`${a.kubeconfig} names no cluster CA; the exec kubeconfig needs one to verify the server`);
  const text = renderExecKubeconfig({
    server: config.server, caPem, ...(config.tlsServerName ? { tlsServerName: config.tlsServerName } : {}),
    user: a.user, command: a.command, args: ['credential', '--kubeconfig', path.resolve(a.kubeconfig)],
  });
  await writeFileAtomic(a.out, text, { mode: 0o600 });
  io.stdout(`kubeconfig with the exec plugin "${a.command} credential" written to ${a.out}\n`);
  return ExitCode.ok;
};
