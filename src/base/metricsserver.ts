// A prom-client registry served over HTTP with the health endpoints: /metrics, /healthz,
// /readyz on a configurable address. The daemon and the approver each have one.
import http from 'node:http';
import { Registry } from 'prom-client';
import { ConfigError } from './errors.js';

/** A prom-client registry served over HTTP with the health endpoints. */
export abstract class MetricsEndpoint {
  readonly registry = new Registry();
  /** What /readyz says while not ready. */
  protected abstract readonly notReady: string;
  private server: http.Server | undefined;

  /** Serve on host:port; `ready` decides /readyz. Resolves with the bound port. */
  async listen(address: string, ready: () => boolean): Promise<number> {
    this.server = await serve(this.registry, address, ready, this.notReady);
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    const srv = this.server;
    this.server = undefined;
    if (srv) await new Promise((r) => srv.close(r));
  }
}

async function serve(registry: Registry, address: string, ready: () => boolean, notReady: string): Promise<http.Server> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!m) throw new ConfigError(`metrics address ${JSON.stringify(address)} must be host:port`);
  const srv = http.createServer((req, res) => {
    void answer(registry, req.url ?? '/', ready, notReady, res);
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', (err) => reject(new ConfigError(`cannot serve metrics on ${address}: ${err.message}`)));
    srv.listen(Number(m[2]), m[1], () => resolve());
  });
  return srv;
}

async function answer(registry: Registry, url: string, ready: () => boolean, notReady: string, res: http.ServerResponse): Promise<void> {
  if (url === '/metrics') {
    res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
  } else if (url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  } else if (url === '/readyz') {
    const ok = ready();
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : `${notReady}\n`);
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
}

