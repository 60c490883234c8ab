// The policy approver's Prometheus metrics.
import { Counter } from 'prom-client';
import { MetricsEndpoint } from '../base/metricsserver.js';

/** The policy approver's decisions and errors. */
export class ApproverMetrics extends MetricsEndpoint {
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
