// `tlsboot bundle`: everything one node needs, with a token minted for it.
import { ConfigError, ExitCode } from '../base/errors.js';
import { readInputFile } from '../base/fsutil.js';
import { isBootstrapToken } from '../kube/vocabulary.js';
import { lib, makeToken, readCa, TOKEN_SHAPE_ERROR, type Handler } from './admin.js';

export const bundle: Handler<{ node: string; identity: string; out: string; kubeconfig?: string; 'token-file'?: string; server?: string; ca?: string; ttl: string; groups: string[] }> = async (a, io) => {
  const { writeBundle } = await import('../cluster/bundle.js');
  let server = a.server;
  let caPem = a.ca ? await readCa(a.ca) : undefined;
  let token: string;
  if (a['token-file']) {
    token = (await readInputFile(a['token-file'], { setting: '--token-file' })).trim();
  } else {
    if (!a.kubeconfig) throw new ConfigError('give --kubeconfig (an admin kubeconfig, to mint a token for this node) or --token-file');
    const made = await makeToken({ kubeconfig: a.kubeconfig, 'dry-run': false, output: 'yaml', ttl: a.ttl, groups: a.groups, description: `tlsboot bundle for ${a.node}` }, io);
    token = made!.value;
  }
  if (a.kubeconfig && (!server || !caPem)) {
    const { adminClient } = await lib();
    const adm = await adminClient(a.kubeconfig);
    await adm.api.close();
    server ??= adm.server;
    caPem ??= adm.caPem;
  }
  if (!server || !caPem) throw new ConfigError('give --server and --ca (or --kubeconfig to take them from)');
  if (!isBootstrapToken(token)) throw new ConfigError(TOKEN_SHAPE_ERROR);
  const service = await writeBundle({ node: a.node, identity: a.identity as 'kubelet', server, caPem, token, out: a.out });
  io.stdout(`bundle for ${a.node} (${service}) written to ${a.out}; on the node run install.sh from it\n`);
  return ExitCode.ok;
};
