// Dry runs of the cluster-side commands need no cluster: no --kubeconfig, no request.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse, parseAllDocuments } from 'yaml';
import { runInProcess, tempDir } from '../support/helpers.js';

const CA = `-----BEGIN CERTIFICATE-----
MIIBbTCCAROgAwIBAgIUMClL2snBy2es+LG0eaJLNDGl5AIwCgYIKoZIzj0EAwIw
DDEKMAgGA1UEAwwBeDAeFw0yNjEyMDEyMTAyMTBaFw0yNjEyMzEyMTAyMTBaMAwx
CjAIBgNVBAMMAXgwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQSjF6rQSEK//Sf
OrFg2eQdOj5tBhKyicA/VkPa/z11ma367VIyIlWSKbPvxPvX/XA3LZGLmiLdyLSv
7qxnqa2xo1MwUTAdBgNVHQ4EFgQUanBq1H/1Zph3g6Vsf1j5tn+kkmIwHwYDVR0j
BBgwFoAUanBq1H/1Zph3g6Vsf1j5tn+kkmIwDwYDVR0TAQH/BAUwAwEB/zAKBggq
hkjOPQQDAgNIADBFAiEA5TTKzLbGo6vDUUV6R12ERokTbfNkIa9r9iN6aRV/OcsC
IColI7slGtrtExaUpW0KWloD1J1g0OnZdjzruPikwcJx
-----END CERTIFICATE-----
`;

t.test('token create --dry-run prints a bootstrap token Secret without a kubeconfig', async (t) => {
  const r = await runInProcess(['token', 'create', '--dry-run', '-o', 'yaml', '--ttl', '1h', '--description', 'review']);
  t.equal(r.code, 0, r.stderr);
  const s = parse(r.stdout) as { kind: string; type: string; metadata: { name: string; namespace: string }; stringData: Record<string, string> };
  t.equal(s.kind, 'Secret');
  t.equal(s.type, 'bootstrap.kubernetes.io/token');
  t.equal(s.metadata.namespace, 'kube-system');
  t.match(s.stringData['token-id'], /^[a-z0-9]{6}$/);
  t.match(s.stringData['token-secret'], /^[a-z0-9]{16}$/);
  t.equal(s.metadata.name, `bootstrap-token-${s.stringData['token-id']}`);
  t.equal(s.stringData['usage-bootstrap-authentication'], 'true');
  t.equal(s.stringData['description'], 'review');
  const expires = Date.parse(s.stringData['expiration']!);
  t.ok(Math.abs(expires - Date.now() - 3_600_000) < 60_000, 'expires in an hour');
  t.equal(r.stderr, '', 'nothing on stderr: no "created" line for a token that was not created');
});

t.test('cluster rbac --dry-run without a kubeconfig', async (t) => {
  const r = await runInProcess(['cluster', 'rbac', '--dry-run', '--group', 'system:bootstrappers:gitops']);
  t.equal(r.code, 0, r.stderr);
  const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind: string; subjects?: Array<{ name: string }> });
  t.equal(docs.length, 7, 'the bindings, and cluster-info\'s Role and RoleBinding');
  t.ok(docs.some((d) => d.subjects?.[0]?.name === 'system:bootstrappers:gitops'));
  t.notOk(docs.some((d) => d.kind === 'ConfigMap'), 'no server or CA to publish: no cluster-info');
  const dir = await tempDir(t);
  await fs.writeFile(path.join(dir, 'ca.crt'), CA);
  const full = await runInProcess(['cluster', 'rbac', '--dry-run', '--server', 'https://10.0.0.1:6443', '--ca', path.join(dir, 'ca.crt')]);
  const info = parseAllDocuments(full.stdout).map((d) => d.toJS() as { kind: string; data?: { kubeconfig?: string } }).find((d) => d.kind === 'ConfigMap');
  t.match(info?.data?.kubeconfig, /server: https:\/\/10.0.0.1:6443/, 'with --server and --ca: cluster-info too');
});

t.test('cluster init --dry-run without a kubeconfig needs --server and --ca, and writes nothing', async (t) => {
  const dir = await tempDir(t);
  const ca = path.join(dir, 'ca.crt');
  await fs.writeFile(ca, CA);
  const out = path.join(dir, 'bootstrap.kubeconfig');
  const missing = await runInProcess(['cluster', 'init', '--dry-run', '--out', out, '--server', 'https://127.0.0.1:6443']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /^tlsboot: --dry-run without --kubeconfig needs --server and --ca/);
  const r = await runInProcess(['cluster', 'init', '--dry-run', '-o', 'json', '--out', out, '--server', 'https://127.0.0.1:6443', '--ca', ca]);
  t.equal(r.code, 0, r.stderr);
  const items = (JSON.parse(r.stdout) as { items: Array<{ kind: string; clusters?: Array<{ cluster: Record<string, string> }>; users?: Array<{ user: { token: string } }>; stringData?: Record<string, string> }> }).items;
  const config = items.find((i) => i.kind === 'Config')!;
  t.equal(config.clusters?.[0]?.cluster['server'], 'https://127.0.0.1:6443');
  t.equal(Buffer.from(config.clusters![0]!.cluster['certificate-authority-data']!, 'base64').toString(), CA);
  const data = items.find((i) => i.kind === 'Secret')?.stringData ?? {};
  t.equal(config.users?.[0]?.user.token, `${data['token-id']}.${data['token-secret']}`, 'the kubeconfig holds the printed token');
  await t.rejects(fs.stat(out), 'nothing written');
});

t.test('without --dry-run, --kubeconfig is required (exit 2, one line)', async (t) => {
  for (const args of [['token', 'create'], ['cluster', 'rbac'], ['cluster', 'init', '--out', '/nonexistent/x']]) {
    const r = await runInProcess(args);
    t.equal(r.code, 2, args.join(' '));
    t.equal(r.stderr, 'tlsboot: --kubeconfig is required: give an admin kubeconfig, or --dry-run to print the manifests without a cluster\n');
  }
});
