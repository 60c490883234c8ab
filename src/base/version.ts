// The package: where it is installed (systemd/ and examples/ ship beside dist/) and its version.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TlsbootError } from './errors.js';

function findPackage(): { root: string; version: string } | undefined {
  // From src/base when run from source, from dist/src/base when built: walk up to our package.json.
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tlsboot' && pkg.version) return { root: dir, version: pkg.version };
    } catch {
      // not ours; keep looking
    }
  }
  return undefined;
}

/** Set by the single executable's bundler (make package), which has no package.json beside it. */
declare const TLSBOOT_BUNDLED_VERSION: string | undefined;
const bundled = typeof TLSBOOT_BUNDLED_VERSION === 'string' ? TLSBOOT_BUNDLED_VERSION : undefined;
const found = bundled === undefined ? findPackage() : undefined;
export const VERSION = bundled ?? found?.version ?? '0.0.0-unknown';
export const USER_AGENT = `tlsboot/v${VERSION} (${process.platform}/${process.arch}) node/${process.version}`;

/** The package root (systemd/ and examples/ ship in the npm package). */
export function packageRoot(): string {
  if (!found) throw new TlsbootError('tlsboot cannot find its own package.json (systemd/ and examples/ ship beside it); reinstall tlsboot');
  return found.root;
}
