// The cluster's trust on the real control plane: cluster-info published by tlsboot cluster rbac
// and signed by the real bootstrapsigner; token discovery with and without pins, a wrong pin, a
// forged signature (a man in the middle on loopback); a node that has only a URL and a token;
// a whole CA rotation with a node and an haproxy identity; and the bootstrap token removed once
// it has served.
import { promises as fs } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { spkiPin } from '../../src/pki/pin.js';
import { parseChain } from '../../src/pki/certs.js';
import { CaRotation } from '../controlplane/carotation.js';
import { startPlane, startTlsboot, until } from '../support/e2e.js';
import { runCli, tempDir } from '../support/helpers.js';

const cp = await startPlane(t);
const dir = await tempDir(t, 'tlsboot-trust-');
const published = await runCli(['cluster', 'rbac', '--kubeconfig', cp.adminKubeconfig]);
if (published.code !== 0) throw new Error(published.output);
const token = await cp.createToken();
const tokenFile = path.join(dir, 'token');
await fs.writeFile(tokenFile, token.value, { mode: 0o600 });
const ca1 = await fs.readFile(cp.caPath, 'utf8');

/** cluster-info as the API server has it, once the bootstrapsigner has signed it for `id`. */
async function signedClusterInfo(id: string): Promise<{ data: Record<string, string> }> {
  return until(`cluster-info signed for ${id}`, async () => {
    const cm = JSON.parse(await cp.kubectl(['-n', 'kube-public', 'get', 'configmap', 'cluster-info', '-o', 'json'])) as { data: Record<string, string> };
    return cm.data[`jws-kubeconfig-${id}`] ? cm : undefined;
  }, 30_000);
}

const discover = (out: string, ...extra: string[]): ReturnType<typeof runCli> =>
  runCli(['kubeconfig', 'bootstrap', '--discover', '--server', cp.server, '--token-file', tokenFile, '--out', out, ...extra]);

