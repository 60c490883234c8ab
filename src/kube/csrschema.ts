// The API server's JSON, checked before use: a CertificateSigningRequest, a list of them, a
// watch event, a Node's addresses. Only the fields tlsboot reads are checked, and only their types; anything else
// passes through. A body that fails is a MalformedResponse ApiError (a proxy or a server bug),
// never a TypeError deep in the code that reads it.
import type { CsrList, CsrObject, StatusObject, WatchEvent } from './csrtypes.js';
import { ApiError } from '../base/errors.js';

type Dict = Record<string, unknown>;

class Shape {
  constructor(readonly where: string) {}

  fail(field: string, what: string): never {
    throw new ApiError(`${this.where}: the server's answer is malformed: ${field} ${what}`, 0, 'MalformedResponse');
  }

  dict(v: unknown, field: string): Dict {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, 'is not an object');
    return v as Dict;
  }

  optString(d: Dict, key: string, field: string): void {
    if (d[key] !== undefined && typeof d[key] !== 'string') this.fail(`${field}.${key}`, 'is not a string');
  }

  stringList(d: Dict, key: string, field: string, required: boolean): void {
    const v = d[key];
    if (v === undefined && !required) return;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) this.fail(`${field}.${key}`, 'is not a list of strings');
  }
}

function checkMetadata(s: Shape, obj: Dict, field: string): void {
  const meta = s.dict(obj['metadata'], `${field}.metadata`);
  for (const k of ['name', 'generateName', 'uid', 'resourceVersion', 'creationTimestamp']) s.optString(meta, k, `${field}.metadata`);
}

function assertCsr(s: Shape, v: unknown, field: string): asserts v is CsrObject {
  const obj = s.dict(v, field);
  checkMetadata(s, obj, field);
  const spec = s.dict(obj['spec'], `${field}.spec`);
  if (typeof spec['request'] !== 'string') s.fail(`${field}.spec.request`, 'is not a string');
  if (typeof spec['signerName'] !== 'string') s.fail(`${field}.spec.signerName`, 'is not a string');
  s.stringList(spec, 'usages', `${field}.spec`, true);
  s.stringList(spec, 'groups', `${field}.spec`, false);
  s.optString(spec, 'username', `${field}.spec`);
  if (spec['expirationSeconds'] !== undefined && typeof spec['expirationSeconds'] !== 'number') s.fail(`${field}.spec.expirationSeconds`, 'is not a number');
  if (obj['status'] !== undefined) {
    const status = s.dict(obj['status'], `${field}.status`);
    s.optString(status, 'certificate', `${field}.status`);
    const conditions = status['conditions'];
    if (conditions !== undefined) {
      if (!Array.isArray(conditions)) s.fail(`${field}.status.conditions`, 'is not a list');
      conditions.forEach((c, i) => {
        const cond = s.dict(c, `${field}.status.conditions[${i}]`);
        if (typeof cond['type'] !== 'string') s.fail(`${field}.status.conditions[${i}].type`, 'is not a string');
        for (const k of ['status', 'reason', 'message']) s.optString(cond, k, `${field}.status.conditions[${i}]`);
      });
    }
  }
}

function csrAt(s: Shape, v: unknown, field: string): CsrObject {
  assertCsr(s, v, field);
  return v;
}

function assertStatus(s: Shape, v: unknown, field: string): asserts v is StatusObject {
  const status = s.dict(v, field);
  if (status['kind'] !== 'Status') s.fail(`${field}.kind`, 'is not Status');
  for (const k of ['message', 'reason', 'status']) s.optString(status, k, field);
  if (status['code'] !== undefined && typeof status['code'] !== 'number') s.fail(`${field}.code`, 'is not a number');
}

/** A BOOKMARK's object: only its metadata (the resourceVersion) is there to read. */
function assertBookmark(s: Shape, v: unknown, field: string): asserts v is CsrObject {
  checkMetadata(s, s.dict(v, field), field);
}

/** A CertificateSigningRequest from `where` (a method and path, for the message). */
export function checkCsr(v: unknown, where: string): CsrObject {
  return csrAt(new Shape(where), v, 'object');
}

export function checkCsrList(v: unknown, where: string): CsrList {
  const s = new Shape(where);
  const list = s.dict(v, 'list');
  const items: unknown = list['items'] ?? [];
  if (!Array.isArray(items)) return s.fail('list.items', 'is not a list');
  const meta = list['metadata'] === undefined ? {} : s.dict(list['metadata'], 'list.metadata');
  s.optString(meta, 'resourceVersion', 'list.metadata');
  return { items: items.map((item: unknown, i) => csrAt(s, item, `list.items[${i}]`)), resourceVersion: (meta['resourceVersion'] as string | undefined) ?? '' };
}

/** A Node's status.addresses[].address (the approver's nodeAddresses check); nothing else of it. */
export function checkNodeAddresses(v: unknown, where: string): string[] {
  const s = new Shape(where);
  const node = s.dict(v, 'node');
  const status = node['status'] === undefined ? {} : s.dict(node['status'], 'node.status');
  const list: unknown = status['addresses'] ?? [];
  if (!Array.isArray(list)) return s.fail('node.status.addresses', 'is not a list');
  return list.map((a: unknown, i) => {
    const address = s.dict(a, `node.status.addresses[${i}]`)['address'];
    return typeof address === 'string' ? address : s.fail(`node.status.addresses[${i}].address`, 'is not a string');
  });
}

/** One watch event. A BOOKMARK carries only metadata; an ERROR carries a Status. */
export function checkEvent(v: unknown, where: string): WatchEvent {
  const s = new Shape(where);
  const ev = s.dict(v, 'event');
  const type = ev['type'];
  const object = ev['object'];
  if (type === 'ERROR') {
    assertStatus(s, object, 'event.object');
    return { type, object };
  }
  if (type === 'BOOKMARK') {
    assertBookmark(s, object, 'event.object');
    return { type, object };
  }
  if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return s.fail('event.type', 'is not one of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR');
  return { type, object: csrAt(s, object, 'event.object') };
}
