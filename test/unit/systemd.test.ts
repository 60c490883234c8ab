import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { CLI, ROOT, tempDir } from '../support/helpers.js';

const run = promisify(execFile);

t.test('systemd units pass systemd-analyze verify', async (t) => {
  const units = (await fs.readdir(path.join(ROOT, 'systemd'))).filter((f) => /\.(service|timer|conf)$/.test(f));
  t.ok(units.length > 0);
  const dir = await tempDir(t);
  for (const unit of units) {
    // the analyzer checks that ExecStart binaries exist: point them at the built CLI
    const text = (await fs.readFile(path.join(ROOT, 'systemd', unit), 'utf8')).replaceAll('/usr/bin/tlsboot', CLI);
    await fs.writeFile(path.join(dir, unit), text);
    const res = await run('systemd-analyze', ['verify', path.join(dir, unit)]).then(() => ({ ok: true, out: '' }), (e: { stderr: string }) => ({ ok: false, out: e.stderr }));
    t.ok(res.ok, `${unit}: ${res.out}`);
  }
});
