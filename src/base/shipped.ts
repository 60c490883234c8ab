// The files that ship with tlsboot (systemd/ units and drop-ins, examples/): beside dist/ in the
// npm package, embedded as assets in the single executable.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { getAsset, isSea } from 'node:sea';
import { TlsbootError } from './errors.js';
import { packageRoot } from './version.js';

/** The text of a shipped file, by its path in the source tree (for example `systemd/tlsboot.service`). */
export async function readShipped(rel: string): Promise<string> {
  // node:sea is loaded statically: the executable's script cannot import() a built-in module.
  if (isSea()) {
    try {
      return getAsset(rel, 'utf8');
    } catch {
      throw new TlsbootError(`this tlsboot executable has no ${rel} inside; rebuild it with make package`);
    }
  }
  return fs.readFile(path.join(packageRoot(), rel), 'utf8');
}
