// One measured phase of the benchmark, in its own process so that peak RSS belongs to it alone.
// Usage: node bench/child.mjs floor|job ROOT DATE ASOF [WORKERS]
import { performance } from 'node:perf_hooks';
import { labelType, predictionType, enrichedType } from '../dist/src/avro/schemas.js';
import { decodeContainer } from '../dist/src/avro/container-reader.js';
import { AvroFilesWriter } from '../dist/src/dataset/avro-writer.js';
import { openStore, destroyStores } from '../dist/src/storage/index.js';
import { main } from '../dist/jobs/main.js';
import { tuneHeap } from '../dist/src/heap-tuning.js';

const [phase, root, date, asOf, workers] = process.argv.slice(2);
// The job runs with the CLI's heap setting (bin/model-metrics.js); the floor with V8's default.
if (phase === 'job') tuneHeap();
const started = performance.now();
const cpuSeconds = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
// The floor's CPU excludes decoding the job's curated output (the records to re-encode), measured apart.
let untimedCpu = 0;
const floorCpu = () => cpuSeconds() - untimedCpu;
let records = 0;

if (phase === 'floor') {
  // The floor: decode the same input files, and encode the same output — the curated records the
  // job wrote (decoded from its output untimed, since a floor has no join to produce them).
  const predictions = openStore(`${root}/predictions`, {}, '--predictions');
  const labels = openStore(`${root}/labels`, {}, '--labels');
  const curated = openStore(`${root}/curated`, {}, '--curated');
  const out = openStore(`${root}/floor`, {}, '--curated');
  for (const info of await labels.list('')) {
    if (!info.key.endsWith('.avro')) continue;
    for await (const block of decodeContainer(await labels.read(info.key), { uri: labels.uriOf(info.key), readerType: labelType })) records += block.length;
  }
  for (const info of await predictions.list(`dt=${date}/`)) {
    if (!info.key.endsWith('.avro')) continue;
    for await (const block of decodeContainer(await predictions.read(info.key), { uri: predictions.uriOf(info.key), readerType: predictionType })) records += block.length;
  }
  const decodeSeconds = (performance.now() - started) / 1000;
  let encodeMs = 0;
  const writer = new AvroFilesWriter(out, { type: enrichedType, codec: 'deflate', keyOf: (i) => `part-${i}.avro`, metadata: {}, maxPartBytes: 128 * 1024 * 1024 });
  const parts = (await curated.list(`stage=final/dt=${date}/`)).filter((info) => info.key.endsWith('.avro'));
  if (parts.length === 0) throw new Error('bench floor: run the job phase first, the floor re-encodes its curated output');
  for (const info of parts) {
    const blocks = decodeContainer(await curated.read(info.key), { uri: curated.uriOf(info.key), readerType: enrichedType });
    for (;;) {
      const c0 = cpuSeconds();
      const next = await blocks.next();
      untimedCpu += cpuSeconds() - c0;
      if (next.done) break;
      const block = next.value;
      const t0 = performance.now();
      for (const record of block) {
        const flushed = writer.append(record);
        if (flushed !== undefined) await flushed;
      }
      encodeMs += performance.now() - t0;
    }
  }
  const t0 = performance.now();
  await writer.finish();
  encodeMs += performance.now() - t0;
  destroyStores();
  process.stdout.write(`${JSON.stringify({ phase, seconds: decodeSeconds + encodeMs / 1000, decodeSeconds, encodeSeconds: encodeMs / 1000, cpuSeconds: floorCpu(), records, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);
  process.exit(0);
} else {
  const lines = [];
  const code = await main(['run', '--root', root, '--date', date, '--stage', 'final', '--as-of', asOf, '--force', '--json', '--log-level', 'warn', ...(workers === undefined ? [] : ['--workers', workers])], { stdout: (t) => lines.push(t), env: {} });
  if (code !== 0) {
    process.stderr.write(lines.join(''));
    process.exit(code);
  }
  const result = JSON.parse(lines.join(''));
  records = result.predictions_read;
}
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ phase, seconds, cpuSeconds: cpuSeconds(), records, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);
