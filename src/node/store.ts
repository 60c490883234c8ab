// The certificate store, in kubelet's layout (client-go util/certificate/certificate_store.go):
//   <dir>/<prefix>-YYYY-MM-DD-HH-MM-SS.pem   cert chain then key, 0600
//   <dir>/<prefix>-current.pem               absolute symlink to the newest of them
// Improvements over kubelet: the file is fsynced and renamed into place, the symlink is swapped
// in one rename (never absent), the directory is fsynced, a regular-file -current.pem is
// migrated instead of failing for ever, and old files are pruned to the newest N.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseChain, splitPem, type CertInfo } from '../pki/certs.js';
import { ConfigError, TlsbootError } from '../base/errors.js';
import { isNotFound, readIfExists, removeLeftovers, replaceSymlink, writeFileAtomic } from '../base/fsutil.js';
import { renderNodeKubeconfig, type ClientConfig } from '../kube/kubeconfig.js';
import { loadPrivateKey, type KeyPair } from '../pki/keys.js';
import { silentLogger, type Logger } from '../base/log.js';
import { escapeRegExp } from '../base/text.js';
import { DEFAULT_KEEP } from './identity.js';

export interface StoredCredential {
  /** The timestamped file the symlink points at. */
  file: string;
  chainPem: string;
  keyPem: string;
  key: KeyPair;
  chain: CertInfo[];
}

export class CertStore {
  readonly dir: string;
  readonly prefix: string;
  readonly keep: number;
  private readonly log: Logger;

  constructor(dir: string, prefix: string, opts: { keep?: number; log?: Logger } = {}) {
    this.dir = path.resolve(dir);
    this.prefix = prefix;
    this.keep = opts.keep ?? DEFAULT_KEEP;
    this.log = opts.log ?? silentLogger;
  }

  get currentPath(): string {
    return path.join(this.dir, `${this.prefix}-current.pem`);
  }

  /** Where the bootstrap key waits (kubelet: kubelet-client.key.tmp) until its cert arrives. */
  get keyTmpPath(): string {
    return path.join(this.dir, `${this.prefix}.key.tmp`);
  }

  private get updatedPath(): string {
    return path.join(this.dir, `${this.prefix}-updated.pem`);
  }

  /**
   * The kubeconfig that points at -current.pem (kubelet's writeKubeconfigFromBootstrapping),
   * written when missing or different: rotation never needs it rewritten, it names the symlink.
   */
  async writeKubeconfig(file: string, cluster: ClientConfig): Promise<void> {
    const text = renderNodeKubeconfig({
      server: cluster.server,
      ...(cluster.caPath ? { caPath: cluster.caPath } : cluster.caPem ? { caPem: cluster.caPem } : {}),
      insecureSkipTlsVerify: cluster.insecureSkipTlsVerify,
      ...(cluster.tlsServerName ? { tlsServerName: cluster.tlsServerName } : {}),
      pemPath: this.currentPath,
    });
    const old = await readIfExists(file);
    if (old?.toString('utf8') === text) return;
    await writeFileAtomic(file, text, { mode: 0o600 });
    this.log.info('wrote kubeconfig', { path: file });
  }

  /** Whether `name` is one of this store's files (tlsboot's state file included). */
  private owns(name: string): boolean {
    const p = escapeRegExp(this.prefix);
    // The state file is hidden (daemon/state.ts): `.<prefix>.state.json`.
    return new RegExp(`^(${p}(-\\d{4}(-\\d{2}){5}\\.pem|-current\\.pem|-updated\\.pem|\\.key\\.tmp)|\\.${p}\\.state\\.json)$`).test(name);
  }

  /** What a kill -9 in the middle of a write left behind (found by the fault suite); at start only. */
  async removeLeftovers(kubeconfig: string): Promise<void> {
    const removed = [
      ...(await removeLeftovers(this.dir, (name) => this.owns(name))),
      ...(await removeLeftovers(path.dirname(path.resolve(kubeconfig)), (name) => name === path.basename(kubeconfig))),
    ];
    if (removed.length > 0) this.log.info('removed temporary files an interrupted write left behind', { files: removed.join(',') });
  }

