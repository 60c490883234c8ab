// `make demo`: start a throw-away local control plane (etcd, kube-apiserver,
// kube-controller-manager on 127.0.0.1), mint a bootstrap token, run `tlsboot run --once` as a
// node would, and show what it wrote. Everything is removed at the end.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseChain } from '../src/pki/certs.js';
import { rotationWindow } from '../src/node/deadline.js';
import { ControlPlane } from './controlplane/controlplane.js';
import { CLI } from './support/helpers.js';

const run = promisify(execFile);
const say = (line: string): void => console.log(line);

const cp = await ControlPlane.start({ log: (l) => say(`  ${l}`) });
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlsboot-demo-'));
let code = 0;
try {
  say(`control plane up: ${cp.server}`);
  const token = await cp.createToken();
  const bootstrap = await cp.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), token.value);
  say(`bootstrap token ${token.id}.<secret> written to ${bootstrap}\n`);
  const args = ['run', '--once', '--bootstrap-kubeconfig', bootstrap, '--kubeconfig', path.join(dir, 'kubelet.kubeconfig'),
    '--cert-dir', path.join(dir, 'pki'), '--node-name', 'demo-node'];
  say(`$ tlsboot ${args.join(' ')}`);
  const started = Date.now();
  const out = await run(process.execPath, [CLI, ...args]).catch((e: { stderr?: string; code?: number }) => {
    throw new Error(`tlsboot failed (${e.code}): ${e.stderr}`);
  });
  process.stdout.write(out.stderr);
  say(`\ntlsboot took ${Date.now() - started} ms\n`);
  say(`$ ls -l ${path.join(dir, 'pki')}`);
  say((await run('ls', ['-l', path.join(dir, 'pki')])).stdout);
  const pem = path.join(dir, 'pki', 'kubelet-client-current.pem');
  say(`$ openssl x509 -in ${pem} -noout -subject -issuer -dates`);
  say((await run('openssl', ['x509', '-in', pem, '-noout', '-subject', '-issuer', '-dates'])).stdout);
  const [leaf] = parseChain(await fs.readFile(pem, 'utf8'));
  const w = rotationWindow(leaf!.notBefore, leaf!.notAfter);
  say(`next rotation: between ${w.from.toISOString()} and ${w.to.toISOString()} (70-90 % of the lifetime, as kubelet)\n`);
  say(`$ kubectl --kubeconfig ${path.join(dir, 'kubelet.kubeconfig')} auth whoami`);
  say(await cp.kubectl(['auth', 'whoami'], { kubeconfig: path.join(dir, 'kubelet.kubeconfig') }));
  say('$ kubectl get csr');
  say(await cp.kubectl(['get', 'csr']));
} catch (err) {
  console.error(`demo failed: ${(err as Error).message}`);
  code = 1;
} finally {
  await cp.stop({ keepLogs: code !== 0 });
  await fs.rm(dir, { recursive: true, force: true });
}
process.exit(code);
