import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { CLI, ROOT, tempDir } from '../support/helpers.js';

const run = promisify(execFile);

t.test('systemd units, template instances and drop-ins pass systemd-analyze verify without a warning', async (t) => {
  const src = path.join(ROOT, 'systemd');
  const dir = await tempDir(t);
  const toVerify: string[] = [];
  for (const entry of await fs.readdir(src, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.service')) {
      // the analyzer checks that ExecStart binaries exist: point them at the built CLI
      const text = (await fs.readFile(path.join(src, entry.name), 'utf8')).replaceAll('/usr/bin/tlsboot', CLI);
      await fs.writeFile(path.join(dir, entry.name), text);
      toVerify.push(entry.name.endsWith('@.service') ? entry.name.replace('@.service', '@haproxy.service') : entry.name);
    } else if (entry.isDirectory() && entry.name.endsWith('.service.d')) {
      // a drop-in for a workload unit: verify it on a stub of that unit
      const unit = entry.name.slice(0, -2);
      await fs.mkdir(path.join(dir, entry.name));
      for (const f of await fs.readdir(path.join(src, entry.name))) await fs.copyFile(path.join(src, entry.name, f), path.join(dir, entry.name, f));
      await fs.writeFile(path.join(dir, unit), '[Unit]\nDescription=stub\n[Service]\nExecStart=/bin/true\n');
      toVerify.push(unit);
    }
  }
  t.ok(toVerify.includes('tlsboot.service') && toVerify.includes('tlsboot@haproxy.service') && toVerify.includes('keepalived.service') && toVerify.includes('tlsboot-approve.service'));
  const res = await run('systemd-analyze', ['verify', ...toVerify], { cwd: dir, env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` } })
    .then((r) => r.stderr, (e: { stderr: string }) => `FAILED ${e.stderr}`);
  t.equal(res.trim(), '', 'no errors or warnings');
  const unit = await fs.readFile(path.join(src, 'tlsboot.service'), 'utf8');
  for (const line of ['Type=notify', 'NotifyAccess=all', 'WatchdogSec=', 'LoadCredential=bootstrap-token:', 'ProtectSystem=strict', 'NoNewPrivileges=yes', 'ExecReload=/bin/kill -HUP $MAINPID', 'RestartPreventExitStatus=2 3']) {
    t.ok(unit.includes(line), line);
  }
});

t.test('the approver unit: notify, reload, credentials, no privileges, stops for good on exit 2', async (t) => {
  const unit = await fs.readFile(path.join(ROOT, 'systemd', 'tlsboot-approve.service'), 'utf8');
  for (const line of ['Type=notify', 'NotifyAccess=all', 'ExecStart=/usr/bin/tlsboot approve --kubeconfig %d/kubeconfig --policy /etc/tlsboot/approve.yaml',
    'LoadCredential=kubeconfig:/etc/tlsboot/approver.kubeconfig', 'ExecReload=/bin/kill -HUP $MAINPID', 'RestartPreventExitStatus=2\n', 'DynamicUser=yes', 'CapabilityBoundingSet=\n']) {
    t.ok(unit.includes(line), line);
  }
});
