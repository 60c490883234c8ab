// The node agent's Prometheus metrics, with an `identity` label.
import { Counter, Gauge, Histogram } from 'prom-client';
import { MetricsEndpoint } from '../base/metricsserver.js';

export class Metrics extends MetricsEndpoint {
  protected readonly notReady = 'no valid certificate yet';
  readonly ttl: Gauge;
  readonly nextRotation: Gauge;
  readonly notAfter: Gauge;
  readonly notBefore: Gauge;
  readonly rotations: Counter;
  readonly rotationErrors: Counter;
  readonly hookFailures: Counter;
  readonly throttled: Counter;
  readonly issuerUnlisted: Gauge;
  readonly issuance: Histogram;
  private readonly expiry = new Map<string, Date>();

  constructor() {
    super();
    const registers = [this.registry];
    // Like kubelet's certificate_manager_client_ttl_seconds: computed at scrape time.
    this.ttl = new Gauge({
      name: 'tlsboot_certificate_ttl_seconds', help: 'Seconds until the current certificate expires (negative once expired).',
      labelNames: ['identity'], registers,
      collect: () => {
        for (const [identity, notAfter] of this.expiry) this.ttl.set({ identity }, Math.trunc((notAfter.getTime() - Date.now()) / 1000));
      },
    });
    this.notAfter = new Gauge({ name: 'tlsboot_certificate_not_after_timestamp_seconds', help: 'NotAfter of the current certificate.', labelNames: ['identity'], registers });
    // With NotAfter, the lifetime: the alert rules warn within the last 10 % of it.
    this.notBefore = new Gauge({ name: 'tlsboot_certificate_not_before_timestamp_seconds', help: 'NotBefore of the current certificate.', labelNames: ['identity'], registers });
    this.nextRotation = new Gauge({ name: 'tlsboot_next_rotation_timestamp_seconds', help: 'When the next rotation is due.', labelNames: ['identity'], registers });
    this.rotations = new Counter({ name: 'tlsboot_rotations_total', help: 'Certificates obtained (bootstrap and rotation).', labelNames: ['identity'], registers });
    this.rotationErrors = new Counter({ name: 'tlsboot_rotation_errors_total', help: 'Failed attempts to obtain a certificate, by reason.', labelNames: ['identity', 'reason'], registers });
    this.throttled = new Counter({ name: 'tlsboot_api_throttled_total', help: 'Answers 429 Too Many Requests from the API server.', labelNames: ['identity'], registers });
    this.issuerUnlisted = new Gauge({
      name: 'tlsboot_certificate_issuer_unlisted', help: '1 while the current certificate was issued by a CA the cluster no longer lists in cluster-info (a re-issue is due).',
      labelNames: ['identity'], registers,
    });
    this.hookFailures = new Counter({ name: 'tlsboot_hook_failures_total', help: 'Failed hook runs.', labelNames: ['identity', 'hook'], registers });
    this.issuance = new Histogram({
      name: 'tlsboot_csr_issuance_seconds', help: 'Time from CSR creation to the issued certificate.', labelNames: ['identity'], registers,
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
    });
  }

  certificate(identity: string, notBefore: Date, notAfter: Date, deadline: Date): void {
    this.expiry.set(identity, notAfter);
    this.notBefore.set({ identity }, notBefore.getTime() / 1000);
    this.notAfter.set({ identity }, notAfter.getTime() / 1000);
    this.nextRotation.set({ identity }, deadline.getTime() / 1000);
  }

  forget(identity: string): void {
    this.expiry.delete(identity);
  }

}
