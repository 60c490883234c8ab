// `tlsboot status` and `tlsboot doctor`: what is on disk, and why bootstrap or rotation fails.
// Both take the flags of `run` that say where an identity lives, or --config.
import type { Argv } from 'yargs';
import { ExitCode, reportError, type ExitCodeValue } from '../base/errors.js';
import { createLogger } from '../base/log.js';
import type { Io } from './io.js';
import { configFrom, RUN_OPTIONS, type RunArgs } from './run.js';

export const STATUS_KEYS = ['config', 'kubeconfig', 'cert-dir', 'node-name', 'signer-name', 'common-name', 'organization', 'file-prefix', 'key-algorithm', 'keep', 'approval-timeout', 'allow-insecure-bootstrap', 'serving'];

export const DOCTOR_KEYS = [...STATUS_KEYS, 'bootstrap-kubeconfig', 'usage', 'dns-name', 'ip-address', 'expiration-seconds', 'ca-cert-hash', 'remove-bootstrap-credential'];

export function doctorOptions(y: Argv): Argv {
  const opts = Object.fromEntries(DOCTOR_KEYS.map((k) => [k, RUN_OPTIONS[k]!]));
  return y.options({ ...opts, json: { type: 'boolean', default: false, describe: 'print JSON' } })
    .epilogue('Checks in order and stops at the first failure. Exit codes: 0 no failure (warnings allowed), 1 a check failed, 2 usage error.');
}

export function statusOptions(y: Argv): Argv {
  const opts = Object.fromEntries(STATUS_KEYS.map((k) => [k, RUN_OPTIONS[k]!]));
  return y.options({ ...opts, json: { type: 'boolean', default: false, describe: 'print JSON' } })
    .epilogue('Exit codes: 0 all fine, 1 a certificate in its last 10 % of life or a hook failing, 2 a certificate missing or expired.');
}

export type StatusArgs = RunArgs & { json: boolean };

export async function statusCommand(a: StatusArgs, io: Io): Promise<ExitCodeValue> {
  try {
    const { readStatus, formatStatus } = await import('../daemon/status.js');
    const { code, identities } = await readStatus(await configFrom(a));
    io.stdout(a.json ? JSON.stringify({ identities }, null, 2) + '\n' : formatStatus(identities));
    return code;
  } catch (err) {
    return reportError(err, createLogger({ write: (l) => io.stderr(l + '\n') }));
  }
}

export async function doctorCommand(a: StatusArgs, io: Io): Promise<ExitCodeValue> {
  try {
    const { runDoctor, formatChecks } = await import('../daemon/doctor.js');
    const config = await configFrom(a);
    const results: Array<{ identity: string; checks: Awaited<ReturnType<typeof runDoctor>> }> = [];
    for (const id of config.identities) results.push({ identity: id.name, checks: await runDoctor(id) });
    if (a.json) io.stdout(JSON.stringify({ identities: results }, null, 2) + '\n');
    else io.stdout(results.map((r) => (results.length > 1 ? `${r.identity}:\n` : '') + formatChecks(r.checks)).join('\n'));
    return results.some((r) => r.checks.some((c) => c.verdict === 'fail')) ? ExitCode.runtime : ExitCode.ok;
  } catch (err) {
    return reportError(err, createLogger({ write: (l) => io.stderr(l + '\n') }));
  }
}