t.test('cluster rbac publishes cluster-info and its anonymous read; the bootstrapsigner signs it', async (t) => {
  t.match(published.output, /configmap\/cluster-info created/);
  t.match(published.output, /role\/kubeadm:bootstrap-signer-clusterinfo created/);
  t.match(published.output, /rolebinding\/kubeadm:bootstrap-signer-clusterinfo created/);
  const again = await runCli(['cluster', 'rbac', '--kubeconfig', cp.adminKubeconfig]);
  t.match(again.output, /nothing to change/, 'idempotent');
  const cm = await signedClusterInfo(token.id);
  t.match(cm.data['kubeconfig'], new RegExp(`server: ${cp.server}`));
  // Anyone may read it, without credentials; nothing else in kube-public.
  const anonymous = async (name: string): Promise<number> => new Promise((resolve, reject) => {
    https.get(`${cp.server}/api/v1/namespaces/kube-public/configmaps/${name}`, { ca: ca1 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  t.equal(await anonymous('cluster-info'), 200, 'cluster-info: anyone may read it');
  t.equal(await anonymous('other'), 403, 'no other ConfigMap');
});

t.test('token discovery: the CA from cluster-info, with and without pins; a wrong pin writes nothing', async (t) => {
  await signedClusterInfo(token.id);
  const plain = path.join(dir, 'plain.kubeconfig');
  const r = await discover(plain);
  t.equal(r.code, 0, r.output);
  t.match(r.output, new RegExp(`discovered 1 CA\\(s\\) from ${cp.server} cluster-info, verified with the token: ${spkiPin(ca1)}`));
  t.match(await fs.readFile(plain, 'utf8'), Buffer.from(ca1).toString('base64'), 'the CA is embedded');
  t.equal((await fs.stat(plain)).mode & 0o777, 0o600);

  const pinned = await discover(path.join(dir, 'pinned.kubeconfig'), '--ca-cert-hash', 'sha256:' + '0'.repeat(64), '--ca-cert-hash', spkiPin(ca1));
  t.equal(pinned.code, 0, `every pin counts, not only the first: ${pinned.output}`);
  t.match(pinned.output, /and pinned/);

  const wrongFile = path.join(dir, 'wrong.kubeconfig');
  const wrong = await discover(wrongFile, '--ca-cert-hash', 'sha256:' + 'a'.repeat(64));
  t.equal(wrong.code, 2, wrong.output);
  t.match(wrong.stderr, /no CA in cluster-info matches --ca-cert-hash \(cluster-info offers sha256:[0-9a-f]{64}\)/);
  t.equal(wrong.stderr.trim().split('\n').length, 1, 'one line');
  await t.rejects(fs.stat(wrongFile), 'nothing written');
  const badPin = await discover(wrongFile, '--ca-cert-hash', 'md5:abc');
  t.equal(badPin.code, 2);
  t.match(badPin.stderr, /--ca-cert-hash "md5:abc" must be sha256:<64 hex digits>/);
  t.notMatch(wrong.output + badPin.output, new RegExp(token.secret), 'the token is never printed');
});

t.test('a forged cluster-info (a man in the middle with the real signature) is refused', async (t) => {
  const real = await signedClusterInfo(token.id);
  // The attacker serves the real signature over a kubeconfig with a CA of its own.
  const attackerCa = (await fs.readFile(cp.pki('apiserver.crt'))).toString('base64');
  const forgedKubeconfig = real.data['kubeconfig']!.replace(/certificate-authority-data: \S+/, `certificate-authority-data: ${attackerCa}`);
  t.not(forgedKubeconfig, real.data['kubeconfig']);
  const body = JSON.stringify({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'cluster-info' }, data: { ...real.data, kubeconfig: forgedKubeconfig } });
  const pem = await fs.readFile(cp.pki('apiserver.crt'), 'utf8') + await fs.readFile(cp.pki('apiserver.key'), 'utf8');
  const mitm = https.createServer({ cert: pem, key: pem }, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  await new Promise<void>((r) => mitm.listen(0, '127.0.0.1', r));
  t.teardown(() => mitm.close());
  const server = `https://127.0.0.1:${(mitm.address() as AddressInfo).port}`;
  const out = path.join(dir, 'forged.kubeconfig');
  const r = await runCli(['kubeconfig', 'bootstrap', '--discover', '--server', server, '--token-file', tokenFile, '--out', out]);
  t.equal(r.code, 2, r.output);
  t.match(r.stderr, /the cluster-info signature for token \w{6} does not verify: cluster-info was altered, or this is not the cluster the token belongs to; nothing was trusted/);
  await t.rejects(fs.stat(out), 'nothing written');

  // The same for the agent, given a bootstrap kubeconfig with no CA that points at the attacker.
  const node = path.join(dir, 'forged-node');
  await fs.mkdir(node);
  await fs.writeFile(path.join(node, 'bootstrap.kubeconfig'), stringify({
    apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server } }], users: [{ name: 'u', user: { token: token.value } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x',
  }));
  const agent = await runCli(['run', '--once', '--kubeconfig', path.join(node, 'kubeconfig'), '--bootstrap-kubeconfig', path.join(node, 'bootstrap.kubeconfig'), '--cert-dir', path.join(node, 'pki'), '--node-name', 'forged']);
  t.equal(agent.code, 2, agent.output);
  t.match(agent.output, /the cluster-info signature for token \w{6} does not verify/);
  await t.rejects(fs.stat(path.join(node, 'kubeconfig')), 'no kubeconfig written');
});

t.test('a node with only the server URL and a token bootstraps (no CA copied)', async (t) => {
  await signedClusterInfo(token.id);
  const node = path.join(dir, 'bare');
  await fs.mkdir(node);
  const boot = path.join(node, 'bootstrap.kubeconfig');
  await fs.writeFile(boot, stringify({
    apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: cp.server } }], users: [{ name: 'u', user: { token: token.value } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x',
  }), { mode: 0o600 });
  const kubeconfig = path.join(node, 'kubeconfig');
  const r = await runCli(['run', '--once', '--kubeconfig', kubeconfig, '--bootstrap-kubeconfig', boot, '--cert-dir', path.join(node, 'pki'), '--node-name', 'bare1', '--ca-cert-hash', spkiPin(ca1)]);
  t.equal(r.code, 0, r.output);
  t.match(r.output, /the bootstrap kubeconfig names no CA: took it from cluster-info, verified with the bootstrap token/);
  t.match(await cp.kubectl(['auth', 'whoami'], { kubeconfig }), /system:node:bare1/);
  const doctor = await runCli(['doctor', '--kubeconfig', path.join(node, 'other'), '--bootstrap-kubeconfig', boot, '--cert-dir', path.join(node, 'pki2'), '--node-name', 'bare2']);
  t.match(doctor.output, /no CA in it: 1 CA\(s\) from cluster-info, verified with the token/);
});

t.test('removeBootstrapCredential: the token goes once the certificate works; rotation needs only the certificate', async (t) => {
  const node = path.join(dir, 'retire');
  const boot = path.join(node, 'bootstrap.kubeconfig');
  const r0 = await runCli(['kubeconfig', 'bootstrap', '--server', cp.server, '--ca', cp.caPath, '--token-file', tokenFile, '--out', boot]);
  t.equal(r0.code, 0, r0.output);
  const args = ['run', '--kubeconfig', path.join(node, 'kubeconfig'), '--bootstrap-kubeconfig', boot, '--cert-dir', path.join(node, 'pki'), '--node-name', 'retire1', '--remove-bootstrap-credential'];
  const r = await runCli([...args, '--once']);
  t.equal(r.code, 0, r.output);
  t.match(r.output, /removed the bootstrap token: rotation depends on the current certificate from now on removed=\S+bootstrap.kubeconfig \(token\)/);
  const left = await fs.readFile(boot, 'utf8');
  t.notMatch(left, /token/, 'the bootstrap kubeconfig has no token left');
  t.match(left, /server:/, 'but still the server and CA');
  const status = await runCli(['status', '--kubeconfig', path.join(node, 'kubeconfig'), '--cert-dir', path.join(node, 'pki'), '--node-name', 'retire1']);
  t.match(status.output, /note: +the bootstrap token was removed after the first certificate \(removeBootstrapCredential\).*tlsboot bundle/);
  const doctor = await runCli(['doctor', ...args.slice(1)]);
  t.match(doctor.output, /bootstrap credential: the bootstrap token was removed/);
  // Rotation with the certificate alone.
  const daemon = startTlsboot(t, args);
  await daemon.waitFor(/next rotation scheduled/);
  daemon.child.kill('SIGUSR1');
  await daemon.waitFor(/rotating now on request[\s\S]*client certificate issued and written/);
  t.equal(await daemon.stop(), 0);
  t.match(await cp.kubectl(['auth', 'whoami'], { kubeconfig: path.join(node, 'kubeconfig') }), /system:node:retire1/);
});

t.test('a whole CA rotation: every identity stays authenticated, outputs follow, no manual step on the node', async (t) => {
  const rotation = new CaRotation(cp);
  const node = path.join(dir, 'rotation');
  await fs.mkdir(node, { recursive: true });
  const boot = await cp.writeBootstrapKubeconfig(path.join(node, 'bootstrap.kubeconfig'), token.value);
  const hookLog = path.join(node, 'hook.log');
  const caOut = path.join(node, 'haproxy', 'ca.pem');
  const common = { bootstrapKubeconfig: boot, caRefreshInterval: '2s', reissueJitter: '2s' };
  const config = path.join(node, 'config.yaml');
  await fs.writeFile(config, stringify({
    identities: [
      { ...common, name: 'kubelet', nodeName: 'rot1', kubeconfig: path.join(node, 'kubelet', 'kubeconfig'), certDir: path.join(node, 'kubelet', 'pki') },
      {
        ...common, name: 'haproxy', nodeName: 'lb1', filePrefix: 'haproxy-client', kubeconfig: path.join(node, 'haproxy', 'kubeconfig'), certDir: path.join(node, 'haproxy', 'pki'),
        outputs: [{ type: 'ca', path: caOut }, { type: 'combined', path: path.join(node, 'haproxy', 'client.pem') }],
        hooks: [{ exec: ['/bin/sh', '-c', `echo ran >> ${hookLog}`] }],
      },
    ],
  }));
  // A node that is off during the whole rotation: a certificate from CA1, a bootstrap kubeconfig with CA1.
  const off = path.join(node, 'off');
  const offArgs = ['run', '--kubeconfig', path.join(off, 'kubeconfig'), '--bootstrap-kubeconfig', boot, '--cert-dir', path.join(off, 'pki'), '--node-name', 'off1', '--reissue-jitter', '1s'];
  t.equal((await runCli([...offArgs, '--once'])).code, 0);
  const daemon = startTlsboot(t, ['run', '--config', config]);
  await daemon.waitFor(/ready: every identity has a valid certificate/);
  await until('the first hook run', async () => (await fs.readFile(hookLog, 'utf8').catch(() => '')).includes('ran'));
  const caNames = async (): Promise<string[]> => parseChain(await fs.readFile(caOut, 'utf8')).map((c) => c.subject.commonName);
  t.same(await caNames(), ['tlsboot-test-ca'], 'step 1: CA1');
  const issuer = async (id: string, prefix: string): Promise<string> =>
    parseChain(await fs.readFile(path.join(node, id, 'pki', `${prefix}-current.pem`), 'utf8'))[0]!.issuer;
  const whoami = (id: string): Promise<string> => cp.kubectl(['auth', 'whoami'], { kubeconfig: path.join(node, id, 'kubeconfig') });

  // 2. CA2 beside CA1: client CA CA1+CA2, signer CA2, cluster-info lists both.
  await rotation.addCa();
  const both = path.join(node, 'both.pem');
  await fs.writeFile(both, ca1 + (await fs.readFile(rotation.ca2, 'utf8')));
  const info = await runCli(['cluster', 'info', '--kubeconfig', cp.adminKubeconfig, '--ca', both]);
  t.equal(info.code, 0, info.output);
  t.match(info.output, /configmap\/cluster-info updated: 2 CA\(s\)/);
  await until('CA2 in the ca output', async () => (await caNames()).includes('tlsboot-test-ca-2'), 60_000);
  t.same(await caNames(), ['tlsboot-test-ca', 'tlsboot-test-ca-2'], 'step 2: the ca output holds both');
  await daemon.waitFor(/the cluster's CAs changed[\s\S]*the cluster's CAs changed/);
  await until('the hook ran for the new CA', async () => (await fs.readFile(hookLog, 'utf8')).split('\n').filter(Boolean).length >= 2);
  t.match(await issuer('kubelet', 'kubelet-client'), /tlsboot-test-ca$/, 'CA1 is still listed: no re-issue yet');

  // 3. The API server serves from CA2: the written kubeconfigs still work.
  await rotation.switchServing();
  t.match(await whoami('kubelet'), /system:node:rot1/, 'step 3: kubectl with the written kubeconfig');
  t.match(await whoami('haproxy'), /system:node:lb1/);

  // A node that still has only CA1 (a bootstrap kubeconfig copied before the rotation): doctor
  // explains, and the agent takes the CAs from cluster-info through its token.
  const stale = path.join(node, 'stale');
  const staleBoot = path.join(stale, 'bootstrap.kubeconfig');
  await fs.mkdir(stale);
  await fs.writeFile(staleBoot, (await fs.readFile(boot, 'utf8')).replace(/certificate-authority-data: \S+/, `certificate-authority-data: ${Buffer.from(ca1).toString('base64')}`));
  const staleArgs = ['--kubeconfig', path.join(stale, 'kubeconfig'), '--bootstrap-kubeconfig', staleBoot, '--cert-dir', path.join(stale, 'pki'), '--node-name', 'stale1'];
  const doctor = await runCli(['doctor', ...staleArgs]);
  t.equal(doctor.code, 1, doctor.output);
  t.match(doctor.output, /It presents: CN=kube-apiserver <- CN=tlsboot-test-ca-2; the CA that would verify it is "CN=tlsboot-test-ca-2"\. cluster-info offers that CA \(sha256:[0-9a-f]{64}; its signature verified with the bootstrap token\)/);
  t.match(doctor.output, /fix: tlsboot run refreshes the CAs from cluster-info with the bootstrap token by itself/);
  const recovered = await runCli(['run', '--once', ...staleArgs]);
  t.equal(recovered.code, 0, recovered.output);
  t.match(recovered.output, /the API server's certificate did not verify: took the cluster's CAs from cluster-info, verified with the bootstrap token/);
  t.match(await cp.kubectl(['auth', 'whoami'], { kubeconfig: path.join(stale, 'kubeconfig') }), /system:node:stale1/);

  // 4. CA1 leaves cluster-info: both identities re-issue from CA2; CA1 is dropped (the server no longer needs it).
  const only2 = await runCli(['cluster', 'info', '--kubeconfig', cp.adminKubeconfig, '--ca', rotation.ca2]);
  t.equal(only2.code, 0, only2.output);
  await until('both identities re-issued from CA2', async () =>
    /tlsboot-test-ca-2$/.test(await issuer('kubelet', 'kubelet-client')) && /tlsboot-test-ca-2$/.test(await issuer('haproxy', 'haproxy-client')), 90_000);
  await daemon.waitFor(/issued by a CA the cluster no longer lists: re-issuing it/);
  await until('CA1 dropped from the ca output', async () => (await caNames()).join() === 'tlsboot-test-ca-2', 60_000);

  // 5. CA1 leaves the client CA: both are still authenticated, with their CA2 certificates.
  await rotation.dropOldClientCa();
  t.match(await whoami('kubelet'), /system:node:rot1/, 'step 5: the node');
  t.match(await whoami('haproxy'), /system:node:lb1/, 'step 5: the haproxy identity');
  // The node that was off comes back: it takes the CAs through its token, finds its certificate
  // from a CA no longer listed, and since the server no longer takes it, bootstraps again.
  const back = startTlsboot(t, offArgs);
  await back.waitFor(/the API server no longer accepts the current certificate; falling back to the bootstrap token[\s\S]*client certificate issued and written/, 90_000);
  t.match(await whoami('off'), /system:node:off1/, 'the node that was off is authenticated again');
  t.match(parseChain(await fs.readFile(path.join(off, 'pki', 'kubelet-client-current.pem'), 'utf8'))[0]!.issuer, /tlsboot-test-ca-2$/);
  t.equal(await back.stop(), 0);

  const status = await runCli(['status', '--config', config]);
  t.equal(status.code, 0, status.output);
  t.notMatch(status.output, /note:/, 'nothing left to say');
  t.notMatch(daemon.output, /identity stopped/);
  t.equal(await daemon.stop(), 0);
});
