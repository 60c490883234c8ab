// Extra files per identity for workloads that are not kubelet: the chain, the key, the cluster
// CA, or chain+key in one file (haproxy's `crt`). Each is created with its final owner, group
// and mode and renamed into place, and written only when content or permissions differ.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import type { OutputSpec } from './config.js';
import { ConfigError } from '../base/errors.js';
import { readKubeconfig } from '../kube/kubeconfig.js';
import type { CertStore } from '../node/store.js';
import { isNotFound, writeFileAtomic } from '../base/fsutil.js';

const run = promisify(execFile);

export interface OutputContent {
  chainPem: string;
  keyPem: string;
  caPem?: string;
}

export interface ResolvedOutput extends OutputSpec {
  uid?: number;
  gid?: number;
}

/** Resolve owner and group names once, at start-up or reload, through NSS (getent). */
export async function resolveOutputs(specs: OutputSpec[], where: string): Promise<ResolvedOutput[]> {
  const out: ResolvedOutput[] = [];
  for (const spec of specs) {
    const r: ResolvedOutput = { ...spec };
    if (spec.owner !== undefined) r.uid = await lookup('passwd', spec.owner, `${where}: output ${spec.path}: owner`);
    if (spec.group !== undefined) r.gid = await lookup('group', spec.group, `${where}: output ${spec.path}: group`);
    out.push(r);
  }
  return out;
}

async function lookup(db: 'passwd' | 'group', name: string, where: string): Promise<number> {
  if (/^\d+$/.test(name)) return Number(name);
  try {
    const { stdout } = await run('getent', [db, name]);
    const id = Number(stdout.split(':')[2]);
    if (Number.isInteger(id)) return id;
  } catch {
    // getent exits 2 for an unknown name
  }
  throw new ConfigError(`${where} ${JSON.stringify(name)} does not exist on this machine`);
}

export function renderOutput(type: OutputSpec['type'], c: OutputContent, where: string): string {
  switch (type) {
    case 'cert':
      return c.chainPem;
    case 'key':
      return c.keyPem;
    case 'combined':
      return c.chainPem.trimEnd() + '\n' + c.keyPem;
    case 'ca':
      if (!c.caPem) throw new ConfigError(`${where}: a "ca" output needs certificate-authority(-data) in the kubeconfig`);
      return c.caPem;
  }
}

/** Write the outputs that differ; returns the paths written. */
export async function writeOutputs(outputs: ResolvedOutput[], content: OutputContent, where: string): Promise<string[]> {
  const written: string[] = [];
  for (const o of outputs) {
    const data = renderOutput(o.type, content, where);
    if (await upToDate(o, data)) continue;
    await writeFileAtomic(o.path, data, { mode: o.mode, ...(o.uid !== undefined ? { uid: o.uid } : {}), ...(o.gid !== undefined ? { gid: o.gid } : {}) });
    written.push(o.path);
  }
  return written;
}

async function upToDate(o: ResolvedOutput, data: string): Promise<boolean> {
  try {
    const st = await fs.lstat(o.path);
    if (!st.isFile() || (st.mode & 0o7777) !== o.mode) return false;
    if (o.uid !== undefined && st.uid !== o.uid) return false;
    if (o.gid !== undefined && st.gid !== o.gid) return false;
    return (await fs.readFile(o.path, 'utf8')) === data;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Bring `outputs` in line with the store's current certificate and the kubeconfig's CA; returns what was written. */
export async function syncOutputs(outputs: ResolvedOutput[], store: CertStore, kubeconfig: string, where: string): Promise<string[]> {
  if (outputs.length === 0) return [];
  const current = await store.current();
  if (!current) return [];
  const caPem = (await readKubeconfig(kubeconfig).catch(() => undefined))?.caPem;
  return writeOutputs(outputs, { chainPem: current.chainPem, keyPem: current.keyPem, ...(caPem ? { caPem } : {}) }, where);
}
