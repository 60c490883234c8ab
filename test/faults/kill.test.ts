// Fault suite: kill -9 at random points of a bootstrap and of a rotation, in a loop with a fixed
// seed (the same kill points on every run). After each kill a rerun must end with a working
// credential, no temporary file, and no CSR beyond the one the identity needs.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseChain } from '../../src/pki/certs.js';
import { listDir } from '../support/helpers.js';
import { csrsFor, makeNode, startPlane, startTlsboot } from '../support/e2e.js';
import { expectHealthy, once, seeded } from './support.js';

const cp = await startPlane(t);
const token = await cp.createToken();
const ROUNDS = Number(process.env['TLSBOOT_FAULT_ROUNDS'] ?? 8);
const rand = seeded(20261201);
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test(`kill -9 during bootstrap, ${ROUNDS} times: each rerun bootstraps with exactly one CSR`, async (t) => {
  // tlsboot needs ~0.5 s to start and ~0.1 s more to be issued: kill points spread over both.
  for (let i = 0; i < ROUNDS; i++) {
    const node = await makeNode(t, cp, `kill-boot-${i}`, token);
    const at = Math.round(150 + rand() * 800);
    const p = startTlsboot(t, node.args('--once'));
    await pause(at);
    p.child.kill('SIGKILL');
    const exit = await p.exited;
    const r = await once(node);
    t.equal(r.code, 0, `round ${i}: killed at ${at} ms (${exit === 0 ? 'it had finished' : 'mid-way'}); the rerun: ${r.output}`);
    t.equal(await expectHealthy(t, cp, node), 1, `round ${i}: one CSR`);
  }
});

t.test(`kill -9 during rotation, ${ROUNDS} times: every rotation CSR ends up on disk, none is left unused`, async (t) => {
  const node = await makeNode(t, cp, 'kill-rotate', token);
  const args = (): string[] => node.args('--keep', '100');
  t.equal((await once(node)).code, 0);
  for (let i = 0; i < ROUNDS; i++) {
    await pause(1000); // file names have whole seconds: one rotation a second at most
    const p = startTlsboot(t, args());
    await p.waitFor(/next rotation scheduled/);
    const at = Math.round(rand() * 150);
    p.child.kill('SIGUSR1');
    await pause(at);
    p.child.kill('SIGKILL');
    await p.exited;
  }
  await pause(1000);
  // Finish whatever rotation is pending.
  const last = startTlsboot(t, args());
  await last.waitFor(/next rotation scheduled/);
  last.child.kill('SIGUSR1');
  await last.waitFor(/rotating now on request[\s\S]*client certificate issued and written/, 60_000);
  t.equal(await last.stop(), 0);
  const csrs = await csrsFor(cp, 'system:node:kill-rotate');
  const onDisk = new Set<string>();
  for (const f of (await listDir(node.pki)).filter((f) => /-\d{2}\.pem$/.test(f))) {
    onDisk.add(parseChain(await fs.readFile(path.join(node.pki, f), 'utf8'))[0]!.serialNumber);
  }
  const issued = csrs.map((c) => (c.status?.certificate ? parseChain(Buffer.from(c.status.certificate, 'base64').toString())[0]!.serialNumber : 'pending'));
  t.comment(`${csrs.length - 1} rotation CSR(s), ${onDisk.size - 1} rotation(s) on disk`);
  t.same(issued.filter((s) => !onDisk.has(s)), [], 'every CSR\'s certificate was written: no CSR left unused by a kill');
  await expectHealthy(t, cp, node); // valid, authenticated, no temporary file left
});
