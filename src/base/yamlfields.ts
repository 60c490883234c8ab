// Reading a YAML file that a human wrote (the config, the approval policy): every error names
// the file and the field, and unknown keys are refused rather than silently ignored.
import { parseDocument } from 'yaml';
import { ConfigError } from './errors.js';
import { readInputFile } from './fsutil.js';
import { redact } from './log.js';

export type Dict = Record<string, unknown>;

/** The parsed document; `what` names the file's role in the error ("config file"). */
export async function readYamlFile(file: string, what: string): Promise<unknown> {
  return parseYamlText(await readInputFile(file, { what }), file);
}

/**
 * Parse YAML text from `file`. Errors become a ConfigError naming the file. Warnings (an unknown
 * tag, say) go out as one process warning each, redacted, without the source excerpt that the
 * yaml library quotes: the excerpt is the line itself, and that line may hold a token.
 */
export function parseYamlText(text: string, file: string): unknown {
  let doc;
  try {
    // logLevel 'error': the library would otherwise print its warnings itself, with the excerpt.
    doc = parseDocument(text, { logLevel: 'error' });
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML: ${firstLine(err)}`);
  }
  const [error] = doc.errors;
  if (error) throw new ConfigError(`${file}: not valid YAML: ${firstLine(error)}`);
  for (const w of doc.warnings) {
    process.emitWarning(redact(`${file}: ${firstLine(w)}`), { type: 'ConfigWarning', code: w.code });
  }
  try {
    return doc.toJS();
  } catch (err) {
    // toJS refuses alias bombs (more than maxAliasCount aliases to one node).
    throw new ConfigError(`${file}: not valid YAML: ${firstLine(err)}`);
  }
}

/** The message without the source excerpt that pretty errors append after the first line. */
function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.replace(/:$/, '');
}


export function dict(v: unknown, where: string, what: string): Dict {
  if (!isDict(v)) throw new ConfigError(`${where} ${what}`);
  return v;
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

/** A string field, or undefined when absent (or null). */
export function optString(d: Dict, key: string, where: (k: string) => string): string | undefined {
  const v = d[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ConfigError(`${where(key)} must be a string`);
  return v;
}

/** A boolean field, or undefined when absent (or null). */
export function optBool(d: Dict, key: string, where: (k: string) => string): boolean | undefined {
  const v = d[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new ConfigError(`${where(key)} must be true or false`);
  return v;
}

export function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
