// The one door to @peculiar/x509: it needs reflect-metadata loaded first and a WebCrypto
// provider, and ESM evaluates imports in order, so everything imports it from here.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
