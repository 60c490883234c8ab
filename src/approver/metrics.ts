// The policy approver's Prometheus metrics.
import { Counter, Gauge } from 'prom-client';
import { MetricsEndpoint } from '../base/metricsserver.js';

/** The policy approver's decisions and errors. */
export class ApproverMetrics extends MetricsEndpoint {
  protected readonly notReady = 'not watching CSRs yet';
  readonly decisions: Counter;
  readonly errors: Counter;
  readonly lastSync: Gauge;

  constructor() {
    super();
    const registers = [this.registry];
    this.decisions = new Counter({
      name: 'tlsboot_approver_decisions_total', help: 'CSRs approved, denied or left alone, by policy rule and signer.',
      labelNames: ['decision', 'rule', 'signer'], registers,
    });
    this.errors = new Counter({ name: 'tlsboot_approver_errors_total', help: 'Failed list, watch and approval calls, by reason.', labelNames: ['reason'], registers });
    // A heartbeat: an approver whose list and watch stopped working stops deciding, silently.
    this.lastSync = new Gauge({
      name: 'tlsboot_approver_last_sync_timestamp_seconds', help: 'When the approver last listed CSRs or its watch last delivered or ended normally.', registers,
    });
  }
}
