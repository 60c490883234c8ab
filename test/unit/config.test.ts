import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadConfig, parseConfig } from '../../src/daemon/config.js';
import { ConfigError } from '../../src/base/errors.js';
import { tempDir } from '../support/helpers.js';

const FILE = '/etc/tlsboot/config.yaml';

t.test('the documented example parses, with kubelet defaults where silent', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'config.yaml');
  await fs.writeFile(file, `identities:
  - name: haproxy
    bootstrapKubeconfig: /etc/tlsboot/bootstrap.kubeconfig
    kubeconfig: /var/lib/tlsboot/haproxy/kubeconfig
    certDir: /var/lib/tlsboot/haproxy
    filePrefix: haproxy-client
    nodeName: lb1
    subject: { commonName: "system:node:lb1", organizations: ["system:nodes"] }
    signerName: kubernetes.io/kube-apiserver-client-kubelet
    outputs:
      - { type: combined, path: /etc/haproxy/certs/apiserver-client.pem, owner: root, group: haproxy, mode: "0640" }
      - { type: ca, path: /etc/haproxy/certs/apiserver-ca.pem, mode: "0644" }
    hooks:
      - { reloadUnit: haproxy.service }
      - { exec: ["/usr/local/bin/after-rotate", "haproxy"], timeoutSeconds: 30 }
  - name: kubelet
    kubeconfig: kubelet.conf
    bootstrapTokenFile: \${CREDENTIALS_DIRECTORY}/bootstrap-token
    nodeName: node-7
    rotationFraction: 0.5
    approvalTimeout: 1h
    keyAlgorithm: rsa-2048
    hooks:
      - { pidFile: /run/x.pid, signal: SIGUSR2 }
metrics: { address: "127.0.0.1:9717" }
`);
  const cfg = await loadConfig(file, { CREDENTIALS_DIRECTORY: '/run/credentials/tlsboot.service' });
  t.equal(cfg.file, file);
  t.same(cfg.metrics, { address: '127.0.0.1:9717' });
  const [h, k] = cfg.identities;
  t.equal(h?.identity.filePrefix, 'haproxy-client');
  t.same(h?.identity.subject, { commonName: 'system:node:lb1', organizations: ['system:nodes'] });
  t.same(h?.outputs, [
    { type: 'combined', path: '/etc/haproxy/certs/apiserver-client.pem', owner: 'root', group: 'haproxy', mode: 0o640 },
    { type: 'ca', path: '/etc/haproxy/certs/apiserver-ca.pem', mode: 0o644 },
  ]);
  t.same(h?.hooks, [{ kind: 'reloadUnit', unit: 'haproxy.service' }, { kind: 'exec', argv: ['/usr/local/bin/after-rotate', 'haproxy'], timeoutMs: 30_000 }]);
  t.equal(h?.approvalTimeoutMs, 900_000);
  t.equal(k?.kubeconfig, path.join(dir, 'kubelet.conf'), 'relative to the config file');
  t.equal(k?.certDir, '/var/lib/tlsboot/kubelet');
  t.equal(k?.identity.filePrefix, 'kubelet-client');
  t.equal(k?.identity.subject.commonName, 'system:node:node-7');
  t.equal(k?.bootstrapTokenFile, '/run/credentials/tlsboot.service/bootstrap-token');
  t.equal(k?.rotationFraction, 0.5);
  t.equal(k?.approvalTimeoutMs, 3_600_000);
  t.equal(k?.identity.keyAlgorithm, 'rsa-2048');
  t.same(k?.hooks, [{ kind: 'signal', pidFile: '/run/x.pid', signal: 'SIGUSR2' }]);
});

