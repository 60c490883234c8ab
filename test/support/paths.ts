// Where the package and its built CLI are, from source (test/...) or compiled (dist/test/...)
// alike. Kept apart from helpers.ts so that the control plane launcher can use it without
// loading tlsboot's CLI in-process.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root. */
export const ROOT = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
/** The compiled CLI (make build). */
export const CLI = path.join(ROOT, 'dist', 'src', 'main.js');
/** The package's version (package.json). */
export const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The single executable for this machine's architecture (make package). */
export const EXECUTABLE = path.join(ROOT, 'dist', `tlsboot-${VERSION}-linux-${process.arch}`);

/**
 * How to start tlsboot: the executable named by TLSBOOT_BIN (the end-to-end suite run against
 * the package), or this Node with the compiled CLI.
 */
export function tlsbootCommand(args: string[]): { file: string; args: string[] } {
  const bin = process.env['TLSBOOT_BIN'];
  if (bin) return { file: path.resolve(ROOT, bin), args };
  return { file: process.execPath, args: [CLI, ...args] };
}
