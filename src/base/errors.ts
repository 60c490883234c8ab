// Typed errors. Each carries the exit code the CLI uses and a message that tells the user what
// to fix; messages never contain tokens or key material.

export const ExitCode = {
  ok: 0,
  runtime: 1,
  usage: 2,
  rejected: 3,
  /** Stopped by SIGTERM or SIGINT under --once before a certificate was in place (128 + 15, as shells report it). */
  interrupted: 143,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class TlsbootError extends Error {
  readonly exitCode: ExitCodeValue;
  constructor(message: string, exitCode: ExitCodeValue = ExitCode.runtime) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad flags, a malformed kubeconfig, an unreadable file: fixing the input is the only remedy. */
export class ConfigError extends TlsbootError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

/** The bootstrap token was refused (401): a new token fixes it, so the daemon keeps trying. */
export class BootstrapTokenRejectedError extends ConfigError {}

/** An error answer from the API server, or no answer at all (status 0). */
export class ApiError extends TlsbootError {
  readonly status: number;
  readonly reason: string;
  /** The server may answer differently if asked again later (down, overloaded, cut off). */
  readonly transient: boolean;
  /** How long the server asked us to wait (Retry-After on 429 and 503), in ms; 0 when it did not say. */
  readonly retryAfterMs: number;
  constructor(message: string, status: number, reason = '', transient?: boolean, retryAfterMs = 0) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.transient = transient ?? (status === 0 || status === 429 || status >= 500);
    this.retryAfterMs = retryAfterMs;
  }
}

/** The CSR was Denied or Failed: asking again with the same request will not help. */
export class CsrRejectedError extends TlsbootError {
  readonly condition: 'Denied' | 'Failed';
  readonly reason: string;
  constructor(csrName: string, condition: 'Denied' | 'Failed', reason: string, detail: string) {
    const verb = condition === 'Denied' ? 'was denied' : 'failed';
    super(
      `certificate signing request ${csrName} ${verb} (reason: ${reason || 'none given'}${detail ? `, message: ${detail}` : ''})`,
      ExitCode.rejected,
    );
    this.condition = condition;
    this.reason = reason;
  }
}

/** The CSR disappeared (deleted, or replaced under the same name) while we waited for it. */
export class CsrGoneError extends TlsbootError {
  constructor(csrName: string, why: string) {
    super(`certificate signing request ${csrName} ${why}; requesting again`);
  }
}

/** The signer returned a certificate that does not belong to our request. Nothing is written. */
export class CertificateMismatchError extends TlsbootError {}

/** The wait for approval and issuance exceeded --approval-timeout. */
export class ApprovalTimeoutError extends TlsbootError {}

/** A certificate or a certificate request that does not parse (from disk, or from the API). */
export class CertificateParseError extends TlsbootError {}

/**
 * A private key that does not parse, or is of a type tlsboot does not make: a file on disk that
 * went bad, so a runtime failure (retried, and the agent makes a new key), not a usage error.
 */
export class PrivateKeyError extends TlsbootError {}

/** A file could not be written (disk full, read-only, permissions); nothing half-written is left. */
export class FileWriteError extends TlsbootError {}

/** --once kept failing for longer than --retry-timeout; the message carries the last error. */
export class RetriesExhaustedError extends TlsbootError {}

/** Log an error the way every command ends on one, and give its exit code (no stack traces). */
export function reportError(err: unknown, log: { error(msg: string): void }): ExitCodeValue {
  if (err instanceof TlsbootError) {
    log.error(err.message);
    return err.exitCode;
  }
  log.error(`internal error: ${errorMessage(err)}`);
  return ExitCode.runtime;
}

/** The exit code for several failures at once: the most serious (denied beats usage beats runtime). */
export function worstExitCode(errors: unknown[]): ExitCodeValue {
  let code: ExitCodeValue = ExitCode.ok;
  for (const err of errors) {
    const c = err instanceof TlsbootError ? err.exitCode : ExitCode.runtime;
    if (c > code && c !== ExitCode.interrupted) code = c;
  }
  return code;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A short, stable reason for metrics labels. */
export function errorReason(err: unknown): string {
  if (err instanceof BootstrapTokenRejectedError) return 'Unauthorized';
  if (err instanceof ApiError) return err.reason || (err.status ? String(err.status) : 'Unreachable');
  if (err instanceof CsrRejectedError) return err.condition;
  if (err instanceof ApprovalTimeoutError) return 'ApprovalTimeout';
  if (err instanceof RetriesExhaustedError) return 'RetriesExhausted';
  if (err instanceof FileWriteError) return 'FileWrite';
  if (err instanceof CertificateMismatchError) return 'CertificateMismatch';
  if (err instanceof CsrGoneError) return 'CsrDeleted';
  if (err instanceof ConfigError) return 'Config';
  return 'Internal';
}
