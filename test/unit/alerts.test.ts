// The shipped alert rules (examples/prometheus) with Prometheus' own promtool: they load, their
// unit tests pass, every metric they name is one tlsboot serves, and those metrics follow
// Prometheus' naming conventions (promtool check metrics).
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ApproverMetrics } from '../../src/approver/metrics.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { ROOT } from '../support/helpers.js';

const DIR = path.join(ROOT, 'examples', 'prometheus');

function promtool(args: string[], input?: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', args, { cwd: DIR, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? 1, output }));
    p.stdin.end(input ?? '');
  });
}

/** What each endpoint serves once it has something to say about every series. */
async function exposition(): Promise<string> {
  const agent = new Metrics();
  const now = new Date();
  agent.certificate('kubelet', now, new Date(now.getTime() + 3600_000), new Date(now.getTime() + 2700_000));
  agent.rotations.inc({ identity: 'kubelet' });
  agent.rotationErrors.inc({ identity: 'kubelet', reason: 'Unavailable' });
  agent.hookFailures.inc({ identity: 'kubelet', hook: 'exec' });
  agent.throttled.inc({ identity: 'kubelet' });
  agent.issuance.observe({ identity: 'kubelet' }, 1.5);
  const approver = new ApproverMetrics();
  approver.decisions.inc({ decision: 'approved', rule: 'r', signer: 's' });
  approver.errors.inc({ reason: 'Forbidden' });
  approver.lastSync.setToCurrentTime();
  return (await agent.registry.metrics()) + (await approver.registry.metrics());
}

t.test('the rules load and pass their promtool unit tests', async (t) => {
  const check = await promtool(['check', 'rules', 'tlsboot.rules.yaml']);
  t.equal(check.code, 0, check.output);
  t.match(check.output, /SUCCESS: 7 rules found/);
  const test = await promtool(['test', 'rules', 'tlsboot.rules.test.yaml']);
  t.equal(test.code, 0, test.output);
  t.match(test.output, /SUCCESS/);
});

t.test('every metric the rules name is served, and the metrics pass promtool check metrics', async (t) => {
  const served = await exposition();
  const rules = await fs.readFile(path.join(DIR, 'tlsboot.rules.yaml'), 'utf8');
  const named = [...new Set(rules.match(/\btlsboot_[a-z_]+/g) ?? [])];
  t.ok(named.length >= 6, named.join(' '));
  for (const name of named) t.match(served, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is served`);
  const lint = await promtool(['check', 'metrics'], served);
  t.equal(lint.code, 0, lint.output);
  t.equal(lint.output.trim(), '', 'no naming problems');
});
