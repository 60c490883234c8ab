// The approver's controller loop against the fake API server, for what the real control plane
// cannot be made to do on demand: 410 Gone, cut watch connections, a conflict or a 500 on the
// approval write. Decisions themselves are tested on the real control plane (test/e2e).
import t, { type Test } from 'tap';
import { ApiClient } from '../../src/kube/api.js';
import { type CsrObject } from '../../src/kube/csrtypes.js';
import { Approver } from '../../src/approver/approver.js';
import { buildCsrPem } from '../../src/pki/csr.js';
import { generateKey } from '../../src/pki/keys.js';
import { createLogger } from '../../src/base/log.js';
import { ApproverMetrics } from '../../src/approver/metrics.js';
import { parsePolicy, type Policy } from '../../src/approver/policy.js';
import { FakeApiServer } from '../support/fakeapi.js';
import { until } from '../support/helpers.js';

const ADMIN = 'admin0.0123456789abcdef';
const LB = 'lbboot.0123456789abcdef';
const SIGNER = 'kubernetes.io/kube-apiserver-client';
const RULE = {
  name: 'lb', signerName: SIGNER, requesters: { groups: ['system:bootstrappers:lb'] },
  subject: { commonName: 'haproxy:*', organizations: ['tlsboot:lb'] }, usages: ['digital signature', 'client auth'],
};
const POLICY = parsePolicy({ rules: [RULE] }, 'policy.yaml');

async function setup(t: Test, policy: Policy = POLICY, dryRun = false) {
  const fake = await FakeApiServer.start({
    tokens: {
      [ADMIN]: { username: 'tlsboot:approver', groups: ['system:masters'] },
      [LB]: { username: 'system:bootstrap:lbboot', groups: ['system:bootstrappers', 'system:bootstrappers:lb'] },
    },
  });
  const client = (token: string): ApiClient => new ApiClient({ server: fake.url, caPem: fake.caPem, credentials: { kind: 'token', token } });
  const api = client(ADMIN);
  const requester = client(LB);
  let logs = '';
  const metrics = new ApproverMetrics();
  const approver = new Approver(api, policy, { log: createLogger({ write: (l) => (logs += l + '\n') }), metrics, dryRun, watchTimeoutSeconds: 60 });
  const controller = new AbortController();
  t.teardown(async () => {
    controller.abort();
    await Promise.all([api.close(), requester.close()]);
    await fake.stop();
  });
  const request = async (cn: string): Promise<string> => {
    const pem = await buildCsrPem(await generateKey('ecdsa-p256'), { subject: { commonName: cn, organizations: ['tlsboot:lb'] }, dnsNames: [], ipAddresses: [] });
    const created = await requester.createCsr({
      metadata: { generateName: 'csr-' },
      spec: { request: Buffer.from(pem).toString('base64'), signerName: SIGNER, usages: ['digital signature', 'client auth'] },
    });
    return created.metadata.name!;
  };
  const conditions = (name: string): string[] => (fake.csrs.get(name)?.status?.conditions ?? []).map((c) => `${c.type}/${c.reason}`);
  const decided = (name: string): Promise<string[]> => until(`a decision on ${name}`, () => conditions(name).length > 0 && conditions(name), 10_000);
  const start = async (): Promise<void> => {
    void approver.run(controller.signal);
    await until('the approver to sync', () => approver.ready);
  };
  const lists = (): number => fake.requests.filter((r) => r.user === 'tlsboot:approver' && r.method === 'GET' && !r.path.includes('watch=') && !r.path.includes('/csr-')).length;
  return { fake, api, approver, metrics, controller, request, conditions, decided, start, lists, logs: () => logs };
}

t.test('approves and denies what was pending before it started, then what comes later', async (t) => {
  const s = await setup(t);
  const early = await s.request('haproxy:lb1');
  const bad = await s.request('kubelet');
  await s.start();
  t.same(await s.decided(early), ['Approved/TlsbootPolicy']);
  t.same(await s.decided(bad), ['Denied/TlsbootPolicyViolation']);
  t.match(s.fake.csrs.get(bad)?.status?.conditions?.[0]?.message, 'subject CN "kubelet" does not match "haproxy:*"');
  const late = await s.request('haproxy:lb2');
  t.same(await s.decided(late), ['Approved/TlsbootPolicy']);
  await until('the certificate', () => s.fake.csrs.get(late)?.status?.certificate);
  t.same(s.approver.tally, { approved: 2, denied: 1, ignored: 0, errors: 0 });
  t.match(await s.metrics.registry.metrics(), /tlsboot_approver_decisions_total\{decision="approved",rule="lb",signer="kubernetes.io\/kube-apiserver-client"\} 2/);
});

