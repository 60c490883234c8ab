// Reading kubeconfig files (the subset a node agent needs) and rendering the one kubelet writes.
// Every malformed case is a ConfigError naming the file and the field.
import path from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { ConfigError } from '../base/errors.js';
import { readInputFile } from '../base/fsutil.js';
import { isDict, optBool, optString, parseYamlText, type Dict } from '../base/yamlfields.js';

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

export async function readKubeconfig(file: string): Promise<ClientConfig> {
  return parseKubeconfig(await readInputFile(file, { what: 'kubeconfig' }), file);
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
  return checkToken(await readInputFile(file, { setting: where }), `${where} (${file})`);
}

async function readPemFile(file: string, where: string, kind: string): Promise<string> {
  const text = await readInputFile(file, { setting: where });
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
  else if (input.caPem) cluster['certificate-authority-data'] = b64(input.caPem);
  if (input.insecureSkipTlsVerify) cluster['insecure-skip-tls-verify'] = true;
  if (input.tlsServerName) cluster['tls-server-name'] = input.tlsServerName;
  return render({ cluster: ['default-cluster', cluster], user: ['default-auth', { 'client-certificate': input.pemPath, 'client-key': input.pemPath }], context: 'default-context', namespace: 'default' });
}

/** A cluster to hand on: the server, its CA embedded, and the name to verify it by. */
export interface ClusterInput {
  server: string;
  caPem: string;
  tlsServerName?: string;
}

/** The kubeconfig a node bootstraps with: server, the CA embedded, the token (unless it is kept apart). */
export function renderBootstrapKubeconfig(input: ClusterInput & { token?: string }): string {
  return render({ cluster: ['cluster', embedded(input)], user: ['tls-bootstrap', input.token ? { token: input.token } : {}], context: 'tls-bootstrap' });
}

/** A self-contained kubeconfig for a client certificate (CA, certificate and key embedded). */
export function renderClientKubeconfig(input: ClusterInput & { user: string; certPem: string; keyPem: string }): string {
  const credentials = { 'client-certificate-data': b64(input.certPem), 'client-key-data': b64(input.keyPem) };
  return render({ cluster: ['cluster', embedded(input)], user: [input.user, credentials], context: input.user });
}

/**
 * A kubeconfig whose user runs an exec credential plugin (client.authentication.k8s.io/v1):
 * client-go and kubectl ask `command args...` for the credential whenever the last one expires.
 */
export function renderExecKubeconfig(input: ClusterInput & { user: string; command: string; args: string[] }): string {
  const exec = { apiVersion: 'client.authentication.k8s.io/v1', command: input.command, args: input.args, interactiveMode: 'Never', provideClusterInfo: false };
  return render({ cluster: ['cluster', embedded(input)], user: [input.user, { exec }], context: input.user });
}

function embedded(input: ClusterInput): Dict {
  const cluster: Dict = { server: input.server, 'certificate-authority-data': b64(input.caPem) };
  if (input.tlsServerName) cluster['tls-server-name'] = input.tlsServerName;
  return cluster;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** One cluster, one user, one context that joins them, and that context current. */
function render(c: { cluster: [string, Dict]; user: [string, Dict]; context: string; namespace?: string }): string {
  const context: Dict = { cluster: c.cluster[0], user: c.user[0] };
  if (c.namespace) context['namespace'] = c.namespace;
  return stringifyYaml({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: c.cluster[0], cluster: c.cluster[1] }],
    users: [{ name: c.user[0], user: c.user[1] }],
    contexts: [{ name: c.context, context }],
    'current-context': c.context,
  }, { lineWidth: 0 });
}
