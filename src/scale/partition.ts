/**
 * The partition step of the grace hash join (SPEC §9): both sides of a day hash-partitioned by
 * prediction_id into bucket files, Avro container files with the reader schemas and the snappy
 * codec (whose per-block CRC32 the reader verifies, codecs.ts), on any ObjectStore: a local store
 * rooted at the spill dir for `--memory-budget`, the output store's `_staging/` for the sharded
 * mode. Records reach their bucket in input (object key, record) order, so within a bucket the
 * contract's order rules decide exactly as in one pass; labels past `labelsThrough` are dropped
 * here, as buildLabelIndex drops them.
 *
 * With a worker pool the workers decode, split and re-encode (the `partition` task); the main
 * thread only appends encoded records. The bucket blocks are snappy-compressed on libuv's threads
 * (the codec's own async compression), not on the pool: measured on the kit's 2M day, sending
 * each 64 KiB block to a worker and back left peak RSS at 713 MiB against 274 MiB, for the same
 * partitioning time (README "Memory budget and spill"). Memory: one open file per
 * bucket of the side being partitioned, each about 64 KiB of block + 2 compressing + 256 KiB
 * queued at most, so ~0.5 MiB per bucket (MAX_FANOUT bounds it).
 */
import { labelType, predictionType } from '../avro/schemas.js';
import { AvroFilesWriter } from '../dataset/avro-writer.js';
import { ModelMetricsError } from '../errors.js';
import type { ReadSetup } from '../pipeline/join-steps.js';
import { readInOrder, readTasksInOrder } from '../pipeline/ordered-reader.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';
import { MAX_BUCKETS } from './bucket-hash.js';
import { type BucketedRecords, BucketSplitter } from './bucket-split.js';

/** Most buckets one partitioning writes at once (open files, buffers); a bigger need re-partitions a level down. */
export const MAX_FANOUT = 256;

/** Where the bucket files of one partitioning go, and how records are split. */
export interface PartitionTarget {
  store: ObjectStore;
  /** Bucket b's files are `<prefix>b<5 digits>/labels.avro` and `…/predictions.avro` (a folder per bucket). */
  prefix: string;
  buckets: number;
  /** The hash level (bucket-hash.ts): 0 for a day's inputs, +1 for each re-partitioning of a bucket. */
  level: number;
  /** Labels with label_ts above it are dropped (SPEC §3: no cutoff reaches them). */
  labelsThrough: number;
}

/** One side of one bucket: its files in order (one per partitioning that wrote to it) and its records. */
export interface BucketSide {
  objects: ObjectInfo[];
  records: number;
}

/** A bucket's files. */
export interface BucketFiles {
  /** Its folder in the target store (`<prefix>b00003/`). */
  prefix: string;
  labels: BucketSide;
  predictions: BucketSide;
}

/** What partitionInputs wrote. */
export interface PartitionResult {
  /** Per bucket (index = bucket), in bucket order; a bucket without records has empty sides. */
  buckets: BucketFiles[];
  /** Records read from the inputs (labels past labelsThrough included, as buildLabelIndex counts them). */
  labelsRead: number;
  predictionsRead: number;
  /** Bytes of every bucket file written. */
  bytes: number;
}

/** The folder of bucket `b` under `prefix`. */
export function bucketPrefix(prefix: string, b: number): string {
  return `${prefix}b${String(b).padStart(5, '0')}/`;
}

/** Per-bucket writer settings: many are open at once, so each is small (see the module doc). */
const BUCKET_WRITER = { codec: 'snappy', blockBytes: 64 * 1024, compressionsInFlight: 2, queuedBytes: 256 * 1024 } as const;

/** Hash-partitions both sides of a day (labels, then predictions) into bucket files under `target`. */
export async function partitionInputs(sides: { labels: ReadSetup; predictions: ReadSetup }, target: PartitionTarget): Promise<PartitionResult> {
  if (!Number.isInteger(target.buckets) || target.buckets < 1 || target.buckets > MAX_BUCKETS) {
    throw new ModelMetricsError('E_INTERNAL', `partitionInputs: ${target.buckets} buckets, expected 1 to ${MAX_BUCKETS}`, { operation: 'partition' });
  }
  const labels = await partitionSide(sides.labels, 'labels', target);
  const predictions = await partitionSide(sides.predictions, 'predictions', target);
  const buckets: BucketFiles[] = [];
  for (let b = 0; b < target.buckets; b++) buckets.push({ prefix: bucketPrefix(target.prefix, b), labels: labels.sides[b]!, predictions: predictions.sides[b]! });
  return { buckets, labelsRead: labels.read, predictionsRead: predictions.read, bytes: labels.bytes + predictions.bytes };
}

/** One side into one file per bucket; returns the files (with ETags, for the ordered readers' If-Match) and counts. */
async function partitionSide(setup: ReadSetup, dataset: 'labels' | 'predictions', target: PartitionTarget): Promise<{ sides: BucketSide[]; read: number; bytes: number }> {
  const type = dataset === 'labels' ? labelType : predictionType;
  const { pool } = setup;
  const writers: Array<AvroFilesWriter | undefined> = new Array<AvroFilesWriter | undefined>(target.buckets).fill(undefined);
  const writerOf = (b: number): AvroFilesWriter => {
    const key = `${bucketPrefix(target.prefix, b)}${dataset}.avro`;
    return (writers[b] ??= new AvroFilesWriter(target.store, { type, ...BUCKET_WRITER, keyOf: () => key, metadata: {}, maxPartBytes: Number.POSITIVE_INFINITY }));
  };
  let read = 0;
  const append = async (split: BucketedRecords): Promise<void> => {
    read += split.read;
    setup.onRecords(split.read);
    const { recordStarts, byteStarts } = split;
    for (let b = 0; b < target.buckets; b++) {
      if (recordStarts[b] === recordStarts[b + 1]) continue;
      await writerOf(b).appendEncoded(split.bytes.subarray(byteStarts[b]!, byteStarts[b + 1]!), split.ends.subarray(recordStarts[b]!, recordStarts[b + 1]!));
    }
  };
  const labelsThrough = dataset === 'labels' ? target.labelsThrough : Number.POSITIVE_INFINITY;
  try {
    if (pool === undefined) {
      const splitter = new BucketSplitter(type, target.buckets, target.level, labelsThrough);
      for await (const block of readInOrder<{ prediction_id: string; label_ts?: number }>(setup.store, setup.objects, type, setup.readAhead, setup.hooks)) {
        setup.signal?.throwIfAborted();
        splitter.add(block.records);
        await append(splitter.take());
      }
    } else {
      const split = { buckets: target.buckets, level: target.level, labelsThrough };
      const limits = setup.hooks.limits;
      for await (const part of readTasksInOrder(pool, setup.store, setup.objects, type, setup.readAhead, setup.hooks, (group) => pool.partition(dataset, group, limits, split))) {
        setup.signal?.throwIfAborted();
        await append(part);
      }
    }
    const sides: BucketSide[] = [];
    let bytes = 0;
    for (const writer of writers) {
      if (writer === undefined) {
        sides.push({ objects: [], records: 0 });
        continue;
      }
      const [output] = await writer.finish();
      const info = await target.store.head(output!.key);
      if (info === undefined) throw new ModelMetricsError('E_STORAGE', `bucket file ${target.store.uriOf(output!.key)} is missing right after it was written`, { uri: target.store.uriOf(output!.key) });
      sides.push({ objects: [info], records: output!.records });
      bytes += info.size;
    }
    return { sides, read, bytes };
  } catch (error) {
    await Promise.all(writers.map((writer) => writer?.abort(error)));
    throw error;
  }
}
