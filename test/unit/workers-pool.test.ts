/**
 * The worker pool's side of failures (issue 9): a corrupt block decoded in a worker comes back as
 * the CorruptObjectError the main thread would throw, and a worker that dies fails the task with
 * E_INTERNAL naming what it was doing, instead of hanging the run.
 * The pool runs the compiled worker (dist/): build first, as for the CLI tests.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readStoredBlocks, type StoredBlock } from '../../src/avro/container-reader.js';
import { predictionType } from '../../src/avro/schemas.js';
import { CorruptObjectError } from '../../src/errors.js';
import { WorkerPool } from '../../src/workers/pool.js';
import { chunksOf, encodeFile, predictionV1Type, samplePrediction, samplePredictions } from '../helpers/avro-helpers.js';

const URI = '/data/predictions/dt=2026-01-01/a.avro';
const pools: WorkerPool[] = [];

async function storedBlocks(bytes: Buffer): Promise<StoredBlock[]> {
  const blocks: StoredBlock[] = [];
  for await (const block of readStoredBlocks(chunksOf(bytes), { uri: URI, readerType: predictionType })) blocks.push({ ...block, stored: Buffer.from(block.stored) });
  return blocks;
}

function pool(threads: number): WorkerPool {
  const created = new WorkerPool(threads);
  pools.push(created);
  return created;
}

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

describe('WorkerPool', () => {
  it('decodes blocks into a columnar batch with every row', async () => {
    const blocks = await storedBlocks(encodeFile(samplePredictions(300), { type: predictionV1Type, codec: 'deflate', blockBytes: 4096 }).bytes);
    expect(blocks.length).toBeGreaterThan(1);
    const batch = await pool(1).decode('predictions', blocks, {});
    expect(batch.count).toBe(300);
    expect(Buffer.from(batch.ids).toString('utf8', batch.idEnds[0]!, batch.idEnds[1]!)).toBe(samplePrediction(1).prediction_id);
    expect(batch.strings[batch.modelName[3]!]).toBe(samplePrediction(3).model_name);
    expect(batch.yPred[7]).toBe(samplePrediction(7).y_pred);
  });

  it('a corrupt block comes back as the CorruptObjectError of the main thread, with URI, block and offset', async () => {
    const blocks = await storedBlocks(encodeFile(samplePredictions(300), { type: predictionV1Type, codec: 'deflate', blockBytes: 4096 }).bytes);
    const damaged = { ...blocks[1]!, stored: Buffer.alloc(blocks[1]!.stored.length, 0xff) };
    const error = await pool(1).decode('predictions', [blocks[0]!, damaged], {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptObjectError);
    expect(error).toMatchObject({ code: 'E_CORRUPT_OBJECT', context: { uri: URI, block: 1, offset: damaged.site.offset } });
    expect((error as Error).message).toMatch(new RegExp(`^corrupt Avro object "${URI}" at byte ${damaged.site.offset} \\(block 1\\): deflate block cannot be decompressed`));
  });

  it('a worker that dies mid-task fails the task with E_INTERNAL naming the task, instead of hanging', async () => {
    const blocks = await storedBlocks(encodeFile(samplePredictions(200_000), { type: predictionV1Type, codec: 'deflate' }).bytes);
    const running = pool(1);
    const decoding = running.decode('predictions', blocks.slice(0, 16), {}).catch((e: unknown) => e);
    // The thread goes away as a crashed one would (a native codec abort, the heap limit).
    const threads = (running as unknown as { pool: { threads: Array<{ terminate: () => Promise<number> }> } }).pool.threads;
    await new Promise((resolve) => setTimeout(resolve, 20));
    await threads[0]!.terminate();
    const error = await decoding;
    expect(error).toMatchObject({ code: 'E_INTERNAL' });
    expect((error as Error).message).toContain(`a worker thread failed while decoding blocks 0-15 of ${URI}`);
    expect((error as Error).message).toContain('--workers 0');
  });
});
