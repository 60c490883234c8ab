// Shared test helpers: temp folders, running the real tlsboot CLI as a child process, and
// running it in-process for fast checks.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../../src/cli/cli.js';
import { CLI, ROOT, tlsbootCommand } from './paths.js';
export { CLI, ROOT } from './paths.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function tempDir(t: Teardown, prefix = 'tlsboot-test-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run main() in this process with captured output; signals are not wired. */
export async function runInProcess(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

function requireBuilt(): void {
  const { file } = tlsbootCommand([]);
  if (file === process.execPath && !existsSync(CLI)) throw new Error(`${CLI} is missing: run "make build" first`);
  if (!existsSync(file)) throw new Error(`TLSBOOT_BIN=${file} is missing: run "make package" first`);
}

/** A running `tlsboot` child process with its combined output. */
export class CliProcess {
  readonly child: ChildProcess;
  /** stdout and stderr interleaved as they came, and each alone. */
  output = '';
  stdout = '';
  stderr = '';
  readonly exited: Promise<number>;

  constructor(args: string[], env: Record<string, string> = {}) {
    requireBuilt();
    const cmd = tlsbootCommand(args);
    this.child = spawn(cmd.file, cmd.args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (d: Buffer) => {
      this.output += d.toString();
      this.stdout += d.toString();
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.output += d.toString();
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : 1))));
  }

  /** Resolves when the output matches, rejects on timeout or exit. */
  async waitFor(re: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    const start = Date.now();
    for (;;) {
      const m = this.output.match(re);
      if (m) return m;
      if (this.child.exitCode !== null) throw new Error(`tlsboot exited (${this.child.exitCode}) before ${re}:\n${this.output}`);
      if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${re}:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    if (this.child.exitCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Run the CLI to completion as a child process. */
export async function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult & { output: string }> {
  const p = new CliProcess(args, opts.env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout, stderr: p.stderr, output: p.output };
}

export function nodeArgs(dir: string, bootstrap: string, extra: string[] = []): string[] {
  return ['run', '--kubeconfig', path.join(dir, 'kubeconfig'), '--bootstrap-kubeconfig', bootstrap, '--cert-dir', path.join(dir, 'pki'), ...extra];
}

/** The visible entries of a folder (tlsboot's state file is a dotfile), sorted. */
export async function listDir(dir: string): Promise<string[]> {
  return (await fs.readdir(dir).catch(() => [] as string[])).filter((f) => !f.startsWith('.')).sort();
}

/** Poll until fn gives a value (not undefined or false); that value is returned. */
export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A real sd_notify socket (a path, or @abstract): each datagram becomes a line, fields joined by |. */
export async function startNotifyListener(t: Teardown, name: string): Promise<{ lines: string[] }> {
  const child = spawn('python3', [path.join(ROOT, 'test/support/notify_listener.py'), name], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const l = { lines: [] as string[] };
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    l.lines.push(...parts);
  });
  await until('notify listener', () => l.lines.includes('LISTENING'));
  return l;
}
