// The approval policy of `tlsboot approve`: which CSRs to approve, which to deny and why. A rule
// is in scope for a CSR when its signer matches and the requester (spec.username/spec.groups,
// set by the API server, not by the requester) is one it names. An in-scope CSR that meets every
// constraint of a rule is approved; one that meets none is denied with the reasons (or left
// pending, with onViolation: ignore); a CSR no rule is in scope for is left alone.
import { BlockList, isIP } from 'node:net';
import type { CsrObject } from '../kube/csrtypes.js';
import type { ParsedCsr } from '../pki/csr.js';
import { ConfigError } from '../base/errors.js';
import { isSignerName, KNOWN_USAGES } from '../kube/vocabulary.js';
import { escapeRegExp, isLabel } from '../base/text.js';
import { dict, onlyKeys, readYamlFile, stringList } from '../base/yamlfields.js';

export interface PolicyRule {
  name: string;
  signerName: string;
  users: string[];
  groups: string[];
  commonName: string;
  organizations: string[];
  usages: string[];
  dnsNames: string[];
  ipAddresses: string[];
  maxExpirationSeconds?: number;
  onViolation: 'deny' | 'ignore';
}

export interface Policy {
  file: string;
  rules: PolicyRule[];
}

export type Decision =
  | { action: 'approve'; rule: string; message: string }
  | { action: 'deny'; rule: string; message: string }
  | { action: 'ignore'; rule: string; message: string };

/** What a client certificate for kube-apiserver-client may carry (its signer allows no more). */
const CLIENT_USAGES = ['digital signature', 'key encipherment', 'client auth'];
const RULE_KEYS = new Set(['name', 'signerName', 'requesters', 'subject', 'usages', 'dnsNames', 'ipAddresses', 'maxExpirationSeconds', 'onViolation']);

export async function loadPolicy(file: string): Promise<Policy> {
  return parsePolicy(await readYamlFile(file, 'policy file'), file);
}

export function parsePolicy(doc: unknown, file: string): Policy {
  const top = dict(doc, file, 'the policy file must be a mapping with "rules"');
  onlyKeys(top, new Set(['rules']), file);
  const list = top['rules'];
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`${file}: rules must be a non-empty list`);
  const rules = list.map((entry, i) => parseRule(entry, `${file}: rules[${i}]`));
  const seen = new Set<string>();
  for (const r of rules) {
    if (seen.has(r.name)) throw new ConfigError(`${file}: rules: the name ${JSON.stringify(r.name)} is used twice`);
    seen.add(r.name);
  }
  return { file, rules };
}

/** The signers a policy approves for: what the approver's RBAC must allow, and no more. */
export function policySigners(policy: Policy): string[] {
  return [...new Set(policy.rules.map((r) => r.signerName))].sort();
}

/** Groups named literally by the rules (no wildcard): they need permission to create CSRs. */
export function requesterGroups(policy: Policy): string[] {
  return [...new Set(policy.rules.flatMap((r) => r.groups).filter((g) => !g.includes('*')))].sort();
}

function parseRule(entry: unknown, at: string): PolicyRule {
  const raw = dict(entry, at, 'must be a mapping');
  const name = raw['name'];
  const where = typeof name === 'string' ? `${at} (${name})` : at;
  onlyKeys(raw, RULE_KEYS, where);
  if (typeof name !== 'string' || !isLabel(name)) {
    throw new ConfigError(`${where}.name is required: lower-case letters, digits and '-'`);
  }
  const signerName = raw['signerName'];
  if (typeof signerName !== 'string' || !isSignerName(signerName)) {
    throw new ConfigError(`${where}.signerName is required, e.g. kubernetes.io/kube-apiserver-client`);
  }
  const req = dict(raw['requesters'], `${where}.requesters`, 'is required: a mapping { users: [...], groups: [...] } naming who may ask');
  onlyKeys(req, new Set(['users', 'groups']), `${where}.requesters`);
  const users = stringList(req['users'], `${where}.requesters.users`) ?? [];
  const groups = stringList(req['groups'], `${where}.requesters.groups`) ?? [];
  if (users.length + groups.length === 0) throw new ConfigError(`${where}.requesters must name at least one user or group`);
  if (groups.some((g) => g === '*' || g === 'system:authenticated')) {
    throw new ConfigError(`${where}.requesters.groups: "*" and system:authenticated would let anyone with a login ask; name the groups`);
  }
  const subject = dict(raw['subject'], `${where}.subject`, 'is required: a mapping { commonName, organizations }');
  onlyKeys(subject, new Set(['commonName', 'organizations']), `${where}.subject`);
  const commonName = subject['commonName'];
  if (typeof commonName !== 'string' || commonName === '') {
    throw new ConfigError(`${where}.subject.commonName is required: a pattern such as "haproxy:*" or "\${username}"`);
  }
  const usages = stringList(raw['usages'], `${where}.usages`) ?? CLIENT_USAGES;
  const unknown = usages.find((u) => !(KNOWN_USAGES as readonly string[]).includes(u));
  if (unknown) throw new ConfigError(`${where}.usages: ${JSON.stringify(unknown)} is not a known usage; one of: ${KNOWN_USAGES.join(', ')}`);
  const ipAddresses = stringList(raw['ipAddresses'], `${where}.ipAddresses`) ?? [];
  for (const ip of ipAddresses) {
    const [addr, bits] = ip.split('/');
    const family = isIP(addr ?? '');
    const max = family === 4 ? 32 : 128;
    if (!family || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) {
      throw new ConfigError(`${where}.ipAddresses: ${JSON.stringify(ip)} is not an IP address or CIDR`);
    }
  }
  const max = raw['maxExpirationSeconds'];
  if (max !== undefined && (typeof max !== 'number' || !Number.isInteger(max) || max < 600)) {
    throw new ConfigError(`${where}.maxExpirationSeconds must be a whole number of at least 600`);
  }
  const onViolation = raw['onViolation'] ?? 'deny';
  if (onViolation !== 'deny' && onViolation !== 'ignore') throw new ConfigError(`${where}.onViolation must be deny or ignore`);
  const rule: PolicyRule = {
    name, signerName, users, groups, commonName, usages, ipAddresses, onViolation,
    organizations: stringList(subject['organizations'], `${where}.subject.organizations`) ?? [],
    dnsNames: stringList(raw['dnsNames'], `${where}.dnsNames`) ?? [],
  };
  if (max !== undefined) rule.maxExpirationSeconds = max;
  return rule;
}

