/**
 * The two reading steps of a day, on the main thread alone (`--workers 0`) or with a worker pool:
 * build the label index, then stream the day's predictions through the join into the curated
 * writer. Both keep the contract's (object key, record) order; with a pool, decoding, curated
 * encoding and compression run on the workers and the main thread joins columnar batches.
 */
import type { DecodeLimits } from '../avro/container-reader.js';
import { labelType, predictionType } from '../avro/schemas.js';
import type { AvroFilesWriter } from '../dataset/avro-writer.js';
import type { DayJoin } from '../join/day-join.js';
import { LabelIndex } from '../join/label-index.js';
import { SharedLabelIndex } from '../join/shared-labels.js';
import type { LabelRecord, PredictionRecord } from '../join/records.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';
import { joinResults } from '../workers/batches.js';
import type { JoinReply } from '../workers/join-task.js';
import { StateReader } from '../metrics/state-codec.js';
import type { WorkerPool } from '../workers/pool.js';
import { type ReadHooks, readBatchesInOrder, readInOrder } from './ordered-reader.js';

/** What both steps read with. */
export interface ReadSetup {
  store: ObjectStore;
  objects: readonly ObjectInfo[];
  readAhead: number;
  hooks: ReadHooks & { limits: Partial<DecodeLimits> };
  /** undefined: everything on the main thread. */
  pool: WorkerPool | undefined;
  signal: AbortSignal | undefined;
  /** Records read so far, for the progress line. */
  onRecords: (count: number) => void;
}

/** A day's labels, indexed and ready for the join. */
export interface IndexedLabels {
  /** A LabelIndex (--workers 0), or with a pool the SharedLabelIndex the workers' join tasks read. */
  labels: LabelIndex | SharedLabelIndex;
  /** Labels read (past labelsThrough included). */
  read: number;
  indexed: number;
  distinctIds: number;
  byteSize: number;
}

/**
 * Reads the labels and indexes every one at or before `labelsThrough`, in (object key, record)
 * order: on the main thread alone into a LabelIndex, or with a pool from columnar batches straight
 * into shared memory (SharedLabelIndex). No cutoff lies beyond labelsThrough (the preliminary
 * as-of, or the capped final close), so a later label can never be usable, nor counted (SPEC §3).
 */
export async function buildLabelIndex(setup: ReadSetup, expectedIds: number, labelsThrough: number): Promise<IndexedLabels> {
  let read = 0;
  if (setup.pool === undefined) {
    const index = new LabelIndex(expectedIds);
    for await (const block of readInOrder<LabelRecord>(setup.store, setup.objects, labelType, setup.readAhead, setup.hooks)) {
      setup.signal?.throwIfAborted();
      for (const label of block.records) {
        if (label.label_ts > labelsThrough) continue;
        index.add(label.prediction_id, label.y_true, label.label_ts);
      }
      read += block.records.length;
      setup.onRecords(block.records.length);
    }
    return { labels: index, read, indexed: index.size, distinctIds: index.distinctIds, byteSize: index.byteSize };
  }
  const index = new SharedLabelIndex(expectedIds);
  for await (const batch of readBatchesInOrder(setup.pool, 'labels', setup.store, setup.objects, labelType, setup.readAhead, setup.hooks)) {
    setup.signal?.throwIfAborted();
    const { ids, idEnds, idHash, yTrue, labelTs } = batch;
    for (let row = 0; row < batch.count; row++) {
      if (labelTs[row]! > labelsThrough) continue;
      index.add(ids, row === 0 ? 0 : idEnds[row - 1]!, idEnds[row]!, idHash[row]!, yTrue[row]!, labelTs[row]!);
    }
    read += batch.count;
    setup.onRecords(batch.count);
  }
  return { labels: index, read, indexed: index.size, distinctIds: index.distinctIds, byteSize: index.byteSize };
}

/** Streams the predictions through the join and writes each kept one to the curated writer, in order. */
export async function probePredictions(setup: ReadSetup, join: DayJoin, curated: AvroFilesWriter): Promise<void> {
  const { pool } = setup;
  if (pool === undefined) {
    for await (const block of readInOrder<PredictionRecord>(setup.store, setup.objects, predictionType, setup.readAhead, setup.hooks)) {
      setup.signal?.throwIfAborted();
      for (const prediction of block.records) {
        const enriched = join.accept(prediction);
        if (enriched === undefined) continue;
        const flushed = curated.append(enriched);
        if (flushed !== undefined) await flushed;
      }
      setup.onRecords(block.records.length);
    }
    return;
  }
  // Batches being joined and encoded on the pool, oldest first: absorbed and appended strictly in order.
  const labels = join.sharedLabels;
  const settings = join.workerSettings;
  const encoding: Array<Promise<JoinReply>> = [];
  const appendOldest = async (): Promise<void> => {
    const reply = await encoding.shift()!;
    join.absorbBatch(reply.counts);
    await curated.appendEncoded(reply.encoded.bytes, reply.encoded.ends);
  };
  try {
    for await (const batch of readBatchesInOrder(pool, 'predictions', setup.store, setup.objects, predictionType, setup.readAhead, setup.hooks)) {
      setup.signal?.throwIfAborted();
      const results = joinResults(batch.count);
      const plan = new Int32Array(batch.count);
      const heads = new Int32Array(batch.count);
      join.planBatch(batch, results, plan, heads);
      setup.onRecords(batch.count);
      const joined = pool.join(batch, results, plan, heads, settings, labels, join.token);
      joined.catch(() => undefined); // awaited in order; this only keeps an early failure from being "unhandled"
      encoding.push(joined);
      while (encoding.length >= pool.capacity) await appendOldest();
    }
    while (encoding.length > 0) await appendOldest();
    const flushed = await pool.flushJoin(join.token);
    join.absorbWindows(flushed.map((part) => ({ ...part, state: new StateReader(Buffer.from(part.state.buffer, part.state.byteOffset, part.state.byteLength)) })));
  } catch (error) {
    // A failing input (a corrupt or truncated object) leaves the writer where the main-thread path
    // would: every record before it written, so the cleanup sees the same parts. Not after a signal.
    if (!setup.signal?.aborted) {
      try {
        while (encoding.length > 0) await appendOldest();
      } catch {
        // The first error is the run's.
      }
    }
    throw error;
  } finally {
    encoding.length = 0;
  }
}
