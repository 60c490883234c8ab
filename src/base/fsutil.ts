// Crash-safe file primitives: a reader sees the old content or the new, never a partial file,
// and a file is created with its final mode (no window in which it is more open than asked).
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { ConfigError, FileWriteError } from './errors.js';

export interface WriteOptions {
  mode: number;
  /** Owner and group, applied before the rename. */
  uid?: number;
  gid?: number;
  /** Create missing parent folders with this mode (default 0o755, like kubelet). */
  dirMode?: number;
}

/** The temporary name writeFileAtomic and replaceSymlink use for `name`. */
function tmpName(name: string): string {
  return `.${name}.tmp-${randomBytes(6).toString('hex')}`;
}

/**
 * Remove the temporary files that a process killed in the middle of writeFileAtomic or
 * replaceSymlink left in `dir`, for the files `ours` says are ours (another identity may share
 * the folder). Only for a process's start: a write of its own in flight would lose its file.
 */
export async function removeLeftovers(dir: string, ours: (name: string) => boolean): Promise<string[]> {
  const pattern = /^\.(.+)\.tmp-[0-9a-f]{12}$/;
  const removed: string[] = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const base = pattern.exec(name)?.[1];
    if (base === undefined || !ours(base)) continue;
    await fs.rm(path.join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

export async function writeFileAtomic(file: string, data: string | Uint8Array, opts: WriteOptions): Promise<void> {
  try {
    await writeAtomic(file, data, opts);
  } catch (err) {
    throw writeError(file, err);
  }
}

/** A failed write as one line naming the file and the remedy; the errno code stays readable. */
function writeError(file: string, err: unknown): FileWriteError {
  const e = err as NodeJS.ErrnoException;
  const remedy: Record<string, string> = {
    ENOSPC: 'the disk is full; free some space', EDQUOT: 'the disk quota is used up', EROFS: 'the file system is read-only',
    EACCES: 'permission denied', EPERM: 'not permitted',
  };
  return new FileWriteError(`cannot write ${file}: ${remedy[e.code ?? ''] ?? e.message}${e.code ? ` (${e.code})` : ''}`);
}

async function writeAtomic(file: string, data: string | Uint8Array, opts: WriteOptions): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: opts.dirMode ?? 0o755 });
  const tmp = path.join(dir, tmpName(path.basename(file)));
  const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, opts.mode);
  try {
    await handle.writeFile(data);
    // The umask may have narrowed the mode at creation; set it exactly.
    await handle.chmod(opts.mode);
    if (opts.uid !== undefined || opts.gid !== undefined) await handle.chown(opts.uid ?? -1, opts.gid ?? -1);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

/** Replace (or create) a symlink in one rename, so there is never a moment without it. */
export async function replaceSymlink(target: string, link: string): Promise<void> {
  const dir = path.dirname(link);
  const tmp = path.join(dir, tmpName(path.basename(link)));
  try {
    await fs.symlink(target, tmp);
    await fs.rename(tmp, link).catch(async (err: unknown) => {
      await fs.rm(tmp, { force: true });
      throw err;
    });
    await syncDir(dir);
  } catch (err) {
    throw writeError(link, err);
  }
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * A file the user pointed at, as text. When it cannot be read: a ConfigError, either
 * "<file>: <what> not found" (the file is the thing) or "<setting>: cannot read <file>: why"
 * (a setting names the file).
 */
export async function readInputFile(file: string, name: { what: string } | { setting: string }): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    const why = isNotFound(err) ? 'no such file' : (err as Error).message;
    if ('setting' in name) throw new ConfigError(`${name.setting}: cannot read ${file}: ${why}`);
    throw new ConfigError(`${file}: ${isNotFound(err) ? `${name.what} not found` : `cannot read the ${name.what}: ${why}`}`);
  }
}

/** Missing, or under a path part that is a file (ENOTDIR): either way there is nothing to read. */
export function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Check that `dir` is a folder or can be made one (`shown` is the path the user gave): no part of its path is a file. Done before
 * any work, so that the user reads which setting to change instead of mkdir's ENOTDIR later.
 */
export async function checkFolderPath(dir: string, setting: string, shown = dir): Promise<void> {
  for (let p = path.resolve(dir); ; p = path.dirname(p)) {
    const st = await fs.stat(p).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw new ConfigError(`${setting} ${shown}: cannot check ${p}: ${(err as Error).message}`);
    });
    if (st) {
      if (!st.isDirectory()) throw new ConfigError(`${setting} ${shown}: ${p} is a file, not a folder; choose another ${setting}`);
      return;
    }
    if (path.dirname(p) === p) return;
  }
}
