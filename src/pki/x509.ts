// The one door to @peculiar/x509: it needs reflect-metadata loaded first and a WebCrypto
// provider, and ESM evaluates imports in order, so everything imports it from here.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

// Node's global WebCrypto, typed by lib DOM as the Crypto the library expects.
x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
