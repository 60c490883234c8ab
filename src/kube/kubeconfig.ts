// Reading kubeconfig files (the subset a node agent needs) and rendering the one kubelet writes.
// Every malformed case is a ConfigError naming the file and the field.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { ConfigError } from '../base/errors.js';
import { isNotFound } from '../base/fsutil.js';
import { parseYamlText } from '../base/yamlfields.js';

export interface ClientCertificate {
  certPem: string;
  keyPem: string;
  /** File paths when the kubeconfig named files rather than embedding data. */
  certPath?: string;
  keyPath?: string;
}

export interface ClientConfig {
  /** The kubeconfig file this came from, for messages. */
  file: string;
  server: string;
  caPem?: string;
  /** Absolute path of the CA file, when the kubeconfig named one (kubelet keeps it as a path). */
  caPath?: string;
  insecureSkipTlsVerify: boolean;
  tlsServerName?: string;
  token?: string;
  tokenFile?: string;
  clientCertificate?: ClientCertificate;
}

type Dict = Record<string, unknown>;

export async function readKubeconfig(file: string): Promise<ClientConfig> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if (isNotFound(err)) throw new ConfigError(`${file}: kubeconfig not found`);
    throw new ConfigError(`${file}: cannot read kubeconfig: ${(err as Error).message}`);
  }
  return parseKubeconfig(text, file);
}

export async function parseKubeconfig(text: string, file: string): Promise<ClientConfig> {
  const doc = parseYamlText(text, file);
  if (!isDict(doc)) throw new ConfigError(`${file}: not a kubeconfig (expected a mapping with clusters, users, contexts)`);
  const dir = path.dirname(path.resolve(file));
  const field = (name: string): string => `${file}: ${name}`;

  const contextName = doc['current-context'];
  if (typeof contextName !== 'string' || contextName === '') {
    throw new ConfigError(`${field('current-context')} is missing; set it to one of the contexts`);
  }
  const context = findNamed(doc, 'contexts', 'context', contextName, file);
  const clusterName = context['cluster'];
  const userName = context['user'];
  if (typeof clusterName !== 'string' || clusterName === '') {
    throw new ConfigError(`${field(`contexts[${contextName}].context.cluster`)} is missing`);
  }
  const cluster = findNamed(doc, 'clusters', 'cluster', clusterName, file);
  const user = typeof userName === 'string' && userName !== '' ? findNamed(doc, 'users', 'user', userName, file) : {};
  const clusterField = (k: string): string => field(`clusters[${clusterName}].cluster.${k}`);
  const userField = (k: string): string => field(`users[${String(userName)}].user.${k}`);

  const server = optString(cluster, 'server', clusterField);
  if (!server) throw new ConfigError(`${clusterField('server')} is missing; set it to the API server URL`);
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ConfigError(`${clusterField('server')} is not a URL: ${JSON.stringify(server)}`);
  }
  if (url.protocol !== 'https:') {
    throw new ConfigError(`${clusterField('server')} must be an https:// URL, got ${url.protocol}//`);
  }

  const config: ClientConfig = {
    file,
    server: server.replace(/\/+$/, ''),
    insecureSkipTlsVerify: optBool(cluster, 'insecure-skip-tls-verify', clusterField) ?? false,
  };
  const tlsServerName = optString(cluster, 'tls-server-name', clusterField);
  if (tlsServerName) config.tlsServerName = tlsServerName;

  const caData = optString(cluster, 'certificate-authority-data', clusterField);
  const caFile = optString(cluster, 'certificate-authority', clusterField);
  if (caData) {
    config.caPem = decodePemData(caData, clusterField('certificate-authority-data'), 'CERTIFICATE');
  } else if (caFile) {
    config.caPath = path.resolve(dir, caFile);
    config.caPem = await readPemFile(config.caPath, clusterField('certificate-authority'), 'CERTIFICATE');
  }

  for (const unsupported of ['exec', 'auth-provider', 'username', 'password']) {
    if (user[unsupported] !== undefined) {
      throw new ConfigError(`${userField(unsupported)} is not supported by tlsboot; use a token, tokenFile or client certificate`);
    }
  }
  const token = optString(user, 'token', userField);
  const tokenFile = optString(user, 'tokenFile', userField);
  if (token) {
    config.token = checkToken(token, userField('token'));
  } else if (tokenFile) {
    config.tokenFile = path.resolve(dir, tokenFile);
    config.token = await readTokenFile(config.tokenFile, userField('tokenFile'));
  }

  const certData = optString(user, 'client-certificate-data', userField);
  const keyData = optString(user, 'client-key-data', userField);
  const certFile = optString(user, 'client-certificate', userField);
  const keyFile = optString(user, 'client-key', userField);
  const hasCert = Boolean(certData || certFile);
  const hasKey = Boolean(keyData || keyFile);
  if (hasCert !== hasKey) {
    const missing = hasCert ? 'client-key or client-key-data' : 'client-certificate or client-certificate-data';
    throw new ConfigError(`${userField(missing)} is missing; a client certificate needs both certificate and key`);
  }
  if (hasCert) {
    const cc: ClientCertificate = { certPem: '', keyPem: '' };
    if (certData) {
      cc.certPem = decodePemData(certData, userField('client-certificate-data'), 'CERTIFICATE');
    } else {
      cc.certPath = path.resolve(dir, certFile!);
      cc.certPem = await readPemFile(cc.certPath, userField('client-certificate'), 'CERTIFICATE');
    }
    if (keyData) {
      cc.keyPem = decodePemData(keyData, userField('client-key-data'), 'PRIVATE KEY');
    } else {
      cc.keyPath = path.resolve(dir, keyFile!);
      cc.keyPem = await readPemFile(cc.keyPath, userField('client-key'), 'PRIVATE KEY');
    }
    config.clientCertificate = cc;
  }
  return config;
}

