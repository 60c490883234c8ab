// The .deb as an operator installs it: dpkg -i, the executable on PATH, the units verified by
// systemd, then dpkg -r and dpkg --purge leave nothing behind. Needs root (CI runs as root).
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { tempDir } from '../support/helpers.js';
import { ROOT, VERSION } from '../support/paths.js';

const pexec = promisify(execFile);
const ARCH = process.arch === 'arm64' ? 'arm64' : 'amd64';
const DEB = path.join(ROOT, 'dist', `tlsboot_${VERSION}_${ARCH}.deb`);
const root = process.getuid?.() === 0;
const installed = await pexec('dpkg-query', ['-W', '-f=${Status}', 'tlsboot']).then((r) => r.stdout.includes('installed'), () => false);
const skip = !root ? 'dpkg -i needs root' : installed ? 'tlsboot is installed on this machine; the test would replace it' : false;
if (!skip && !existsSync(DEB)) throw new Error(`${DEB} is missing: run "make package" first`);

const UNITS = ['tlsboot.service', 'tlsboot@.service', 'tlsboot-approve.service', 'haproxy.service.d/tlsboot.conf', 'keepalived.service.d/tlsboot.conf'];

t.test('install, use, remove and purge the package', { skip }, async (t) => {
  // A systemctl of the test's own, first on PATH, records what the maintainer scripts ask of systemd.
  const fake = await tempDir(t, 'tlsboot-deb-');
  const calls = path.join(fake, 'calls');
  await fs.writeFile(path.join(fake, 'systemctl'), `#!/bin/sh\necho "$*" >> ${calls}\n`, { mode: 0o755 });
  const env = { ...process.env, PATH: `${fake}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
  const dpkg = (...args: string[]): Promise<{ stdout: string }> => pexec('dpkg', args, { env });
  t.teardown(() => dpkg('--purge', 'tlsboot').catch(() => undefined));
  // The scripts talk to systemd only where it runs (/run/systemd/system, as sd_booted(3) checks).
  // Where it does not (a container), the test stands in that marker for the scripts' run only.
  const marker = '/run/systemd/system';
  const ownMarker = !existsSync(marker);
  const asSystemd = async <T>(step: () => Promise<T>): Promise<T> => {
    if (ownMarker) await fs.mkdir(marker, { recursive: true });
    try {
      return await step();
    } finally {
      if (ownMarker) await fs.rm(marker, { recursive: true, force: true });
    }
  };

  await asSystemd(() => dpkg('-i', DEB));
  const files = (await pexec('dpkg', ['-L', 'tlsboot'])).stdout.split('\n').filter((f) => f && f !== '/.');
  t.match((await pexec('/usr/bin/tlsboot', ['version'])).stdout, new RegExp(`^tlsboot v${VERSION.replaceAll('.', '\\.')} \\(node v24\\.`));
  for (const u of UNITS) t.ok(files.includes(`/lib/systemd/system/${u}`), `ships ${u}`);
  t.ok(files.includes('/usr/share/doc/tlsboot/examples/haproxy/haproxy.yaml'), 'ships the examples');
  t.equal(((await fs.stat('/etc/tlsboot')).mode & 0o777).toString(8), '750', '/etc/tlsboot is 0750');
  // systemd-analyze verify checks the installed units (and that ExecStart= exists).
  const verify = await pexec('systemd-analyze', ['verify', '/lib/systemd/system/tlsboot.service', '/lib/systemd/system/tlsboot-approve.service', '/lib/systemd/system/tlsboot@haproxy.service'], { env: { ...process.env, SYSTEMD_LOG_LEVEL: 'warning' } }).then(
    (r) => r.stderr, (e: { stderr?: string }) => `failed: ${e.stderr ?? ''}`);
  t.notMatch(verify, /tlsboot|failed/, `systemd-analyze verify: ${verify}`);

  await asSystemd(() => dpkg('-r', 'tlsboot'));
  const left = files.filter((f) => existsSync(f) && !['/etc', '/lib', '/usr', '/usr/bin', '/usr/share', '/usr/share/doc', '/usr/share/man', '/usr/share/man/man1', '/lib/systemd', '/lib/systemd/system', '/usr/share/lintian', '/usr/share/lintian/overrides'].includes(f));
  t.same(left, [], 'dpkg -r leaves none of the package\'s files');
  await fs.mkdir('/var/lib/tlsboot', { recursive: true });
  await fs.writeFile('/var/lib/tlsboot/state', 'written by tlsboot');
  await asSystemd(() => dpkg('--purge', 'tlsboot'));
  t.notOk(existsSync('/var/lib/tlsboot'), 'purge removes the state tlsboot wrote');
  t.notOk(existsSync('/etc/tlsboot'), 'and /etc/tlsboot');

  const asked = (await fs.readFile(calls, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  // postinst configure, postrm remove, postrm purge.
  t.same(asked, ['daemon-reload', 'daemon-reload', 'daemon-reload'], 'only daemon-reload, never enable or start');
});
