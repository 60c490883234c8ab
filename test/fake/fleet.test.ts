// A daemon with many identities against the fake API server: the per-server request limit, the
// server's Retry-After honoured, 429s counted, and what an outage writes to the log.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { CliProcess, runInProcess, tempDir } from '../support/helpers.js';
import { FakeApiServer } from '../support/fakeapi.js';
import { fakeNode, TOKEN, TOKENS } from '../support/fakenode.js';

/** A config with `n` identities n0..n{n-1}, all bootstrapping from `bootstrap`. */
async function fleetConfig(dir: string, bootstrap: string, n: number, top = ''): Promise<string> {
  const ids = Array.from({ length: n }, (_, i) => `  - name: n${i}\n    bootstrapKubeconfig: ${bootstrap}\n    kubeconfig: ${dir}/n${i}/kubeconfig\n    certDir: ${dir}/n${i}/pki\n    nodeName: n${i}\n`);
  const file = path.join(dir, 'config.yaml');
  await fs.writeFile(file, `${top}identities:\n${ids.join('')}`);
  return file;
}

async function fleet(t: Test): Promise<{ fake: FakeApiServer; dir: string; bootstrap: string }> {
  const fake = await FakeApiServer.start({ tokens: TOKENS });
  t.teardown(() => fake.stop());
  const dir = await tempDir(t);
  return { fake, dir, bootstrap: await fake.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), TOKEN) };
}

t.test('40 identities at once: never more creates in flight than apiConcurrency', async (t) => {
  for (const [limit, flag] of [[8, []], [3, ['--api-concurrency', '3']]] as const) {
    const { fake, dir, bootstrap } = await fleet(t);
    fake.createDelayMs = 50;
    const res = await runInProcess(['run', '--once', '--config', await fleetConfig(dir, bootstrap, 40), ...flag]);
    t.equal(res.code, 0, res.stderr);
    t.equal(fake.csrs.size, 40, 'every identity issued');
    t.equal(fake.peakCreates, limit, `at most ${limit} at once (the default is 8)`);
  }
  const { fake, dir, bootstrap } = await fleet(t);
  fake.createDelayMs = 50;
  const res = await runInProcess(['run', '--once', '--config', await fleetConfig(dir, bootstrap, 10, 'apiConcurrency: 2\n')]);
  t.equal(res.code, 0, res.stderr);
  t.equal(fake.peakCreates, 2, 'apiConcurrency in the config file');
  const bad = await runInProcess(['run', '--once', '--config', await fleetConfig(dir, bootstrap, 1, 'apiConcurrency: 0\n')]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /config\.yaml: apiConcurrency must be a whole number from 1 to 1000/);
});

t.test('40 identities at once with --api-qps 10: at most ~10 requests started a second, watches included', async (t) => {
  const { fake, dir, bootstrap } = await fleet(t);
  const start = Date.now();
  const res = await runInProcess(['run', '--once', '--config', await fleetConfig(dir, bootstrap, 40), '--api-qps', '10']);
  t.equal(res.code, 0, res.stderr);
  const took = Date.now() - start;
  const csrRequests = fake.requests.filter((r) => r.path.startsWith('/apis/certificates.k8s.io/'));
  t.equal(csrRequests.length, 80, 'a create and a watch each');
  // 80 requests at 10/s after a burst of 10: about 7 s; no second of them holds more than burst + rate.
  t.ok(took >= 6500, `paced: ${took} ms`);
  const perSecond = new Map<number, number>();
  for (const r of csrRequests) perSecond.set(Math.floor((r.at - start) / 1000), (perSecond.get(Math.floor((r.at - start) / 1000)) ?? 0) + 1);
  t.ok(Math.max(...perSecond.values()) <= 20, `per second: ${[...perSecond.values()].join(' ')}`);
  const bad = await runInProcess(['run', '--once', '--config', await fleetConfig(dir, bootstrap, 1), '--api-qps', '0']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--api-qps must be a whole number from 1 to 1000/);
});

t.test('429 with Retry-After: the next try waits at least that long; counted, and told at debug level only', async (t) => {
  const { fake, args } = await fakeNode(t);
  fake.failNext(1, 429, 'POST', 3);
  const res = await runInProcess(args('--metrics-address', '127.0.0.1:0'));
  t.equal(res.code, 0, res.stderr);
  const creates = fake.requests.filter((r) => r.method === 'POST');
  t.equal(creates.length, 2);
  const gap = creates[1]!.at - creates[0]!.at;
  t.ok(gap >= 3000 && gap < 3000 + 4000 + 500, `waited Retry-After (3 s) plus jitter below 4 s: ${gap} ms`);
  t.notMatch(res.stderr, /429|TooManyRequests/, 'nothing above debug level mentions the 429');
  const verbose = await fakeNode(t);
  verbose.fake.failNext(1, 503, 'POST', 1);
  const v = await runInProcess(verbose.args('-v', '2'));
  t.equal(v.code, 0);
  t.match(v.stderr, /DEBUG attempt failed error="POST .*503 ServiceUnavailable/);
});

t.test('a daemon counts 429s in tlsboot_api_throttled_total', async (t) => {
  const { fake, dir, bootstrap } = await fleet(t);
  fake.failNext(2, 429, 'POST', 1);
  const p = new CliProcess(['run', '--config', await fleetConfig(dir, bootstrap, 2), '--metrics-address', '127.0.0.1:0']);
  t.teardown(() => p.stop('SIGKILL'));
  const port = Number((await p.waitFor(/serving metrics .*port=(\d+)/))[1]);
  await p.waitFor(/ready: every identity has a valid certificate/, 30_000);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const throttled = [...metrics.matchAll(/^tlsboot_api_throttled_total\{identity="n\d"\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
  t.equal(throttled, 2);
  t.notMatch(p.output, /WARN.*429/);
  t.equal(await p.stop('SIGTERM'), 0);
});

t.test('30 identities while the server is down for 20 s: a few summary lines, then one recovery each', async (t) => {
  const { fake, dir, bootstrap } = await fleet(t);
  await fake.down();
  const p = new CliProcess(['run', '--config', await fleetConfig(dir, bootstrap, 30)]);
  t.teardown(() => p.stop('SIGKILL'));
  await new Promise((r) => setTimeout(r, 20_000));
  const during = p.output.split('\n').filter((l) => /WARN|ERROR/.test(l));
  await fake.up();
  await p.waitFor(/ready: every identity has a valid certificate/, 60_000);
  t.ok(during.length >= 2 && during.length <= 5, `${during.length} warnings for 30 identities over 20 s:\n${during.join('\n')}`);
  t.match(during[0], /could not get a certificate; retrying identity=n\d+ error="cannot reach/);
  t.match(during.join('\n'), /WARN  \d+ identities fail with the same error; retrying error="cannot reach .*ECONNREFUSED/);
  t.equal((p.output.match(/recovered: a valid certificate is on disk again/g) ?? []).length, 30);
  // Full jitter: the tries after the return spread over much of the 32 s interval. In lockstep
  // (kubelet's 16 s stretched by at most 10 %) they all came within about 2 s.
  const creates = fake.requests.filter((r) => r.method === 'POST').map((r) => r.at);
  const span = Math.max(...creates) - Math.min(...creates);
  t.ok(span >= 8_000, `the 30 creates spread over ${(span / 1000).toFixed(1)} s`);
  t.equal(await p.stop('SIGTERM'), 0);
});
