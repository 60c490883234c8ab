// Private keys: generation, PEM encoding the way kubelet writes them, loading.
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { PrivateKeyError } from '../base/errors.js';

export const KEY_ALGORITHMS = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'ed25519'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

export interface KeyPair {
  algorithm: KeyAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

const generate = promisify(generateKeyPair);

export async function generateKey(algorithm: KeyAlgorithm): Promise<KeyPair> {
  switch (algorithm) {
    case 'ecdsa-p256':
    case 'ecdsa-p384': {
      const namedCurve = algorithm === 'ecdsa-p256' ? 'P-256' : 'P-384';
      const { privateKey, publicKey } = await generate('ec', { namedCurve });
      return { algorithm, privateKey, publicKey };
    }
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096': {
      const modulusLength = Number(algorithm.slice(4));
      const { privateKey, publicKey } = await generate('rsa', { modulusLength, publicExponent: 65537 });
      return { algorithm, privateKey, publicKey };
    }
    case 'ed25519': {
      const { privateKey, publicKey } = await generate('ed25519');
      return { algorithm, privateKey, publicKey };
    }
  }
}

/** PEM as kubelet's keyutil writes it: SEC1 for EC, PKCS#1 for RSA; PKCS#8 for Ed25519. */
export function privateKeyPem(pair: KeyPair): string {
  const type = pair.algorithm.startsWith('ecdsa') ? 'sec1' : pair.algorithm.startsWith('rsa') ? 'pkcs1' : 'pkcs8';
  return pair.privateKey.export({ format: 'pem', type }).toString();
}

export function spkiDer(pair: KeyPair): Buffer {
  return pair.publicKey.export({ format: 'der', type: 'spki' });
}

export function isRsa(pair: KeyPair): boolean {
  return pair.algorithm.startsWith('rsa');
}

/** Parse a private key PEM (any of SEC1, PKCS#1, PKCS#8). `where` names the source for errors. */
export function loadPrivateKey(pem: string, where: string): KeyPair {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new PrivateKeyError(`${where}: not a readable private key; remove it to have a new one generated`);
  }
  const algorithm = algorithmOf(privateKey);
  if (!algorithm) {
    throw new PrivateKeyError(`${where}: unsupported key type (${privateKey.asymmetricKeyType}); supported: ${KEY_ALGORITHMS.join(', ')}`);
  }
  return { algorithm, privateKey, publicKey: createPublicKey(privateKey) };
}

function algorithmOf(key: KeyObject): KeyAlgorithm | undefined {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (details.namedCurve === 'prime256v1') return 'ecdsa-p256';
      if (details.namedCurve === 'secp384r1') return 'ecdsa-p384';
      return undefined;
    case 'rsa': {
      const bits = details.modulusLength ?? 0;
      if (bits >= 4096) return 'rsa-4096';
      if (bits >= 3072) return 'rsa-3072';
      if (bits >= 2048) return 'rsa-2048';
      return undefined;
    }
    case 'ed25519':
      return 'ed25519';
    default:
      return undefined;
  }
}
