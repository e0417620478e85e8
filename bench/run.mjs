// `npm run bench [-- --predictions N] [-- --rounds R] [-- --workers N]`: generates a day of N predictions (default
// 1,000,000) and their labels locally, then measures the final stage against a floor measured in
// the same run: decoding the same input files and encoding the same output (the curated records
// the job wrote) with no join. Prints records/s, peak
// RSS and the job/floor ratio. Each phase runs in its own process, twice, alternating; best of two.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSample } from '../dist/src/demo/generate.js';
import { openStore, destroyStores } from '../dist/src/storage/index.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const predictions = Number(flag('predictions', '1000000'));
const rounds = Number(flag('rounds', '2'));
// The job's --workers (default: the job's own default, the cores available).
const workers = flag('workers', undefined);
const root = join(process.cwd(), 'bench', 'out', `day-${predictions}`);
const date = '2026-03-02';
const asOf = '2026-04-01T00:00:00Z';

if (!existsSync(join(root, 'predictions'))) {
  mkdirSync(root, { recursive: true });
  const started = Date.now();
  const summary = await generateSample(openStore(`${root}/predictions`, {}, '--predictions'), openStore(`${root}/labels`, {}, '--labels'), { from: date, days: 1, predictionsPerDay: predictions, filesPerDay: 24 });
  destroyStores();
  console.log(`generated ${summary.predictions} predictions, ${summary.labels} labels in ${((Date.now() - started) / 1000).toFixed(1)} s under ${root}`);
}

const runPhase = (phase) => JSON.parse(execFileSync(process.execPath, ['--max-semi-space-size=64', 'bench/child.mjs', phase, root, date, asOf, ...(phase === 'job' && workers !== undefined ? [workers] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
const best = { floor: undefined, job: undefined };
for (let round = 0; round < rounds; round++) {
  for (const phase of ['job', 'floor']) {
    const result = runPhase(phase);
    console.log(`${phase.padEnd(5)} round ${round + 1}: ${result.seconds.toFixed(2)} s wall, ${result.cpuSeconds.toFixed(2)} s CPU, ${result.records} records, peak RSS ${(result.maxRssBytes / 2 ** 20).toFixed(0)} MiB`);
    if (best[phase] === undefined || result.seconds < best[phase].seconds) best[phase] = result;
  }
}
rmSync(join(root, 'floor'), { recursive: true, force: true });
const { floor, job } = best;
console.log('');
console.log(`predictions:      ${predictions.toLocaleString('en-US')}`);
console.log(`job (final):      ${job.seconds.toFixed(2)} s wall, ${job.cpuSeconds.toFixed(2)} s CPU, ${Math.round(predictions / job.seconds).toLocaleString('en-US')} predictions/s, peak RSS ${(job.maxRssBytes / 2 ** 20).toFixed(0)} MiB`);
console.log(`floor:            ${floor.seconds.toFixed(2)} s wall, ${floor.cpuSeconds.toFixed(2)} s CPU (decode inputs ${floor.decodeSeconds.toFixed(2)} s + encode the same curated output ${floor.encodeSeconds.toFixed(2)} s, no join)`);
console.log(`job / floor:      ${(job.seconds / floor.seconds).toFixed(2)}x wall (target <= 1.5x), ${(job.cpuSeconds / floor.cpuSeconds).toFixed(2)}x CPU (user + system, all threads)`);
console.log(`peak RSS target:  ${job.maxRssBytes < 2 ** 30 ? 'met' : 'MISSED'} (< 1 GiB)`);

// Decode throughput per input codec (records/s and MB/s against deflate), in its own process.
console.log('');
execFileSync(process.execPath, ['bench/codecs.mjs'], { stdio: 'inherit' });
