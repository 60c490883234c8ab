// The approval policy of `tlsboot approve`: which CSRs to approve, which to deny and why. A rule
// is in scope for a CSR when its signer matches and the requester (spec.username/spec.groups,
// set by the API server, not by the requester) is one it names. An in-scope CSR that meets every
// constraint of a rule is approved; one that meets none is denied with the reasons (or left
// pending, with onViolation: ignore); a CSR no rule is in scope for is left alone.
import { BlockList, isIP, SocketAddress } from 'node:net';
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
  /** Anchored; a DNS name may match it instead of a dnsNames glob. */
  dnsNameRegex?: RegExp;
  /** At most this many DNS and IP SANs together. */
  maxSubjectAltNames?: number;
  /** Every SAN must be among the requesting Node's status.addresses (kubelet-csr-approver's check). */
  nodeAddresses: boolean;
  maxExpirationSeconds?: number;
  onViolation: 'deny' | 'ignore';
}

/**
 * What the approver looked up for a decision: the addresses of the Node that asks (its
 * status.addresses), null when that Node does not exist. Only for rules with nodeAddresses.
 */
export interface PolicyFacts {
  nodeAddresses?: string[] | null;
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
const RULE_KEYS = new Set([
  'name', 'signerName', 'requesters', 'subject', 'usages', 'dnsNames', 'dnsNameRegex', 'ipAddresses', 'maxSubjectAltNames', 'nodeAddresses',
  'maxExpirationSeconds', 'onViolation',
]);
const NODE_USER = 'system:node:';

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

/** Whether a rule looks up Node objects (nodeAddresses): the approver then needs get on nodes. */
export function needsNodes(policy: Policy): boolean {
  return policy.rules.some((r) => r.nodeAddresses);
}

/** The Node whose addresses a decision on this CSR needs, if an in-scope rule checks them. */
export function nodeToLookUp(policy: Policy, csr: CsrObject): string | undefined {
  const username = csr.spec.username ?? '';
  if (!username.startsWith(NODE_USER) || !policy.rules.some((r) => r.nodeAddresses && inScope(r, csr))) return undefined;
  return username.slice(NODE_USER.length) || undefined;
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
  const maxSans = raw['maxSubjectAltNames'];
  if (maxSans !== undefined && (typeof maxSans !== 'number' || !Number.isInteger(maxSans) || maxSans < 0)) {
    throw new ConfigError(`${where}.maxSubjectAltNames must be a whole number (0 or more)`);
  }
  const nodeAddresses = raw['nodeAddresses'] ?? false;
  if (typeof nodeAddresses !== 'boolean') throw new ConfigError(`${where}.nodeAddresses must be true or false`);
  const onViolation = raw['onViolation'] ?? 'deny';
  if (onViolation !== 'deny' && onViolation !== 'ignore') throw new ConfigError(`${where}.onViolation must be deny or ignore`);
  const rule: PolicyRule = {
    name, signerName, users, groups, commonName, usages, ipAddresses, onViolation, nodeAddresses,
    organizations: stringList(subject['organizations'], `${where}.subject.organizations`) ?? [],
    dnsNames: stringList(raw['dnsNames'], `${where}.dnsNames`) ?? [],
  };
  if (max !== undefined) rule.maxExpirationSeconds = max;
  if (maxSans !== undefined) rule.maxSubjectAltNames = maxSans;
  if (raw['dnsNameRegex'] !== undefined) rule.dnsNameRegex = anchoredRegex(raw['dnsNameRegex'], `${where}.dnsNameRegex`);
  return rule;
}

/** A user's regular expression, matched against the whole name. */
function anchoredRegex(v: unknown, where: string): RegExp {
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${where} must be a regular expression, e.g. '^[a-z0-9-]+\\.nodes\\.example\\.com$'`);
  try {
    return new RegExp(`^(?:${v})$`);
  } catch (err) {
    throw new ConfigError(`${where} is not a valid regular expression: ${(err as Error).message}`);
  }
}

/**
 * `*` matches any run of characters; `${username}` stands for the requester's user name, taken
 * literally (so "${username}" pins a renewal to the identity that asks); `${nodeName}` for the
 * node's name when the requester is a node (system:node:<name>), and matches nothing otherwise.
 */
export function globMatch(pattern: string, value: string, username = ''): boolean {
  const node = username.startsWith(NODE_USER) ? escapeRegExp(username.slice(NODE_USER.length)) : '(?!)';
  const glob = (p: string): string => p.split('*').map(escapeRegExp).join('.*');
  const parts = pattern.split('${username}').map((p) => p.split('${nodeName}').map(glob).join(node));
  return new RegExp(`^${parts.join(escapeRegExp(username))}$`, 's').test(value);
}

function inScope(rule: PolicyRule, csr: CsrObject): boolean {
  const username = csr.spec.username ?? '';
  const groups = csr.spec.groups ?? [];
  return rule.signerName === csr.spec.signerName &&
    (rule.users.some((u) => globMatch(u, username)) || rule.groups.some((g) => groups.some((have) => globMatch(g, have))));
}

/** Everything about the request that the rule does not allow; empty when it may be approved. */
export function violations(rule: PolicyRule, csr: CsrObject, request: ParsedCsr | undefined, facts: PolicyFacts = {}): string[] {
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
    if (!rule.dnsNames.some((p) => globMatch(p, d, username)) && !rule.dnsNameRegex?.test(d)) {
      out.push(`DNS name ${JSON.stringify(d)} is not allowed${allowedList([...rule.dnsNames, ...(rule.dnsNameRegex ? [`/${rule.dnsNameRegex.source}/`] : [])])}`);
    }
  }
  const ips = blockList(rule.ipAddresses);
  for (const ip of request.ipAddresses) {
    if (!ips.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4')) out.push(`IP address ${ip} is not allowed${allowedList(rule.ipAddresses)}`);
  }
  for (const other of request.otherNames) out.push(`subject alternative name ${other} is not allowed (only DNS names and IP addresses can be)`);
  const sans = request.dnsNames.length + request.ipAddresses.length;
  if (rule.maxSubjectAltNames !== undefined && sans > rule.maxSubjectAltNames) out.push(`${sans} subject alternative names are more than ${rule.maxSubjectAltNames}`);
  if (rule.nodeAddresses) out.push(...nodeAddressViolations(username, [...request.dnsNames, ...request.ipAddresses], facts));
  const max = rule.maxExpirationSeconds;
  if (max !== undefined) {
    const asked = csr.spec.expirationSeconds;
    if (asked === undefined) out.push(`spec.expirationSeconds is not set; ask for at most ${max}`);
    else if (asked > max) out.push(`spec.expirationSeconds ${asked} is more than ${max}`);
  }
  return out;
}

/** Every SAN among the requesting Node's own addresses (status.addresses, any type). */
function nodeAddressViolations(username: string, sans: string[], facts: PolicyFacts): string[] {
  if (!username.startsWith(NODE_USER)) return [`the requester ${JSON.stringify(username)} is not a node (system:node:<name>), so its addresses cannot be checked`];
  const node = username.slice(NODE_USER.length);
  if (!facts.nodeAddresses) return [`Node ${JSON.stringify(node)} does not exist, so its addresses cannot be checked`];
  const have = new Set(facts.nodeAddresses.map(normalAddress));
  return sans.filter((s) => !have.has(normalAddress(s))).map((s) => `${s} is not among Node ${node}'s addresses (${facts.nodeAddresses!.join(', ') || 'none'})`);
}

/** DNS names compare without case; IPv6 addresses in one spelling. */
function normalAddress(a: string): string {
  return isIP(a) === 6 ? new SocketAddress({ address: a, family: 'ipv6' }).address : a.toLowerCase();
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
export function decide(policy: Policy, csr: CsrObject, request: ParsedCsr | undefined, facts: PolicyFacts = {}): Decision {
  const rules = policy.rules.filter((r) => inScope(r, csr));
  if (rules.length === 0) {
    return { action: 'ignore', rule: '', message: `no rule for signer ${csr.spec.signerName} and requester ${csr.spec.username ?? '?'}` };
  }
  const found: string[] = [];
  for (const rule of rules) {
    const v = violations(rule, csr, request, facts);
    if (v.length === 0) return { action: 'approve', rule: rule.name, message: `approved by tlsboot policy rule "${rule.name}"` };
    found.push(`rule "${rule.name}": ${v.join('; ')}`);
  }
  const denying = rules.find((r) => r.onViolation === 'deny');
  const message = `tlsboot policy: ${found.join(' | ')}`;
  return denying ? { action: 'deny', rule: denying.name, message } : { action: 'ignore', rule: rules[0]!.name, message };
}