  /** Repair what a crash or kubelet may have left: -updated.pem, a regular-file -current.pem. */
  async recover(now = new Date()): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o755 });
    const current = await lstatOrUndefined(this.currentPath);
    const updated = await lstatOrUndefined(this.updatedPath);
    if (!current && updated?.isSymbolicLink()) {
      await fs.rename(this.updatedPath, this.currentPath);
      this.log.info('recovered the certificate symlink from an interrupted update', { path: this.currentPath });
    } else if (updated) {
      await fs.rm(this.updatedPath, { force: true });
    }
    if (current?.isFile()) {
      const target = path.join(this.dir, `${this.prefix}-${timestamp(current.mtime)}.pem`);
      const dest = (await lstatOrUndefined(target)) ? path.join(this.dir, `${this.prefix}-${timestamp(now)}.pem`) : target;
      await fs.rename(this.currentPath, dest);
      await replaceSymlink(dest, this.currentPath);
      this.log.warn('migrated a regular file at the -current.pem path to a timestamped file and a symlink', { path: this.currentPath, file: dest });
    } else if (current && !current.isSymbolicLink()) {
      throw new ConfigError(`${this.currentPath}: expected a symlink to the current certificate, found something else; move it away`);
    }
  }

  /** The current credential, or undefined if there is none (no link, or a dangling one). */
  async current(): Promise<StoredCredential | undefined> {
    let file: string;
    let text: string;
    try {
      file = await fs.realpath(this.currentPath);
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return parseCredential(text, file);
  }

  /** Write a new pair and point -current.pem at it. Returns the new file's path. */
  async update(chainPem: string, keyPem: string, now = new Date()): Promise<string> {
    const file = path.join(this.dir, `${this.prefix}-${timestamp(now)}.pem`);
    const content = chainPem.trimEnd() + '\n' + keyPem.trimEnd() + '\n';
    parseCredential(content, file); // never write what we could not read back
    await writeFileAtomic(file, content, { mode: 0o600 });
    await replaceSymlink(file, this.currentPath);
    return file;
  }

  /** Remove all but the newest `keep` timestamped files, never the current one. */
  async prune(): Promise<string[]> {
    const pattern = new RegExp(`^${escapeRegExp(this.prefix)}-\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2}\\.pem$`);
    const names = (await fs.readdir(this.dir)).filter((n) => pattern.test(n)).sort();
    const current = await fs.realpath(this.currentPath).catch(() => '');
    const removed: string[] = [];
    for (const name of names.slice(0, Math.max(0, names.length - this.keep))) {
      const file = path.join(this.dir, name);
      if (file === current) continue;
      await fs.rm(file, { force: true });
      removed.push(file);
    }
    if (removed.length > 0) this.log.debug(1, 'pruned old certificate files', { removed: removed.length, kept: this.keep });
    return removed;
  }
}

export function parseCredential(text: string, file: string): StoredCredential {
  const blocks = splitPem(text);
  const certs = blocks.filter((b) => b.type === 'CERTIFICATE');
  const keyBlock = blocks.find((b) => b.type.endsWith('PRIVATE KEY'));
  if (certs.length === 0 || !keyBlock) {
    throw new TlsbootError(`${file}: expected certificate(s) followed by a private key; remove the file to bootstrap again`);
  }
  let chain: CertInfo[];
  try {
    chain = parseChain(text);
  } catch (err) {
    throw new TlsbootError(`${file}: unreadable certificate (${(err as Error).message}); remove the file to bootstrap again`);
  }
  const key = loadPrivateKey(keyBlock.pem, file);
  return { file, chainPem: certs.map((b) => b.pem).join(''), keyPem: keyBlock.pem, key, chain };
}

/** kubelet's file-name timestamp: local time, "2006-01-02-15-04-05". */
export function timestamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}`;
}

async function lstatOrUndefined(p: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
