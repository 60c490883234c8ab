// Prometheus metrics and health endpoints (prom-client): /metrics, /healthz, /readyz on a
// configurable address, 127.0.0.1 by default.
import http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ConfigError } from './errors.js';

export class Metrics {
  readonly registry = new Registry();
  readonly ttl: Gauge;
  readonly nextRotation: Gauge;
  readonly notAfter: Gauge;
  readonly rotations: Counter;
  readonly rotationErrors: Counter;
  readonly hookFailures: Counter;
  readonly issuance: Histogram;
  private readonly expiry = new Map<string, Date>();
  private server: http.Server | undefined;

  constructor() {
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

  /** Serve on host:port; `ready` decides /readyz. Resolves with the bound port. */
  async listen(address: string, ready: () => boolean): Promise<number> {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
    if (!m) throw new ConfigError(`metrics address ${JSON.stringify(address)} must be host:port`);
    const srv = http.createServer((req, res) => {
      void this.answer(req.url ?? '/', ready, res);
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (err) => reject(new ConfigError(`cannot serve metrics on ${address}: ${err.message}`)));
      srv.listen(Number(m[2]), m[1], () => resolve());
    });
    this.server = srv;
    return (srv.address() as { port: number }).port;
  }

  private async answer(url: string, ready: () => boolean, res: http.ServerResponse): Promise<void> {
    if (url === '/metrics') {
      res.writeHead(200, { 'content-type': this.registry.contentType }).end(await this.registry.metrics());
    } else if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'no valid certificate yet\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  }

  async close(): Promise<void> {
    const srv = this.server;
    this.server = undefined;
    if (srv) await new Promise((r) => srv.close(r));
  }
}
