// The shape of src/, kept by check rather than by care: the products (daemon, approver, cluster
// side) stand on shared layers, and imports only go down. cli > daemon | approver | cluster >
// node > kube > pki > base; the three products do not import each other.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../support/helpers.js';

const RANK: Record<string, number> = { base: 0, pki: 1, kube: 2, node: 3, daemon: 4, approver: 4, cluster: 4, cli: 5, '.': 6 };
const SRC = path.join(ROOT, 'src');

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The folder of src/ a file is in ('.' for main.ts). */
const folderOf = (file: string): string => path.dirname(path.relative(SRC, file)).split(path.sep)[0]!;

t.test('every folder of src/ has a layer, and every source file is in one', async (t) => {
  for (const file of await sources(SRC)) t.ok(folderOf(file) in RANK, `${path.relative(ROOT, file)} is in a known layer`);
});

t.test('imports only go down, and never across between sibling products', async (t) => {
  const wrong: string[] = [];
  for (const file of await sources(SRC)) {
    const text = await fs.readFile(file, 'utf8');
    const from = folderOf(file);
    for (const m of text.matchAll(/(?:from\s+|import\()'(\.{1,2}\/[^']+)\.js'/g)) {
      const target = path.resolve(path.dirname(file), m[1]!) + '.ts';
      if (!target.startsWith(SRC + path.sep)) {
        wrong.push(`${path.relative(ROOT, file)} imports ${m[1]} outside src/`);
        continue;
      }
      const to = folderOf(target);
      if (to === from) continue;
      if (RANK[to]! > RANK[from]!) wrong.push(`${path.relative(ROOT, file)} (${from}) imports ${path.relative(ROOT, target)} (${to}), a higher layer`);
      else if (RANK[to] === RANK[from]) wrong.push(`${path.relative(ROOT, file)} (${from}) imports ${path.relative(ROOT, target)}: products do not import each other`);
    }
  }
  t.same(wrong, []);
});

t.test('the check itself: an upward import is caught', async (t) => {
  // A file in pki that imports from node would break the rule; make sure the pattern sees it.
  const sample = "import { Agent } from '../node/agent.js';";
  const m = /(?:from\s+|import\()'(\.{1,2}\/[^']+)\.js'/.exec(sample);
  const to = folderOf(path.resolve(SRC, 'pki', m![1]!) + '.ts');
  t.equal(to, 'node');
  t.ok(RANK[to]! > RANK['pki']!);
});

/** Every module `file` loads at start: its static imports, transitively (dynamic ones are lazy). */
async function staticClosure(file: string, seen = new Set<string>()): Promise<Set<string>> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const text = await fs.readFile(file, 'utf8');
  for (const m of text.matchAll(/^import\s+(?!type\s)[^'";]*?from\s+'([^']+)';/gm)) {
    const spec = m[1]!;
    if (spec.startsWith('.')) await staticClosure(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')), seen);
    else seen.add(spec);
  }
  return seen;
}

t.test('tlsboot status loads neither the daemon nor chokidar', async (t) => {
  const loaded = [...(await staticClosure(path.join(SRC, 'daemon', 'status.ts'))), ...(await staticClosure(path.join(SRC, 'cli', 'cli.ts')))];
  t.notOk(loaded.some((m) => m.endsWith(path.join('daemon', 'daemon.ts'))), 'not the daemon');
  t.notOk(loaded.includes('chokidar'), 'not chokidar');
  t.ok((await staticClosure(path.join(SRC, 'daemon', 'daemon.ts'))).has('chokidar'), 'the check sees chokidar where it is');
});
