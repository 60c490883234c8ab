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
  for (const f of ['kubelet/config.yaml', 'kubelet/serving.yaml', 'haproxy/haproxy.yaml', 'keepalived/keepalived.yaml', 'approver/haproxy.yaml']) {
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

t.test('the README\'s layout names every module of src/, in its folder', async (t) => {
  const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
  const block = /Layout:[\s\S]*?```\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const lines = new Map(block.split('\n').filter(Boolean).map((l) => [l.split(/\s+/)[0]!, l] as const));
  for (const dir of (await fs.readdir(path.join(ROOT, 'src'), { withFileTypes: true })).filter((d) => d.isDirectory())) {
    const line = lines.get(`src/${dir.name}/`);
    t.ok(line, `src/${dir.name}/ has a line`);
    for (const f of (await fs.readdir(path.join(ROOT, 'src', dir.name))).filter((f) => f.endsWith('.ts'))) {
      t.match(line ?? '', new RegExp(`\\b${f.slice(0, -3)}\\b`), `src/${dir.name}/${f} is named`);
    }
  }
});
