// The certificates.k8s.io/v1 objects tlsboot reads and writes, and the approval condition that
// kubectl certificate approve|deny writes.

export interface CsrCondition {
  type: string;
  status?: string;
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
  lastTransitionTime?: string;
}

export interface CsrObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    generateName?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
  };
  spec: {
    request: string;
    signerName: string;
    usages: string[];
    expirationSeconds?: number;
    username?: string;
    groups?: string[];
  };
  status?: {
    conditions?: CsrCondition[];
    certificate?: string;
  };
}

export interface StatusObject {
  kind: 'Status';
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export type WatchEvent =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: CsrObject }
  | { type: 'ERROR'; object: StatusObject };

export interface ResourceAttributes {
  group: string;
  resource: string;
  verb: string;
  subresource?: string;
  name?: string;
}

export interface CsrList {
  items: CsrObject[];
  resourceVersion: string;
}

/** The CSR as read plus an Approved or Denied condition, as kubectl certificate approve|deny writes it. */
export function withDecision(csr: CsrObject, type: 'Approved' | 'Denied', reason: string, message: string): CsrObject {
  const condition: CsrCondition = { type, status: 'True', reason, message, lastUpdateTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
  return { ...csr, status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] } };
}
