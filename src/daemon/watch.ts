// The daemon's file watching (chokidar): outputs to restore when someone changes or deletes them,
// the config file to reload, the bootstrap inputs to mention. Folders are watched, not files:
// chokidar sees nothing for a file whose folder does not exist yet, and nothing when a watched
// symlink is re-pointed.
import { watch, type FSWatcher } from 'chokidar';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../base/log.js';

export interface WatchTargets {
  outputs: string[];
  inputs: string[];
  config?: string;
}

export interface WatchHandlers {
  output(file: string, event: string): void;
  /** Called once the file has been quiet for a moment: an editor may write in several steps. */
  config(file: string): void;
  input(file: string, event: string): void;
}

export interface FileWatch {
  close(): Promise<void>;
}

/** Start watching; the output folders are made now, as the first write would make them. */
export async function watchFiles(t: WatchTargets, on: WatchHandlers, log: Logger): Promise<FileWatch | undefined> {
  const dirs = [...new Set(t.outputs.map((f) => path.dirname(f)))];
  for (const d of dirs) await fs.mkdir(d, { recursive: true, mode: 0o755 });
  const targets = [...dirs, ...t.inputs, ...(t.config ? [t.config] : [])];
  if (targets.length === 0) return undefined;
  // No awaitWriteFinish: it swallows a delete that follows our own write closely, and outputs
  // converge anyway (they are compared with what they should hold).
  const watcher: FSWatcher = watch(targets, { ignoreInitial: true, depth: 0 });
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  const outputs = new Set(t.outputs);
  let configTimer: NodeJS.Timeout | undefined;
  watcher.on('all', (event, file) => {
    const abs = path.resolve(file);
    log.debug(4, 'file event', { event, file: abs });
    if (outputs.has(abs) && ['unlink', 'change', 'add'].includes(event)) {
      on.output(abs, event);
    } else if (abs === t.config && (event === 'change' || event === 'add')) {
      clearTimeout(configTimer);
      configTimer = setTimeout(() => on.config(abs), 300);
    } else if (t.inputs.includes(abs)) {
      on.input(abs, event);
    }
  });
  return {
    close: async () => {
      clearTimeout(configTimer);
      await watcher.close();
    },
  };
}
