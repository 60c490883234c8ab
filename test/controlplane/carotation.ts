// A cluster CA rotation on the test control plane, in the steps an operator takes (kubeadm's
// manual rotation): add CA2 beside CA1 in the API server's client CA and make the
// controller-manager sign with CA2; switch the API server's serving certificate to CA2; at the
// end drop CA1 from the client CA (the control plane's own client certificates re-issued from
// CA2 first). Each step restarts the component it changed, so that no test waits for a reload.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import type { ControlPlane } from './controlplane.js';

const run = promisify(execFile);

export class CaRotation {
  constructor(private readonly cp: ControlPlane) {}

  /** CA1 (the one the control plane started with) and CA2 (made by addCa). */
  get ca1(): string {
    return this.cp.pki('ca1.crt');
  }

  get ca2(): string {
    return this.cp.pki('ca2.crt');
  }

  /** Step 2: CA2 made; client CA = CA1+CA2; the signer is CA2; the harness trusts both. */
  async addCa(): Promise<void> {
    const pki = (f: string): string => this.cp.pki(f);
    await fs.copyFile(pki('ca.crt'), pki('ca1.crt'));
    await this.openssl('req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-sha256', '-days', '3650', '-keyout', 'ca2.key', '-out', 'ca2.crt', '-subj', '/CN=tlsboot-test-ca-2');
    const both = (await fs.readFile(pki('ca1.crt'), 'utf8')) + (await fs.readFile(pki('ca2.crt'), 'utf8'));
    await fs.writeFile(pki('client-ca.crt'), both);
    await fs.copyFile(pki('ca2.crt'), pki('signer.crt'));
    await fs.copyFile(pki('ca2.key'), pki('signer.key'));
    // ca.crt is what the harness's own kubeconfigs and readiness checks trust.
    await fs.writeFile(pki('ca.crt'), both);
    await this.cp.rewriteKubeconfigs();
    await this.cp.restartApiserver();
    await this.cp.restartControllerManager();
  }

  /** Step 3: the API server serves a certificate from CA2 (same names). */
  async switchServing(): Promise<void> {
    await this.issue('apiserver', '/CN=kube-apiserver', 'serverAuth',
      'IP:127.0.0.1,IP:::1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc');
    await this.cp.restartApiserver();
  }

  /** Step 5: the control plane's client certificates from CA2, then CA1 out of the client CA. */
  async dropOldClientCa(): Promise<void> {
    await this.issue('admin', '/O=system:masters/CN=kubernetes-admin', 'clientAuth');
    await this.issue('kcm', '/CN=system:kube-controller-manager', 'clientAuth');
    await this.cp.rewriteKubeconfigs();
    await fs.copyFile(this.ca2, this.cp.pki('client-ca.crt'));
    await this.cp.restartApiserver();
    await this.cp.restartControllerManager();
  }

  /** A leaf certificate from CA2, over the control plane's file of that name. */
  private async issue(name: string, subject: string, eku: string, san?: string): Promise<void> {
    const ext = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${eku}`];
    if (san) ext.push(`subjectAltName=${san}`);
    await fs.writeFile(this.cp.pki(`${name}.ext`), ext.join('\n') + '\n');
    await this.openssl('req', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    await this.openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca2.crt', '-CAkey', 'ca2.key', '-CAcreateserial', '-days', '365', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  }

  private async openssl(...args: string[]): Promise<void> {
    await run('openssl', args, { cwd: this.cp.pki('.') });
  }
}
