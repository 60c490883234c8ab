// The wait itself: while a CSR is pending the message (with the approve command) repeats on its
// interval (a minute in production), then the phase changes, then the certificate arrives.
import t from 'tap';
import { ApiClient } from '../../src/kube/api.js';
import { buildCsrPem } from '../../src/pki/csr.js';
import { waitForCertificate } from '../../src/kube/csrwait.js';
import { generateKey } from '../../src/pki/keys.js';
import { createLogger } from '../../src/base/log.js';
import { fakeNode, TOKEN } from '../support/fakenode.js';

t.test('the pending message repeats with the approve command until approval', async (t) => {
  const { fake } = await fakeNode(t, { autoApprove: false });
  const api = new ApiClient({ server: fake.url, caPem: fake.caPem, credentials: { kind: 'token', token: TOKEN } });
  t.teardown(() => api.close());
  const key = await generateKey('ecdsa-p256');
  const request = await buildCsrPem(key, { subject: { commonName: 'system:node:w', organizations: ['system:nodes'] }, dnsNames: [], ipAddresses: [] });
  const created = await api.createCsr({
    metadata: { name: 'node-csr-wait' },
    spec: { request: Buffer.from(request).toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['digital signature', 'client auth'] },
  });
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) });
  const pending = (): number => lines.filter((l) => l.includes('waiting for the certificate signing request to be approved') && l.includes('approve="kubectl certificate approve node-csr-wait"')).length;
  const wait = waitForCertificate(api, created, { signal: new AbortController().signal, timeoutMs: 30_000, log, pendingLogIntervalMs: 100 });
  const deadline = Date.now() + 5000;
  while (pending() < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.ok(pending() >= 4, `the pending message repeats on its interval (${pending()} times in 5 s at 100 ms)`);
  fake.approve('node-csr-wait');
  const pem = await wait;
  t.match(pem, /^-----BEGIN CERTIFICATE-----/);
  const after = pending();
  await new Promise((r) => setTimeout(r, 300));
  t.equal(pending(), after, 'no more messages once it is done');
});
