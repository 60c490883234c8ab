import http from 'node:http';
import t from 'tap';
import { ApiClient, MAX_BODY_BYTES } from '../../src/kube/api.js';
import { ApiError } from '../../src/base/errors.js';

async function serve(t: { teardown(fn: () => unknown): void }, handler: http.RequestListener): Promise<ApiClient> {
  const srv = http.createServer(handler);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const api = new ApiClient({ server: `http://127.0.0.1:${port}/`, credentials: { kind: 'token', token: 'abcdef.0123456789abcdef' } });
  t.teardown(async () => {
    await api.close();
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  });
  return api;
}

t.test('a body over the limit is refused', async (t) => {
  const api = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('"' + 'x'.repeat(MAX_BODY_BYTES + 10) + '"');
  });
  await t.rejects(api.getCsr('a'), { message: /response larger than/ });
});

t.test('error pages that are not Status bodies still give the code', async (t) => {
  const api = await serve(t, (_req, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>'));
  const err = await api.getCsr('a').catch((e: unknown) => e);
  t.ok(err instanceof ApiError);
  t.equal((err as ApiError).status, 502);
  t.equal((err as ApiError).transient, true);
  t.match((err as Error).message, /GET \/apis\/certificates.k8s.io\/v1\/certificatesigningrequests\/a: 502$/);
});

t.test('Status bodies give reason and message; the token is sent as a bearer and never echoed', async (t) => {
  let auth = '';
  const api = await serve(t, (req, res) => {
    auth = req.headers.authorization ?? '';
    res.writeHead(403, { 'content-type': 'application/json' })
      .end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'Forbidden', message: 'nope', code: 403 }));
  });
  const err = (await api.listCsrByName('a').catch((e: unknown) => e)) as ApiError;
  t.equal(auth, 'Bearer abcdef.0123456789abcdef');
  t.equal(err.reason, 'Forbidden');
  t.equal(err.transient, false);
  t.match(err.message, /403 Forbidden: nope/);
  t.notMatch(err.message, /0123456789abcdef/);
});

t.test('non-JSON success and malformed watch events', async (t) => {
  const api = await serve(t, (req, res) => {
    if (req.url?.includes('watch=1')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"type":"ADDED"}\n');
      return;
    }
    res.writeHead(200).end('not json');
  });
  await t.rejects(api.getCsr('a'), { message: /answer is not JSON/ });
  const events = async (): Promise<void> => {
    for await (const _ of api.watchCsr('a', '1', new AbortController().signal)) void _;
  };
  await t.rejects(events(), { message: /watch of a: the server's answer is malformed: event.object is not an object/, reason: 'MalformedResponse' });
});

t.test('connection refused is transient and names the server', async (t) => {
  const api = new ApiClient({ server: 'https://127.0.0.1:1', credentials: { kind: 'anonymous' } });
  t.teardown(() => api.close());
  const err = (await api.getCsr('a').catch((e: unknown) => e)) as ApiError;
  t.equal(err.status, 0);
  t.equal(err.transient, true);
  t.match(err.message, /cannot reach https:\/\/127.0.0.1:1: .*ECONNREFUSED/);
  t.equal(await api.healthz(), false);
});
