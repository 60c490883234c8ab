// Prometheus metrics and health endpoints (prom-client): /metrics, /healthz, /readyz on a
// configurable address, 127.0.0.1 by default. One set for the node agent, one for the approver.
import http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ConfigError } from './errors.js';

/** A prom-client registry served over HTTP with the health endpoints. */
abstract class Endpoint {
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

export class Metrics extends Endpoint {
  protected readonly notReady = 'no valid certificate yet';
  readonly ttl: Gauge;
  readonly nextRotation: Gauge;
  readonly notAfter: Gauge;
  readonly rotations: Counter;
  readonly rotationErrors: Counter;
  readonly hookFailures: Counter;
  readonly issuance: Histogram;
  private readonly expiry = new Map<string, Date>();

  constructor() {
    super();
    const registers = [this.registry];
    // Like kubelet's certificate_manager_client_ttl_seconds: computed at scrape time.
    this.ttl = new Gauge({
      name: 'tlsboot_certificate_ttl_seconds', help: 'Seconds until the client certificate expires (negative once expired).',
      labelNames: ['identity'], registers,
      collect: () => {
        for (const [identity, notAfter] of this.expiry) this.ttl.set({ identity }, Math.trunc((notAfter.getTime() - Date.now()) / 1000));
      },
    });
    this.notAfter = new Gauge({ name: 'tlsboot_certificate_not_after_timestamp_seconds', help: 'NotAfter of the current certificate.', labelNames: ['identity'], registers });
    this.nextRotation = new Gauge({ name: 'tlsboot_next_rotation_timestamp_seconds', help: 'When the next rotation is due.', labelNames: ['identity'], registers });
    this.rotations = new Counter({ name: 'tlsboot_rotations_total', help: 'Certificates obtained (bootstrap and rotation).', labelNames: ['identity'], registers });
    this.rotationErrors = new Counter({ name: 'tlsboot_rotation_errors_total', help: 'Failed attempts to obtain a certificate, by reason.', labelNames: ['identity', 'reason'], registers });
    this.hookFailures = new Counter({ name: 'tlsboot_hook_failures_total', help: 'Failed hook runs.', labelNames: ['identity', 'hook'], registers });
    this.issuance = new Histogram({
      name: 'tlsboot_csr_issuance_seconds', help: 'Time from CSR creation to the issued certificate.', labelNames: ['identity'], registers,
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
    });
  }

  certificate(identity: string, notAfter: Date, deadline: Date): void {
    this.expiry.set(identity, notAfter);
    this.notAfter.set({ identity }, notAfter.getTime() / 1000);
    this.nextRotation.set({ identity }, deadline.getTime() / 1000);
  }

  forget(identity: string): void {
    this.expiry.delete(identity);
  }

}

/** The policy approver's decisions and errors. */
export class ApproverMetrics extends Endpoint {
  protected readonly notReady = 'not watching CSRs yet';
  readonly decisions: Counter;
  readonly errors: Counter;

  constructor() {
    super();
    const registers = [this.registry];
    this.decisions = new Counter({
      name: 'tlsboot_approver_decisions_total', help: 'CSRs approved, denied or left alone, by policy rule and signer.',
      labelNames: ['decision', 'rule', 'signer'], registers,
    });
    this.errors = new Counter({ name: 'tlsboot_approver_errors_total', help: 'Failed list, watch and approval calls, by reason.', labelNames: ['reason'], registers });
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

