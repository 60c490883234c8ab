// `tlsboot credential`: a client-go exec credential plugin that hands out the current certificate.
import type { Options } from 'yargs';
import { ConfigError, ExitCode, reportError, type ExitCodeValue } from '../base/errors.js';
import { createLogger } from '../base/log.js';
import type { Io } from './io.js';

export interface CredentialArgs {
  kubeconfig?: string;
  config?: string;
  identity?: string;
}

export const CREDENTIAL_OPTIONS: Record<string, Options> = {
  kubeconfig: { type: 'string', describe: 'the kubeconfig tlsboot run writes (--kubeconfig of run)' },
  config: { type: 'string', describe: 'or: tlsboot\'s config file, with --identity when it has several' },
  identity: { type: 'string', describe: 'the identity of --config whose certificate to hand out' },
};

/** Which kubeconfig holds the identity's current certificate. */
async function kubeconfigOf(a: CredentialArgs): Promise<string> {
  if (a.kubeconfig && a.config) throw new ConfigError('give either --kubeconfig or --config, not both');
  if (a.kubeconfig) return a.kubeconfig;
  if (!a.config) throw new ConfigError('--kubeconfig is required (the kubeconfig tlsboot run writes), or --config FILE with --identity');
  const { loadConfig } = await import('../daemon/config.js');
  const { identities } = await loadConfig(a.config);
  const names = identities.map((i) => i.name).join(', ');
  if (!a.identity) {
    if (identities.length === 1) return identities[0]!.kubeconfig;
    throw new ConfigError(`${a.config} has several identities (${names}): name one with --identity`);
  }
  const found = identities.find((i) => i.name === a.identity);
  if (!found) throw new ConfigError(`${a.config} has no identity ${JSON.stringify(a.identity)} (it has: ${names})`);
  return found.kubeconfig;
}

export async function credentialCommand(a: CredentialArgs, io: Io): Promise<ExitCodeValue> {
  try {
    const { execCredential } = await import('../node/execcredential.js');
    io.stdout(JSON.stringify(await execCredential(await kubeconfigOf(a), new Date())) + '\n');
    return ExitCode.ok;
  } catch (err) {
    return reportError(err, createLogger({ write: (l) => io.stderr(l + '\n') }));
  }
}
