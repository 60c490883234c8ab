// CI's share of the fuzzing: a few thousand mutated inputs, with a fixed seed so that a red run
// is the same run on every machine. `make fuzz` runs 100,000 and more with fresh seeds.
import t from 'tap';
import { makeTargets } from './targets.js';

const RUNS = Number(process.env['TLSBOOT_FUZZ_RUNS'] ?? 500);
const SEED = 20261201;
const { targets, close } = await makeTargets();
t.teardown(close);

for (const target of targets) {
  t.test(`fuzz: ${target.name} (${RUNS} inputs, seed ${SEED})`, async (t) => {
    const outcome = await target.run(RUNS, SEED);
    t.notOk(outcome.failed, outcome.report || 'only typed errors, no secret printed, each case in time');
    t.equal(outcome.numRuns, RUNS);
  });
}