t.test('410 Gone: lists again and misses nothing', async (t) => {
  const s = await setup(t);
  await s.start();
  const before = s.lists();
  s.fake.compact();
  s.fake.endWatches();
  await until('a new list', () => s.lists() > before);
  const name = await s.request('haproxy:lb1');
  t.same(await s.decided(name), ['Approved/TlsbootPolicy']);
  t.notMatch(s.logs(), /failed/, 'a 410 is routine, not an error');
});

t.test('a cut watch connection: lists again after a backoff', async (t) => {
  const s = await setup(t);
  await s.start();
  const before = s.lists();
  s.fake.dropWatches();
  const name = await s.request('haproxy:lb1');
  t.same(await s.decided(name), ['Approved/TlsbootPolicy'], 'found by the new list');
  t.ok(s.lists() > before);
  t.match(s.logs(), /watching CSRs failed; listing again/);
  t.equal(s.approver.tally.errors, 1);
});

t.test('409 on the approval write: reads the CSR again and decides once', async (t) => {
  const s = await setup(t);
  await s.start();
  s.fake.failNext(1, 409, 'PUT');
  const name = await s.request('haproxy:lb1');
  t.same(await s.decided(name), ['Approved/TlsbootPolicy']);
  t.equal(s.approver.tally.errors, 0, 'a conflict is not an error');
  t.equal(s.fake.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/${name}`)).length, 1, 'read again once');
});

t.test('someone else decided first: the approver leaves it be', async (t) => {
  const s = await setup(t);
  const name = await s.request('haproxy:lb1');
  s.fake.deny(name);
  await s.start();
  await new Promise((r) => setTimeout(r, 300));
  t.same(s.conditions(name), ['Denied/KubectlDeny']);
  t.same(s.approver.tally, { approved: 0, denied: 0, ignored: 0, errors: 0 });
});

t.test('500 on the approval write: logged, counted and tried again', async (t) => {
  const s = await setup(t);
  await s.start();
  s.fake.failNext(1, 500, 'PUT');
  const name = await s.request('haproxy:lb1');
  t.same(await s.decided(name), ['Approved/TlsbootPolicy']);
  t.match(s.logs(), /could not write the decision; trying again csr=csr-\S+ error="PUT \S+: 500 InternalError: injected failure"/);
  t.match(await s.metrics.registry.metrics(), /tlsboot_approver_errors_total\{reason="InternalError"\} 1/);
});

t.test('a new policy looks at pending CSRs again', async (t) => {
  const strict = parsePolicy({ rules: [{ ...RULE, subject: { commonName: 'haproxy:only-this', organizations: ['tlsboot:lb'] }, onViolation: 'ignore' }] }, 'strict.yaml');
  const s = await setup(t, strict);
  await s.start();
  const name = await s.request('haproxy:lb1');
  await until('left alone', () => /left alone csr=csr-\S+ .*rule=lb why="tlsboot policy: rule \\"lb\\": subject CN/.test(s.logs()));
  t.same(s.conditions(name), []);
  s.approver.setPolicy(POLICY);
  t.same(await s.decided(name), ['Approved/TlsbootPolicy']);
});

t.test('dry run: decides and logs, writes nothing', async (t) => {
  const s = await setup(t, POLICY, true);
  const name = await s.request('haproxy:lb1');
  const tally = await s.approver.once(s.controller.signal);
  t.same(tally, { approved: 1, denied: 0, ignored: 0, errors: 0 });
  t.match(s.logs(), /dry run: would have approved csr=/);
  t.same(s.conditions(name), []);
  t.notOk(s.fake.requests.some((r) => r.method === 'PUT'));
  t.match(await s.metrics.registry.metrics(), /decision="would_approved"/);
});

t.test('the fake answers a stale or contradictory approval like the API server', async (t) => {
  const s = await setup(t, POLICY, true);
  const name = await s.request('haproxy:lb1');
  const csr = await s.api.getCsr(name);
  const stale: CsrObject = { ...csr, metadata: { ...csr.metadata, resourceVersion: '1' } };
  await t.rejects(s.api.updateApproval(stale), { message: /: 409 Conflict: Operation cannot be fulfilled/ });
  const both: CsrObject = { ...csr, status: { conditions: [{ type: 'Approved', status: 'True' }, { type: 'Denied', status: 'True' }] } };
  await t.rejects(s.api.updateApproval(both), { message: /: 422 Invalid: .*mutually exclusive/ });
});
