// `tlsboot kubeconfig bootstrap`: a bootstrap kubeconfig from a server, a CA and a token.
import { ConfigError, ExitCode } from '../base/errors.js';
import { readInputFile, writeFileAtomic } from '../base/fsutil.js';
import { isBootstrapToken } from '../kube/vocabulary.js';
import { kubeconfigLib, readCa, TOKEN_SHAPE_ERROR, type Handler } from './admin.js';

export const kubeconfigBootstrap: Handler<{ server: string; ca: string; token?: string; 'token-file'?: string; 'tls-server-name'?: string; out: string }> = async (a, io) => {
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
  const caPem = await readCa(a.ca);
  await writeFileAtomic(a.out, renderBootstrapKubeconfig({ server: a.server.replace(/\/+$/, ''), caPem, token, ...(a['tls-server-name'] ? { tlsServerName: a['tls-server-name'] } : {}) }), { mode: 0o600 });
  io.stdout(`bootstrap kubeconfig written to ${a.out}\n`);
  return ExitCode.ok;
};
