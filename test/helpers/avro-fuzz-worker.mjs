/**
 * The worker thread avro-fuzz.test.ts decodes each damaged file in. A worker can be terminated in
 * the middle of synchronous code and has its own heap limit, so a case that spins or allocates
 * without bound is caught and counted (as a hang or a crash) instead of freezing or killing the run.
 *
 * Protocol: workerData = { readers: { name: schemaJson } }; each message { id, bytes, chunkSizes,
 * reader, uri, limits, selfTest? } is answered with { id, outcome: 'records', count, codec } or
 * { id, outcome: 'error', name, code, message, contextUri }.
 */
import { register } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

register('./avro-fuzz-ts-hooks.mjs', import.meta.url);
const { decodeContainer } = await import('../../src/avro/container-reader.ts');
const { parseAvroType } = await import('../../src/avro/avro-types.ts');

const readers = Object.fromEntries(Object.entries(workerData.readers).map(([name, schema]) => [name, parseAvroType(JSON.parse(schema))]));

/** `bytes` as chunks of the given sizes, cycling through them. */
async function* chunksOf(bytes, sizes) {
  for (let pos = 0, i = 0; pos < bytes.length; i++) {
    const size = sizes[i % sizes.length];
    yield bytes.subarray(pos, pos + size);
    pos += size;
  }
}

/** The guard's own test (avro-fuzz.test.ts): a case that never returns, or one that eats the heap. */
function misbehave(kind) {
  if (kind === 'spin') for (;;);
  const hog = [];
  for (;;) hog.push(new Array(100_000).fill(hog.length));
}

parentPort.on('message', async (job) => {
  if (job.selfTest !== undefined) misbehave(job.selfTest);
  const bytes = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength);
  let count = 0;
  let codec;
  try {
    const blocks = decodeContainer(chunksOf(bytes, job.chunkSizes), {
      uri: job.uri,
      readerType: readers[job.reader],
      limits: job.limits,
      expectedBytes: bytes.length,
      onHeader: (header) => {
        codec = header.codec;
      },
    });
    for await (const block of blocks) count += block.length;
    parentPort.postMessage({ id: job.id, outcome: 'records', count, codec });
  } catch (error) {
    parentPort.postMessage({
      id: job.id,
      outcome: 'error',
      name: error?.constructor?.name ?? typeof error,
      code: error?.code,
      message: String(error?.message ?? error),
      contextUri: error?.context?.uri,
    });
  }
});
parentPort.postMessage({ ready: true });
