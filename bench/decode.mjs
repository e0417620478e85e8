// `npm run bench:decode [-- --predictions GLOB_DIR] [-- --labels DIR] [-- --rounds R]`: records/s of
// the worker decode step (a stored block to a columnar batch, decompression included) by the direct
// columnar decoder and by the avsc path, in one process, on the blocks of real container files:
// every .avro file under the two directories (default: the demo day of `node bin/model-metrics.js
// demo` under /tmp/mm-bench). The stored blocks are read into memory first, so storage is not
// timed; one batch per file. Best of R rounds (default 3, paths interleaved) by CPU time, after a
// warm-up; also the decompression alone, and a check that both paths give the same ids, id hashes
// and signatures (dist/, so build first).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { blockDecoder, decompressBlock, readStoredBlocks } from '../dist/src/avro/container-reader.js';
import { labelType, predictionType } from '../dist/src/avro/schemas.js';
import { ColumnarDecoder, directPlan } from '../dist/src/workers/columnar-decoder.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const rounds = Number(flag('rounds', 3));
const dirs = { predictions: flag('predictions', '/tmp/mm-bench/predictions/dt=2025-01-15'), labels: flag('labels', '/tmp/mm-bench/labels') };

function avroFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...avroFiles(full));
    else if (name.endsWith('.avro')) out.push(full);
  }
  return out;
}

async function* once(bytes) {
  yield bytes;
}

/** Per file: its decoder's inputs and stored blocks, copied out of the read buffer. */
async function load(dataset) {
  const readerType = dataset === 'predictions' ? predictionType : labelType;
  const files = [];
  for (const file of avroFiles(dirs[dataset])) {
    const blocks = [];
    for await (const block of readStoredBlocks(once(readFileSync(file)), { uri: file, readerType })) blocks.push({ ...block, stored: Buffer.from(block.stored) });
    if (blocks.length === 0) continue;
    const header = blocks[0].header;
    files.push({ blocks, decoder: blockDecoder(readerType, header, file, {}), plan: directPlan(dataset, header.writerSchema), count: blocks.reduce((n, b) => n + b.count, 0) });
  }
  return files;
}

function decodeAll(dataset, files, direct) {
  const batches = [];
  for (const file of files) {
    if (direct && file.plan === undefined) throw new Error('a file whose writer schema the direct decoder does not know');
    const decoder = new ColumnarDecoder(dataset, direct ? file.plan : undefined, file.decoder, file.count);
    for (const block of file.blocks) decoder.block(block);
    batches.push(decoder.take());
  }
  return batches;
}

function decompressAll(files) {
  let bytes = 0;
  for (const file of files) for (const block of file.blocks) bytes += decompressBlock(block.stored, file.decoder, block.site).length;
  return bytes;
}

function cpuSeconds(action) {
  const start = process.cpuUsage();
  const result = action();
  const used = process.cpuUsage(start);
  return { seconds: (used.user + used.system) / 1e6, result };
}

const same = (a, b) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

for (const dataset of ['predictions', 'labels']) {
  const files = await load(dataset);
  const records = files.reduce((n, f) => n + f.count, 0);
  const blocks = files.reduce((n, f) => n + f.blocks.length, 0);
  const best = { direct: Infinity, avsc: Infinity, decompress: Infinity };
  let outputs = {};
  decodeAll(dataset, files.slice(0, 2), true);
  decodeAll(dataset, files.slice(0, 2), false);
  for (let round = 0; round < rounds; round++) {
    for (const way of ['direct', 'avsc']) {
      const { seconds, result } = cpuSeconds(() => decodeAll(dataset, files, way === 'direct'));
      best[way] = Math.min(best[way], seconds);
      outputs[way] = result;
    }
    best.decompress = Math.min(best.decompress, cpuSeconds(() => decompressAll(files)).seconds);
  }
  for (let i = 0; i < files.length; i++) {
    const [d, a] = [outputs.direct[i], outputs.avsc[i]];
    const columns = ['ids', 'idEnds', 'idHash', ...(dataset === 'predictions' ? ['signature', 'signatureRow', 'segPairs', 'modelName'] : ['yTrue', 'labelTs'])];
    for (const column of columns) if (!same(d[column], a[column])) throw new Error(`${dataset} file ${i}: column ${column} differs between the paths`);
  }
  const rate = (seconds) => `${Math.round(records / seconds).toLocaleString('en-US')} records/s (${seconds.toFixed(2)} s CPU)`;
  console.log(`${dataset}: ${records.toLocaleString('en-US')} records in ${blocks} blocks of ${files.length} files`);
  console.log(`  direct decoder  ${rate(best.direct)}`);
  console.log(`  avsc path       ${rate(best.avsc)}`);
  console.log(`  decompression alone ${best.decompress.toFixed(2)} s CPU; direct is ${(best.avsc / best.direct).toFixed(2)}x the avsc path's speed, ${((best.avsc - best.decompress) / Math.max(best.direct - best.decompress, 1e-9)).toFixed(2)}x without decompression`);
}
