// `make fuzz`: every fuzz target with FUZZ_RUNS inputs in all (default 120,000), a fresh seed
// unless FUZZ_SEED is given. Prints each target's count and time, and for a failure the seed
// and the shrunk input to replay it with. Exit 1 on any failure.
import { makeTargets } from './targets.js';

const total = Number(process.env['FUZZ_RUNS'] ?? 120_000);
const seed = Number(process.env['FUZZ_SEED'] ?? Date.now() % 2 ** 31);
const { targets, close } = await makeTargets();
const per = Math.ceil(total / targets.length);
console.log(`fuzz: ${targets.length} targets x ${per} inputs, seed ${seed} (replay: FUZZ_SEED=${seed} make fuzz)`);
let inputs = 0;
let failures = 0;
const started = Date.now();
for (const target of targets) {
  const t0 = Date.now();
  const outcome = await target.run(per, seed);
  inputs += outcome.numRuns;
  const took = ((Date.now() - t0) / 1000).toFixed(1);
  if (outcome.failed) {
    failures++;
    console.log(`  FAIL ${target.name}: after ${outcome.numRuns} inputs (${took} s), seed ${outcome.seed}\n${outcome.report.split('\n').map((l) => `    ${l}`).join('\n')}`);
  } else {
    console.log(`  ok   ${target.name}: ${outcome.numRuns} inputs in ${took} s`);
  }
}
await close();
console.log(`fuzz: ${inputs} inputs in ${((Date.now() - started) / 1000).toFixed(1)} s; ${failures} failing target(s); 0 untyped exceptions and 0 leaks unless listed above`);
console.log(`${targets.length - failures} passed, ${failures} failed`);
process.exit(failures > 0 ? 1 : 0);
