// Rotation against the real control plane, with a 3-minute signing duration. The signer
// backdates NotBefore by 5 minutes, so a certificate lives 8 minutes on paper and kubelet's
// 70-90 % deadline falls 0.6-2.2 minutes after issuance.
import path from 'node:path';
import t from 'tap';
import type { CsrObject } from '../../src/kube/csrtypes.js';
import { parseChain } from '../../src/pki/certs.js';
import { csrsBy, currentTarget, makeNode, shortCertificatesSkip, startPlane, startTlsboot } from '../support/e2e.js';
import { listDir, runCli } from '../support/helpers.js';
import { promises as fs } from 'node:fs';

const cp = await startPlane(t, '3m');
// The signer backdates by 5 min: a 3-minute certificate lives about 8 min on paper.
const skip = await shortCertificatesSkip(t, cp, 10 * 60_000);
const requester = (c: CsrObject): string => c.spec.username ?? '';

t.test('the daemon rotates with its own certificate (selfnodeclient), after the bootstrap token is deleted; an expired certificate falls back to a new token', { skip }, async (t) => {
  const token = await cp.createToken();
  const node = await makeNode(t, cp, 'node-rotate', token);
  const daemon = startTlsboot(t, node.args());
  await daemon.waitFor(/next rotation scheduled/, 60_000);
  const first = await currentTarget(node);
  await cp.deleteToken(token.id);

  // Meanwhile a second node bootstraps and is then stopped until its certificate expires.
  const token2 = await cp.createToken();
  const sleeper = await makeNode(t, cp, 'node-asleep', token2);
  t.equal((await runCli(sleeper.args('--once'))).code, 0);
  const [leaf] = parseChain(await fs.readFile(path.join(sleeper.pki, 'kubelet-client-current.pem'), 'utf8'));

  await daemon.waitFor(/rotating the client certificate, authenticating with the current one[\s\S]*client certificate issued and written/, 200_000);
  const second = await currentTarget(node);
  t.not(second, first, 'the symlink moved to a new timestamped file');
  t.equal((await listDir(node.pki)).filter((f) => /-\d{2}\.pem$/.test(f)).length, 2);
  const rotation = await csrsBy(cp, (c) => requester(c) === 'system:node:node-rotate');
  t.equal(rotation.length, 1, 'one rotation CSR, made with the node certificate');
  t.match(rotation[0]?.metadata.name, /^csr-/);
  t.same(rotation[0]?.status?.conditions?.map((c) => [c.type, c.reason]), [['Approved', 'AutoApproved']]);
  t.match(rotation[0]?.status?.conditions?.[0]?.message, /self kubelet client certificate/, 'approved via selfnodeclient');
  t.equal(await daemon.stop(), 0);

  const wait = leaf!.notAfter.getTime() - Date.now() + 2000;
  t.comment(`waiting ${Math.round(wait / 1000)} s for node-asleep's certificate to expire`);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const woke = await runCli(sleeper.args('--once'));
  t.equal(woke.code, 0, woke.output);
  t.match(woke.output, /the client certificate has expired; falling back to the bootstrap kubeconfig/);
  const boots = await csrsBy(cp, (c) => requester(c) === `system:bootstrap:${token2.id}`);
  t.equal(boots.length, 2, 'bootstrapped again with the token');
  const who = JSON.parse(await cp.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig: sleeper.kubeconfig })) as { status: { userInfo: { username: string } } };
  t.equal(who.status.userInfo.username, 'system:node:node-asleep');
});
