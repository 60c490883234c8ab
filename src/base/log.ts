// Leveled logger with text and JSON formats. Every line goes through redact(), a last line of
// defence: callers never pass secrets, and this catches any that slip through anyway.

/** A kubeadm bootstrap token, id.secret (cluster-bootstrap's token/api): what redaction hides. */
export const BOOTSTRAP_TOKEN_SHAPE = '[a-z0-9]{6}\\.[a-z0-9]{16}';

export type LogFormat = 'text' | 'json';
export type Fields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  error(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  /** Verbose detail, shown at -v >= level (klog style). */
  debug(level: number, msg: string, fields?: Fields): void;
}

// No word boundaries: a token glued to other text (a pasted line, a key name) is still one, and
// the fuzzer found such messages. The price is a rare redacted host name.
const TOKEN = new RegExp(BOOTSTRAP_TOKEN_SHAPE, 'g');
const BEARER = /(Bearer\s+)\S+/gi;
const PEM_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g;

export function redact(text: string): string {
  return text
    .replace(PEM_KEY, '[private key redacted]')
    .replace(BEARER, '$1[redacted]')
    .replace(TOKEN, (m) => `${m.slice(0, 6)}.[redacted]`);
}

export interface LoggerOptions {
  format?: LogFormat;
  verbosity?: number;
  write?: (line: string) => void;
  now?: () => Date;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? 'text';
  const verbosity = opts.verbosity ?? 0;
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const now = opts.now ?? (() => new Date());
  const emit = (level: string, msg: string, fields: Fields = {}): void => {
    const ts = now().toISOString();
    const defined = Object.entries(fields).filter(([, v]) => v !== undefined);
    let line: string;
    if (format === 'json') {
      line = JSON.stringify({ ts, level, msg, ...Object.fromEntries(defined) });
    } else {
      const kv = defined.map(([k, v]) => `${k}=${formatValue(v)}`).join(' ');
      line = `${ts} ${level.toUpperCase().padEnd(5)} ${msg}${kv ? ' ' + kv : ''}`;
    }
    write(redact(line));
  };
  return {
    error: (msg, fields) => emit('error', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    debug: (level, msg, fields) => {
      if (verbosity >= level) emit('debug', msg, fields);
    },
  };
}

function formatValue(v: string | number | boolean | undefined): string {
  const s = String(v);
  return /[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s;
}

/** A logger that drops everything; for library callers and tests that do not care. */
export const silentLogger: Logger = createLogger({ write: () => undefined });

/**
 * Send every process warning (Node's own, a library's, a config file's) through `log` as one
 * redacted line, in place of Node's default printer, which writes a multi-line text that no
 * redaction sees. Each distinct warning is logged once: a daemon re-reads its files on every
 * attempt, and the same warning each time is noise.
 */
export function routeProcessWarnings(log: Logger, proc: NodeJS.Process = process): void {
  const seen = new Set<string>();
  proc.removeAllListeners('warning');
  proc.on('warning', (w: Error) => {
    const text = `${w.name === 'Warning' ? '' : `${w.name}: `}${w.message}`.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
    if (seen.has(text)) return;
    seen.add(text);
    log.warn(text);
  });
}

/** The same logger with an `identity` field on every line (a daemon with several identities). */
export function prefixed(log: Logger, identity: string): Logger {
  return {
    error: (m, f) => log.error(m, { identity, ...f }),
    warn: (m, f) => log.warn(m, { identity, ...f }),
    info: (m, f) => log.info(m, { identity, ...f }),
    debug: (l, m, f) => log.debug(l, m, { identity, ...f }),
  };
}