/**
 * A bearer token goes into an HTTP header as it is: only visible ASCII may be in it. Anything
 * else is a broken file (a pasted line break, a stray control character), not a network error,
 * and the message must not quote the token.
 */
export function checkToken(token: string, where: string): string {
  const t = token.trim();
  if (!/^[\x21-\x7e]+$/.test(t)) throw new ConfigError(`${where} is empty, or holds white space or control characters; put the token alone on one line`);
  return t;
}

async function readTokenFile(file: string, where: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${where}: cannot read ${file}: ${isNotFound(err) ? 'no such file' : (err as Error).message}`);
  }
  return checkToken(text, `${where} (${file})`);
}

async function readPemFile(file: string, where: string, kind: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${where}: cannot read ${file}: ${isNotFound(err) ? 'no such file' : (err as Error).message}`);
  }
  if (!text.includes(`${kind}-----`)) throw new ConfigError(`${where}: ${file} holds no PEM ${kind}`);
  return text;
}

function decodePemData(data: string, where: string, kind: string): string {
  const compact = data.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) throw new ConfigError(`${where} is not valid base64`);
  const text = Buffer.from(compact, 'base64').toString('utf8');
  if (!text.includes(`${kind}-----`)) throw new ConfigError(`${where} does not decode to a PEM ${kind}`);
  return text;
}

function findNamed(doc: Dict, listKey: string, itemKey: string, name: string, file: string): Dict {
  const list = doc[listKey];
  if (!Array.isArray(list)) throw new ConfigError(`${file}: ${listKey} is missing or not a list`);
  for (const entry of list) {
    if (isDict(entry) && entry['name'] === name) {
      const body = entry[itemKey];
      if (!isDict(body)) throw new ConfigError(`${file}: ${listKey}[${name}].${itemKey} is missing or not a mapping`);
      return body;
    }
  }
  throw new ConfigError(`${file}: ${listKey} has no entry named ${JSON.stringify(name)}`);
}

function optString(d: Dict, key: string, where: (k: string) => string): string | undefined {
  const v = d[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ConfigError(`${where(key)} must be a string`);
  return v;
}

function optBool(d: Dict, key: string, where: (k: string) => string): boolean | undefined {
  const v = d[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new ConfigError(`${where(key)} must be true or false`);
  return v;
}

function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface NodeKubeconfigInput {
  server: string;
  caPem?: string;
  caPath?: string;
  insecureSkipTlsVerify: boolean;
  tlsServerName?: string;
  /** The -current.pem symlink; both client-certificate and client-key point at it. */
  pemPath: string;
}

/**
 * The kubeconfig kubelet writes after bootstrap (writeKubeconfigFromBootstrapping): the names
 * default-cluster/default-auth/default-context, the CA as a path when the bootstrap kubeconfig
 * used one. Unlike kubelet we carry tls-server-name over: without it a server addressed by IP
 * with a DNS-only serving cert would stop verifying after bootstrap.
 */
export function renderNodeKubeconfig(input: NodeKubeconfigInput): string {
  const cluster: Dict = { server: input.server };
  if (input.caPath) cluster['certificate-authority'] = input.caPath;
  else if (input.caPem) cluster['certificate-authority-data'] = Buffer.from(input.caPem).toString('base64');
  if (input.insecureSkipTlsVerify) cluster['insecure-skip-tls-verify'] = true;
  if (input.tlsServerName) cluster['tls-server-name'] = input.tlsServerName;
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'default-cluster', cluster }],
    users: [{ name: 'default-auth', user: { 'client-certificate': input.pemPath, 'client-key': input.pemPath } }],
    contexts: [{ name: 'default-context', context: { cluster: 'default-cluster', user: 'default-auth', namespace: 'default' } }],
    'current-context': 'default-context',
  };
  return stringifyYaml(doc, { lineWidth: 0 });
}
