// `npm run bench:codecs [-- --records N] [-- --rounds R]`: decode throughput of each Avro codec
// (issue 3). Writes one PredictionEvent file of N records (default 200,000; the job's 256 KiB blocks)
// per codec in memory, then times reading it back with the job's reader (dist/, so build first):
// records/s, MB/s of uncompressed record bytes, the share of that time spent decompressing, and
// the speed relative to deflate, the default codec. Best of R rounds (default 5, codecs interleaved)
// after a warm-up, by CPU time, so that other work on a shared machine does not skew the comparison.
// bzip2 and xz files are compressed by the Debian `bzip2` and `xz` programs (the job only reads
// them); a codec whose program is missing is left out, and the table says so.
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import avro from 'avsc';
import { codecFor, readableCodecs, writableCodecs } from '../dist/src/avro/codecs.js';
import { decodeContainer } from '../dist/src/avro/container-reader.js';
import { ContainerEncoder } from '../dist/src/avro/container-writer.js';
import { predictionType } from '../dist/src/avro/schemas.js';
import { seededRandom } from '../dist/src/demo/generate.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const recordCount = flag('records', 200_000);
const rounds = flag('rounds', 5);

// Records shaped like the demo's: a few models and versions, three segment keys, half labelled
// inline. Fields this bench does not know (a newer schema version) take their defaults.
const random = seededRandom(20260301);
const known = {
  prediction_id: (i) => `pred-${i.toString(16).padStart(10, '0')}-${Math.floor(random() * 1e9).toString(36)}`,
  model_name: (i) => ['churn', 'ltv', 'eta'][i % 3],
  model_version: (i) => `v${1 + (i % 4)}`,
  featureset_version: () => 'fs-2026.03',
  feature_set_version: () => 'fs-2026.03',
  y_pred: () => random() * 1000,
  y_true: (i) => (i % 2 === 0 ? random() * 1000 : null),
  residual: (i) => (i % 2 === 0 ? random() * 10 - 5 : null),
  inference_ts: (i) => 1_772_409_600_000_000 + i * 431_999,
  segment_keys: (i) => ({ region: ['eu', 'us', 'apac'][i % 3], device: ['ios', 'android', 'web'][(i >> 2) % 3], channel: `c${i % 7}` }),
  request_id: (i) => `req-${Math.floor(i / 3)}`,
};
const record = (i) =>
  Object.fromEntries(predictionType.fields.map((field) => [field.name, known[field.name] ? known[field.name](i) : field.defaultValue()]));

/** Blocks of the job's encoder (256 KiB of records each), uncompressed. */
const rawBlocks = [];
{
  const encoder = new ContainerEncoder({ type: predictionType, codec: 'null', syncSeed: 'bench-codecs' });
  for (let i = 0; i < recordCount; i++) {
    const block = encoder.appendRaw(record(i));
    if (block !== undefined) rawBlocks.push(block);
  }
  const last = encoder.finishRaw();
  if (last !== undefined) rawBlocks.push(last);
}
const rawBytes = rawBlocks.reduce((sum, block) => sum + block.data.length, 0);

const runs = (program) => spawnSync(program, ['--help'], { stdio: 'ignore' }).status === 0;
const viaProgram = (program, programArgs) => (data) => {
  const run = spawnSync(program, programArgs, { input: data, maxBuffer: 1 << 30 });
  if (run.status !== 0) throw new Error(`${program} failed: ${run.stderr}`);
  return run.stdout;
};
/** How each codec's blocks are compressed: the job's own codec where it writes, else a Debian program. */
const compressors = Object.fromEntries(writableCodecs().map((name) => [name, (data) => codecFor(name, 'bench').compress(data)]));
if (runs('bzip2')) compressors.bzip2 = viaProgram('bzip2', ['-c', '-9']);
if (runs('xz')) compressors.xz = viaProgram('xz', ['-c', '-6', '--check=crc64']);

const METADATA = avro.Type.forSchema({ type: 'map', values: 'bytes' });

