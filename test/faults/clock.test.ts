// Fault suite: this machine's clock far ahead or far behind (libfaketime on the tlsboot
// process only). tlsboot must say that the clock is the problem, touch nothing on disk, and be
// fine again once the clock is.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { makeNode, startPlane, type Node } from '../support/e2e.js';
import { CLI } from '../support/helpers.js';
import { expectHealthy, once, PEM } from './support.js';

const cp = await startPlane(t);
const token = await cp.createToken();

/** `tlsboot run --once` with the clock moved by `offset` (faketime's -f syntax: "+730d"). */
function onceAt(node: Node, offset: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile('faketime', ['-f', offset, process.execPath, CLI, ...node.args('--once', '--retry-timeout', '10s')],
      { env: { ...process.env, FAKETIME_DONT_FAKE_MONOTONIC: '1' }, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: typeof err?.code === 'number' ? err.code : err ? 1 : 0, output: stdout + stderr }));
  });
}

for (const [what, offset, says] of [
  ['far behind (ten years)', '-3650d', /the server's certificate is not yet valid by this machine's clock \(2016-.*check the clock/],
  ['far ahead (two years)', '+730d', /the server's certificate has expired by this machine's clock \(2028-.*check the clock/],
] as const) {
  t.test(`the clock ${what}: the clock is named as the cause, nothing on disk changes; fine once the clock is`, async (t) => {
    const node = await makeNode(t, cp, `clock-${offset.startsWith('-') ? 'behind' : 'ahead'}`, token);
    t.equal((await once(node)).code, 0);
    const before = await fs.readFile(path.join(node.pki, PEM), 'utf8');
    const skewed = await onceAt(node, offset);
    t.equal(skewed.code, 1, skewed.output);
    t.match(skewed.output, says);
    t.equal(await fs.readFile(path.join(node.pki, PEM), 'utf8'), before, 'the certificate in place is untouched');
    const r = await once(node);
    t.equal(r.code, 0, r.output);
    t.equal(await expectHealthy(t, cp, node), 1, 'no CSR was made with the wrong clock');
  });
}