const id = (extra: string): string => `identities:\n  - name: lb\n    kubeconfig: /k\n${extra}`;
const bad: Array<[string, string, RegExp]> = [
  ['empty', '', /the config file must be a mapping/],
  ['no identities', 'metrics: {}\n', /identities must be a non-empty list/],
  ['unknown top key', 'identities: []\nfoo: 1\n', /unknown key "foo"/],
  ['unknown identity key', id('    colour: blue\n'), /identities\[0\] \(lb\): unknown key "colour"/],
  ['no name', 'identities:\n  - kubeconfig: /k\n', /identities\[0\]\.name is required/],
  ['no kubeconfig', 'identities:\n  - name: lb\n', /identities\[0\] \(lb\)\.kubeconfig is required/],
  ['duplicate name', 'identities:\n  - {name: a, kubeconfig: /k}\n  - {name: a, kubeconfig: /j}\n', /the name "a" is used twice/],
  ['shared files', 'identities:\n  - {name: a, kubeconfig: /k, certDir: /d}\n  - {name: b, kubeconfig: /j, certDir: /d}\n', /identities a and b would share \/d\/kubelet-client-current.pem/],
  ['bad mode', id('    outputs: [{type: cert, path: /x, mode: 640}]\n'), /identities\[0\] \(lb\)\.outputs\[0\]\.mode must be an octal string like "0640"/],
  ['bad output type', id('    outputs: [{type: pfx, path: /x}]\n'), /outputs\[0\]\.type must be one of cert, key, ca, combined/],
  ['output twice', id('    outputs: [{type: cert, path: /x}, {type: key, path: /x}]\n'), /outputs\[1\]\.path \/x is listed twice/],
  ['unknown output key', id('    outputs: [{type: cert, path: /x, chmod: "0600"}]\n'), /outputs\[0\]: unknown key "chmod"/],
  ['exec as a string', id('    hooks: [{exec: "systemctl reload haproxy"}]\n'), /hooks\[0\]\.exec must be a non-empty list: the program and its arguments \(no shell\)/],
  ['bad unit', id('    hooks: [{reloadUnit: "haproxy"}]\n'), /hooks\[0\]\.reloadUnit must be a unit name like haproxy.service/],
  ['bad signal', id('    hooks: [{pidFile: /p, signal: SIGNOPE}]\n'), /hooks\[0\]\.signal must be a signal name/],
  ['empty hook', id('    hooks: [{}]\n'), /hooks\[0\] must have exec, reloadUnit or pidFile/],
  ['bad fraction', id('    rotationFraction: 1.5\n'), /rotationFraction must be between 0 and 1/],
  ['bad key', id('    keyAlgorithm: dsa\n'), /keyAlgorithm must be one of ecdsa-p256/],
  ['bad expiration', id('    expirationSeconds: 60\n'), /identities\[0\] \(lb\): expirationSeconds must be a whole number of at least 600/],
  ['bad duration', id('    approvalTimeout: soon\n'), /approvalTimeout "soon" is not a duration/],
  ['unset variable', id('    bootstrapTokenFile: ${CREDENTIALS_DIRECTORY}/t\n'), /bootstrapTokenFile uses \$\{CREDENTIALS_DIRECTORY\}, which is not set/],
  ['bad metrics', 'identities: [{name: a, kubeconfig: /k}]\nmetrics: {address: "everywhere"}\n', /metrics\.address must be host:port/],
];
for (const [name, text, re] of bad) {
  t.test(`invalid: ${name}`, async (t) => {
    const { parse } = await import('yaml');
    const err = (() => {
      try {
        parseConfig(parse(text), FILE, {});
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.ok(err instanceof ConfigError, 'a ConfigError');
    t.match((err as Error).message, re);
    t.ok((err as Error).message.startsWith(FILE), 'names the file');
  });
}

t.test('missing and unparsable files', async (t) => {
  await t.rejects(loadConfig('/nonexistent/config.yaml'), { message: '/nonexistent/config.yaml: config file not found' });
  const dir = await tempDir(t);
  await fs.writeFile(path.join(dir, 'c.yaml'), 'identities: [\n');
  await t.rejects(loadConfig(path.join(dir, 'c.yaml')), { message: /c.yaml: not valid YAML/ });
});

t.test('the serving preset: kubelet\'s serving identity, SANs given or the host\'s, no conflicting overrides', async (t) => {
  const { servingOverrides, hostAddresses, buildIdentity } = await import('../../src/node/identity.js');
  const nic = (address: string, internal = false): import('node:os').NetworkInterfaceInfo =>
    address.includes(':')
      ? { address, internal, family: 'IPv6', scopeid: 0, netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', cidr: null }
      : { address, internal, family: 'IPv4', netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: null };
  const host = {
    name: 'SRV1.example.test',
    interfaces: { lo: [nic('127.0.0.1', true), nic('::1', true)], eth0: [nic('10.0.0.21'), nic('fe80::1'), nic('fd00::21')], eth1: [nic('10.0.0.21')] },
  };
  const id = buildIdentity('srv1', servingOverrides('srv1', {}, host));
  t.same(id.subject, { commonName: 'system:node:srv1', organizations: ['system:nodes'] });
  t.equal(id.signerName, 'kubernetes.io/kubelet-serving');
  t.equal(id.filePrefix, 'kubelet-server');
  t.same(id.dnsNames, ['srv1', 'srv1.example.test'], 'the node and host names');
  t.same(id.ipAddresses, ['10.0.0.21', 'fd00::21'], 'no loopback, no link-local, no repeats');
  t.same(hostAddresses({}), []);
  const given = buildIdentity('srv1', servingOverrides('srv1', { dnsNames: ['srv1.nodes.example.test'] }, host));
  t.same([given.dnsNames, given.ipAddresses], [['srv1.nodes.example.test'], []], 'given SANs replace the defaults');
  t.throws(() => servingOverrides('srv1', { signerName: 'example.com/x' }), /--signer-name cannot be combined with --serving/);

  const cfg = parseConfig({ identities: [{ name: 's', serving: true, kubeconfig: '/k', certDir: '/p', nodeName: 'n1', ipAddresses: ['10.0.0.1'] }] }, FILE);
  t.equal(cfg.identities[0]!.serving, true);
  t.equal(cfg.identities[0]!.identity.subject.commonName, 'system:node:n1');
  t.throws(() => parseConfig({ identities: [{ name: 's', serving: true, kubeconfig: '/k', bootstrapKubeconfig: '/b' }] }, FILE), /identities\[0\] \(s\).serving: a serving certificate is requested with kubeconfig/);
  t.throws(() => parseConfig({ identities: [{ name: 's', serving: true, kubeconfig: '/k', signerName: 'example.com/x' }] }, FILE), /identities\[0\] \(s\): signerName cannot be combined with serving/);
  t.throws(() => parseConfig({ identities: [{ name: 's', serving: 'yes', kubeconfig: '/k' }] }, FILE), /serving must be true or false/);
});
