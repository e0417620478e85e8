/**
 * Reads objects strictly in the given order (SPEC §3: key byte order decides "first" and "last")
 * while the next `readAhead` requests are already open, so store latency overlaps decoding. Each
 * GET is pinned to the listed ETag, so an object rewritten since the listing fails the run
 * instead of being silently mixed in. With a worker pool, blocks are decoded on the workers, up
 * to the pool's capacity ahead of the one being joined, and come back in order as columnar batches.
 */
import type { Readable } from 'node:stream';
import type { Type } from 'avsc';
import { type DecodeLimits, type DecodeOptions, type StoredBlock, decodeContainer, readStoredBlocks } from '../avro/container-reader.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';
import type { LabelBatch, PredictionBatch } from '../workers/batches.js';
import type { WorkerPool } from '../workers/pool.js';

/** Callbacks for progress accounting. */
export interface ReadHooks {
  onObjectDone?: (info: ObjectInfo) => void;
  /** Bytes consumed since the previous call, across objects. */
  onBytes?: (delta: number) => void;
  /** Decoding limits (defaults where unset). */
  limits?: Partial<DecodeLimits>;
}

/** One decoded block of one object. */
export interface RecordBlock<T> {
  object: ObjectInfo;
  records: T[];
}

/** Opens the objects in order, `readAhead` requests ahead; yields each object's stream and its decode options, destroying it afterwards. */
async function* openInOrder(
  store: ObjectStore,
  objects: readonly ObjectInfo[],
  readerType: Type,
  readAhead: number,
  hooks: ReadHooks,
): AsyncGenerator<{ info: ObjectInfo; stream: Readable; options: DecodeOptions }> {
  const opened: Array<Promise<Readable>> = [];
  const open = (index: number): void => {
    const info = objects[index]!;
    const pending = store.read(info.key, { ifMatch: info.etag }).then((stream) => {
      // Until it is consumed, a pre-opened stream's error is kept by the stream itself and
      // rethrown by its iterator; this listener only stops Node from treating it as unhandled.
      stream.on('error', () => undefined);
      return stream;
    });
    pending.catch(() => undefined);
    opened.push(pending);
  };
  let next = 0;
  const fill = (): void => {
    while (next < objects.length && opened.length < Math.max(1, readAhead)) open(next++);
  };
  try {
    fill();
    for (let i = 0; i < objects.length; i++) {
      const info = objects[i]!;
      const stream = await opened.shift()!;
      fill();
      let consumed = 0;
      const options: DecodeOptions = {
        uri: store.uriOf(info.key),
        readerType,
        expectedBytes: info.size,
        limits: hooks.limits ?? {},
        onProgress: (bytes) => {
          hooks.onBytes?.(bytes - consumed);
          consumed = bytes;
        },
      };
      try {
        yield { info, stream, options };
      } finally {
        stream.destroy();
      }
      hooks.onObjectDone?.(info);
    }
  } finally {
    // On failure or early exit, close what was opened ahead.
    for (const pending of opened) void pending.then((stream) => stream.destroy(), () => undefined);
  }
}

/** Streams the records of `objects` in order, one array per Avro block. */
export async function* readInOrder<T>(store: ObjectStore, objects: readonly ObjectInfo[], readerType: Type, readAhead: number, hooks: ReadHooks = {}): AsyncGenerator<RecordBlock<T>> {
  for await (const { info, stream, options } of openInOrder(store, objects, readerType, readAhead, hooks)) {
    for await (const records of decodeContainer(stream, options)) yield { object: info, records: records as T[] };
  }
}

/** A decode task takes consecutive blocks of one object up to this many stored bytes or blocks (fewer, larger messages). */
const TASK_STORED_BYTES = 256 * 1024;
const TASK_BLOCKS = 8;

/**
 * Streams the blocks of `objects` in order as columnar batches decoded on the pool, at most
 * `pool.capacity` blocks in flight. The first failure in (object, block) order is the one thrown:
 * a framing error met while earlier blocks are still decoding waits for them.
 */

export function readBatchesInOrder(pool: WorkerPool, dataset: 'predictions', store: ObjectStore, objects: readonly ObjectInfo[], readerType: Type, readAhead: number, hooks?: ReadHooks): AsyncGenerator<PredictionBatch>;
export function readBatchesInOrder(pool: WorkerPool, dataset: 'labels', store: ObjectStore, objects: readonly ObjectInfo[], readerType: Type, readAhead: number, hooks?: ReadHooks): AsyncGenerator<LabelBatch>;
export function readBatchesInOrder(
  pool: WorkerPool,
  dataset: 'predictions' | 'labels',
  store: ObjectStore,
  objects: readonly ObjectInfo[],
  readerType: Type,
  readAhead: number,
  hooks: ReadHooks = {},
): AsyncGenerator<PredictionBatch | LabelBatch> {
  const limits = hooks.limits ?? {};
  return readTasksInOrder<PredictionBatch | LabelBatch>(pool, store, objects, readerType, readAhead, hooks, (group) => (dataset === 'predictions' ? pool.decode('predictions', group, limits) : pool.decode('labels', group, limits)));
}

/**
 * The engine of readBatchesInOrder for any task over a group of consecutive stored blocks of one
 * object (`run`: decode, partition into buckets), with the same order, bounds and failure rules.
 */
export async function* readTasksInOrder<T>(
  pool: WorkerPool,
  store: ObjectStore,
  objects: readonly ObjectInfo[],
  readerType: Type,
  readAhead: number,
  hooks: ReadHooks,
  run: (group: readonly StoredBlock[]) => Promise<T>,
): AsyncGenerator<T> {
  const inFlight: Array<Promise<T>> = [];
  let group: StoredBlock[] = [];
  let groupBytes = 0;
  const submit = (): void => {
    if (group.length === 0) return;
    const decoded = run(group);
    decoded.catch(() => undefined); // awaited in order below; this only keeps an early failure from being "unhandled"
    inFlight.push(decoded);
    group = [];
    groupBytes = 0;
  };
  try {
    try {
      for await (const { stream, options } of openInOrder(store, objects, readerType, readAhead, hooks)) {
        for await (const block of readStoredBlocks(stream, options)) {
          // The stored bytes are a view into the read buffer, valid until the object is done: copied by submit.
          group.push(block);
          groupBytes += block.stored.length;
          if (groupBytes >= TASK_STORED_BYTES || group.length >= TASK_BLOCKS) submit();
          while (inFlight.length >= pool.capacity) yield await inFlight.shift()!;
        }
        submit();
      }
    } finally {
      // Blocks before a failing one are decoded (and their errors thrown) first.
      submit();
    }
  } catch (error) {
    // Blocks before the failing one come first, and so do their own errors.
    while (inFlight.length > 0) yield await inFlight.shift()!;
    throw error;
  }
  while (inFlight.length > 0) yield await inFlight.shift()!;
}