/**
 * `*` matches any run of characters; `${username}` stands for the requester's user name, taken
 * literally (so "${username}" pins a renewal to the identity that asks).
 */
export function globMatch(pattern: string, value: string, username = ''): boolean {
  const parts = pattern.split('${username}').map((p) => p.split('*').map(escapeRegExp).join('.*'));
  return new RegExp(`^${parts.join(escapeRegExp(username))}$`, 's').test(value);
}

function inScope(rule: PolicyRule, csr: CsrObject): boolean {
  const username = csr.spec.username ?? '';
  const groups = csr.spec.groups ?? [];
  return rule.signerName === csr.spec.signerName &&
    (rule.users.some((u) => globMatch(u, username)) || rule.groups.some((g) => groups.some((have) => globMatch(g, have))));
}

/** Everything about the request that the rule does not allow; empty when it may be approved. */
export function violations(rule: PolicyRule, csr: CsrObject, request: ParsedCsr | undefined): string[] {
  if (!request) return ['spec.request is not a PKCS#10 certificate request'];
  if (!request.signatureValid) return ['spec.request is not signed by its own key'];
  const username = csr.spec.username ?? '';
  const out: string[] = [];
  const { commonName, organizations } = request.subject;
  if (!globMatch(rule.commonName, commonName, username)) {
    out.push(`subject CN ${JSON.stringify(commonName)} does not match ${JSON.stringify(rule.commonName.replaceAll('${username}', username))}`);
  }
  for (const o of organizations) {
    if (!rule.organizations.some((p) => globMatch(p, o, username))) out.push(`subject O ${JSON.stringify(o)} is not allowed${allowedList(rule.organizations)}`);
  }
  for (const u of csr.spec.usages) {
    if (!rule.usages.includes(u)) out.push(`usage ${JSON.stringify(u)} is not allowed${allowedList(rule.usages)}`);
  }
  for (const d of request.dnsNames) {
    if (!rule.dnsNames.some((p) => globMatch(p, d, username))) out.push(`DNS name ${JSON.stringify(d)} is not allowed${allowedList(rule.dnsNames)}`);
  }
  const ips = blockList(rule.ipAddresses);
  for (const ip of request.ipAddresses) {
    if (!ips.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4')) out.push(`IP address ${ip} is not allowed${allowedList(rule.ipAddresses)}`);
  }
  for (const other of request.otherNames) out.push(`subject alternative name ${other} is not allowed (only DNS names and IP addresses can be)`);
  const max = rule.maxExpirationSeconds;
  if (max !== undefined) {
    const asked = csr.spec.expirationSeconds;
    if (asked === undefined) out.push(`spec.expirationSeconds is not set; ask for at most ${max}`);
    else if (asked > max) out.push(`spec.expirationSeconds ${asked} is more than ${max}`);
  }
  return out;
}

function allowedList(allowed: string[]): string {
  return allowed.length ? ` (allowed: ${allowed.join(', ')})` : ' (the rule allows none)';
}

function blockList(entries: string[]): BlockList {
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/') as [string, string | undefined];
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

/** The decision for a pending CSR; `request` is undefined when spec.request does not parse. */
export function decide(policy: Policy, csr: CsrObject, request: ParsedCsr | undefined): Decision {
  const rules = policy.rules.filter((r) => inScope(r, csr));
  if (rules.length === 0) {
    return { action: 'ignore', rule: '', message: `no rule for signer ${csr.spec.signerName} and requester ${csr.spec.username ?? '?'}` };
  }
  const found: string[] = [];
  for (const rule of rules) {
    const v = violations(rule, csr, request);
    if (v.length === 0) return { action: 'approve', rule: rule.name, message: `approved by tlsboot policy rule "${rule.name}"` };
    found.push(`rule "${rule.name}": ${v.join('; ')}`);
  }
  const denying = rules.find((r) => r.onViolation === 'deny');
  const message = `tlsboot policy: ${found.join(' | ')}`;
  return denying ? { action: 'deny', rule: denying.name, message } : { action: 'ignore', rule: rules[0]!.name, message };
}
