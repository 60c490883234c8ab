// Where the package and its built CLI are, from source (test/...) or compiled (dist/test/...)
// alike. Kept apart from helpers.ts so that the control plane launcher can use it without
// loading tlsboot's CLI in-process.
import { existsSync } from 'node:fs';
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
