// The README is a contract: its config example must load, and its examples must be valid.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { loadConfig, parseConfig } from '../../src/daemon/config.js';
import { loadPolicy, parsePolicy } from '../../src/approver/policy.js';
import { ROOT } from '../support/helpers.js';

t.test('the README\'s config example loads', async (t) => {
  const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
  const block = /## Config file[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  t.ok(block, 'found the example');
  const cfg = parseConfig(parse(block!), '/etc/tlsboot/config.yaml', { CREDENTIALS_DIRECTORY: '/run/credentials/tlsboot.service' });
  t.equal(cfg.identities[0]?.outputs.length, 2);
  t.equal(cfg.identities[0]?.hooks.length, 3);
});

t.test('every example config loads', async (t) => {
  for (const f of ['kubelet/config.yaml', 'haproxy/haproxy.yaml', 'keepalived/keepalived.yaml', 'approver/haproxy.yaml']) {
    const cfg = await loadConfig(path.join(ROOT, 'examples', f), { CREDENTIALS_DIRECTORY: '/run/credentials/x' });
    t.ok(cfg.identities.length > 0, f);
  }
});

t.test('the README\'s approval policy is the shipped example, and it loads', async (t) => {
  const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
  const block = /### The policy approver[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  t.ok(block, 'found the example');
  const fromReadme = parsePolicy(parse(block!), 'README.md');
  const shipped = await loadPolicy(path.join(ROOT, 'examples', 'approver', 'policy.yaml'));
  t.same(fromReadme.rules, shipped.rules);
});
