// The entry of the single executable (make package). Its bundle is built into a V8 start-up
// snapshot: the libraries below are loaded and evaluated on the build machine, so that a start
// deserialises them instead of compiling and running them (about 130 ms of the npm package's
// start). What touches node:http (undici, prom-client) cannot be in a snapshot and loads at run
// time, with the rest of tlsboot. No module may read the host, the environment or the clock when
// it loads, since in the executable that would be the build machine's.
import v8 from 'node:v8';
import { installLazySegmenter } from './base/segmenter.js';

function run(): void {
  // A single executable's argv is [executable, executable, ...arguments], like node's [node, script, ...].
  void import('./cli/start.js')
    .then(({ start }) => start(process.argv.slice(2)))
    .then((code) => process.exit(code));
}

if (v8.startupSnapshot.isBuildingSnapshot()) {
  installLazySegmenter();
  // The snapshot is taken once these have settled; a library that cannot be kept fails the build.
  void Promise.all([import('./pki/x509.js'), import('yaml'), import('chokidar'), import('yargs')]);
  v8.startupSnapshot.setDeserializeMainFunction(run);
} else {
  run();
}