/** A container file of the blocks in `codec`: ContainerEncoder frames the blocks, the header names the codec. */
function containerFile(codec, compress) {
  // ContainerEncoder writes only the codecs the job writes, so the header is made here with its sync marker.
  const encoder = new ContainerEncoder({ type: predictionType, codec: 'null', syncSeed: 'bench-codecs' });
  const sync = encoder.header().subarray(-16);
  const metadata = { 'avro.schema': Buffer.from(JSON.stringify(predictionType.schema({ exportAttrs: true }))), 'avro.codec': Buffer.from(codec) };
  const header = Buffer.concat([Buffer.from('Obj\x01', 'latin1'), METADATA.toBuffer(metadata), sync]);
  const stored = rawBlocks.map((block) => compress(block.data));
  return { bytes: Buffer.concat([header, ...rawBlocks.map((block, i) => encoder.frame(block, stored[i]))]), stored };
}

async function* chunks(bytes) {
  for (let pos = 0; pos < bytes.length; pos += 1 << 20) yield bytes.subarray(pos, pos + (1 << 20));
}

/** Wall and CPU seconds of `action` (CPU: user + system of this process, which on a busy machine is the fairer measure). */
async function timed(action) {
  const wall = performance.now();
  const cpu = process.cpuUsage();
  await action();
  const used = process.cpuUsage(cpu);
  return { wall: (performance.now() - wall) / 1000, cpu: (used.user + used.system) / 1e6 };
}

async function readAll(bytes) {
  let records = 0;
  for await (const batch of decodeContainer(chunks(bytes), { uri: 'bench.avro', readerType: predictionType })) records += batch.length;
  if (records !== recordCount) throw new Error(`read ${records} records, wrote ${recordCount}`);
}

function decompressAll(codec, stored) {
  const decompressor = codecFor(codec, 'bench');
  for (const data of stored) decompressor.decompress(data, 512 * 1024 * 1024);
}

const best = (a, b) => (a === undefined || b.cpu < a.cpu ? b : a);
const results = readableCodecs().map((codec) => (compressors[codec] === undefined ? { codec, missing: true } : { codec, ...containerFile(codec, compressors[codec]) }));
const measured = results.filter((r) => !r.missing);
for (const r of measured) {
  await readAll(r.bytes); // warm-up
  decompressAll(r.codec, r.stored);
}
// Rounds interleave the codecs, so a busy spell of the machine does not land on one codec only.
for (let round = 0; round < rounds; round++) {
  for (const r of measured) {
    r.read = best(r.read, await timed(() => readAll(r.bytes)));
    r.decompress = best(r.decompress, await timed(() => decompressAll(r.codec, r.stored)));
  }
}

const deflate = results.find((r) => r.codec === 'deflate');
const mb = (bytes) => bytes / 1e6;
console.log(`${recordCount.toLocaleString('en-US')} PredictionEvents, ${mb(rawBytes).toFixed(1)} MB of records in ${rawBlocks.length} blocks; best of ${rounds} reads by CPU time (Node ${process.version})`);
console.log('codec      | file MB | ratio | records/s | MB/s  | vs deflate | decompressing      | wall s');
console.log('-----------|---------|-------|-----------|-------|------------|--------------------|-------');
for (const r of results) {
  if (r.missing) {
    console.log(`${r.codec.padEnd(10)} | left out: its Debian program (${r.codec}) is not installed`);
    continue;
  }
  console.log(
    [
      r.codec.padEnd(10),
      mb(r.bytes.length).toFixed(2).padStart(7),
      (rawBytes / r.bytes.length).toFixed(2).padStart(5),
      Math.round(recordCount / r.read.cpu).toLocaleString('en-US').padStart(9),
      (mb(rawBytes) / r.read.cpu).toFixed(1).padStart(5),
      `${(deflate.read.cpu / r.read.cpu).toFixed(2)}x`.padStart(10),
      `${((100 * r.decompress.cpu) / r.read.cpu).toFixed(0).padStart(3)}% (${(mb(rawBytes) / r.decompress.cpu).toFixed(0).padStart(5)} MB/s)`,
      r.read.wall.toFixed(2).padStart(6),
    ].join(' | '),
  );
}
console.log('records/s and MB/s (uncompressed record bytes) of the whole read; "decompressing": the share of it spent in the codec, and the codec alone.');
