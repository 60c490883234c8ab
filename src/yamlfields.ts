// Reading a YAML file that a human wrote (the config, the approval policy): every error names
// the file and the field, and unknown keys are refused rather than silently ignored.
import { promises as fs } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';
import { isNotFound } from './fsutil.js';

export type Dict = Record<string, unknown>;

/** The parsed document; `what` names the file's role in the error ("config file"). */
export async function readYamlFile(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: ${isNotFound(err) ? `${what} not found` : `cannot read: ${(err as Error).message}`}`);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

export function dict(v: unknown, where: string, what: string): Dict {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${where} ${what}`);
  return v as Dict;
}

export function onlyKeys(d: Dict, allowed: Set<string>, where: string): void {
  for (const k of Object.keys(d)) {
    if (!allowed.has(k)) throw new ConfigError(`${where}: unknown key ${JSON.stringify(k)}; known keys: ${[...allowed].join(', ')}`);
  }
}

/** A list of non-empty strings, or undefined when the key is absent. */
export function stringList(v: unknown, where: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) throw new ConfigError(`${where} must be a list of strings`);
  return v as string[];
}
