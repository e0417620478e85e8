/**
 * The worker side of the pool (piscina): decompresses and decodes input blocks into columnar
 * batches, encodes curated records from a batch and its join results, and compresses output
 * blocks. Every result travels back transferred, not copied. A failure is answered as a value
 * (code, message, context), so the main thread rethrows the very error the main-thread path
 * would have thrown (e.g. E_CORRUPT_OBJECT naming the object's URI and the block's offset).
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import type { Type } from 'avsc';
import { parseAvroType } from '../avro/avro-types.js';
import { findCodec } from '../avro/codecs.js';
import { blockDecoder, decodeStoredBlock, type BlockDecoder, type ContainerHeader, type DecodeLimits } from '../avro/container-reader.js';
import type { CorruptionSite } from '../avro/container-format.js';
import { enrichedType, labelType, predictionType } from '../avro/schemas.js';
import { ModelMetricsError } from '../errors.js';
import { BucketSplitter } from '../scale/bucket-split.js';
import { type FlushTask, type JoinReply, type JoinTask, flushJoin, joinPlanned } from './join-task.js';
import { encodeKeptRows, encodeKeptRowsWith, HAND_ENCODED_FIELDS, transferList, type EncodedRecords, type JoinResults, type PredictionBatch } from './batches.js';
import { ColumnarDecoder, directPlan, type DirectPlan } from './columnar-decoder.js';

/** One block of a decode task: its records and where its stored bytes sit in the task's buffer. */
export interface TaskBlock {
  count: number;
  start: number;
  end: number;
  site: CorruptionSite & { block: number };
}

/** Decode consecutive stored blocks of one input object into one batch. */
export interface DecodeTask {
  op: 'decode';
  dataset: 'predictions' | 'labels';
  /** The writer schema as its JSON text (parsed once per worker and fingerprint). */
  header: { schemaJson: string; codec: string; fingerprint: string };
  limits: Partial<DecodeLimits>;
  blocks: TaskBlock[];
  stored: Uint8Array;
}

/**
 * Decode consecutive stored blocks of one input object and split the records into hash buckets by
 * prediction_id (the spill of SPEC §9), re-encoded with the reader schema, each bucket's records in
 * input order. Labels with label_ts above `labelsThrough` are dropped here (no cutoff reaches them).
 */
export interface PartitionTask extends Omit<DecodeTask, 'op'> {
  op: 'partition';
  buckets: number;
  level: number;
  labelsThrough: number;
}

/** Compress one output block with a codec. */
export interface CompressTask {
  op: 'compress';
  codec: string;
  data: Uint8Array;
}

export type Task = DecodeTask | PartitionTask | JoinTask | FlushTask | CompressTask;

/** A task's error, as plain data. */
export interface TaskFailure {
  code: string;
  message: string;
  context: Record<string, unknown>;
}

export type TaskReply = { ok: true; value: unknown } | { ok: false; failure: TaskFailure };

const readerTypes: Record<DecodeTask['dataset'], Type> = { predictions: predictionType, labels: labelType };
const decoders = new Map<string, BlockDecoder>();

/** Whether the curated schema is the one encodeKeptRows writes by hand; any other is encoded with avsc. */
const handEncoded =
  JSON.stringify((enrichedType.schema({ exportAttrs: true }) as { fields: Array<{ name: string; type: unknown }> }).fields.map((f) => [f.name, f.type])) === HAND_ENCODED_FIELDS;

function decoderFor(task: DecodeTask | PartitionTask): BlockDecoder {
  const cacheKey = `${task.dataset}\0${task.header.fingerprint}\0${task.header.codec}\0${JSON.stringify(task.limits)}`;
  let decoder = decoders.get(cacheKey);
  if (decoder === undefined) {
    const writerSchema: unknown = JSON.parse(task.header.schemaJson);
    const header: ContainerHeader = {
      writerSchema,
      codec: task.header.codec,
      fingerprint: task.header.fingerprint,
      writerType: parseAvroType(writerSchema),
      metadata: new Map(),
      sync: Buffer.alloc(0),
      headerBytes: 0,
    };
    decoder = blockDecoder(readerTypes[task.dataset], header, task.blocks[0]!.site.uri, task.limits);
    decoders.set(cacheKey, decoder);
  }
  return decoder;
}

/** The decoded records of a task's blocks, in order, an array at a time. */
function* decodedRecords(task: DecodeTask | PartitionTask): Generator<unknown[]> {
  const all = Buffer.from(task.stored.buffer, task.stored.byteOffset, task.stored.byteLength);
  const decoder = decoderFor(task);
  for (const block of task.blocks) yield* decodeStoredBlock(decoder, { count: block.count, stored: all.subarray(block.start, block.end), site: block.site });
}

/** Per dataset and writer fingerprint: the direct decoder's plan (undefined: avsc decodes). */
const directPlans = new Map<string, DirectPlan | undefined>();

function decode(task: DecodeTask): object {
  const count = task.blocks.reduce((n, block) => n + block.count, 0);
  const planKey = `${task.dataset}\0${task.header.fingerprint}`;
  if (!directPlans.has(planKey)) directPlans.set(planKey, directPlan(task.dataset, JSON.parse(task.header.schemaJson)));
  const columns = new ColumnarDecoder(task.dataset, directPlans.get(planKey), decoderFor(task), count);
  const all = Buffer.from(task.stored.buffer, task.stored.byteOffset, task.stored.byteLength);
  for (const block of task.blocks) columns.block({ count: block.count, stored: all.subarray(block.start, block.end), site: block.site });
  return columns.take();
}

function partition(task: PartitionTask): object {
  const splitter = new BucketSplitter(readerTypes[task.dataset], task.buckets, task.level, task.dataset === 'labels' ? task.labelsThrough : Number.POSITIVE_INFINITY);
  for (const records of decodedRecords(task)) splitter.add(records as Array<{ prediction_id: string; label_ts?: number }>);
  return splitter.take();
}

function compress(task: CompressTask): Uint8Array {
  const data = Buffer.from(task.data.buffer, task.data.byteOffset, task.data.byteLength);
  const out = findCodec(task.codec)!.compress(data);
  // A fresh buffer of its own (zlib's result may share a pooled one): transferable.
  return out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : new Uint8Array(out);
}

/** The curated records of a batch's kept rows. */
function encodeCurated(batch: PredictionBatch, results: JoinResults): EncodedRecords {
  return handEncoded ? encodeKeptRows(batch, results) : encodeKeptRowsWith(enrichedType, batch, results);
}

function transferred(value: object | Uint8Array): unknown {
  const list = ArrayBuffer.isView(value) ? [value.buffer as ArrayBuffer] : transferList(value);
  const reply: TaskReply = { ok: true, value };
  return move({ [transferableSymbol]: list, [valueSymbol]: reply } as never);
}

/** A join reply, its arrays and its curated records' arrays handed over. */
function transferredJoin(reply: JoinReply): unknown {
  const value: TaskReply = { ok: true, value: reply };
  return move({ [transferableSymbol]: [...transferList(reply), ...transferList(reply.encoded)], [valueSymbol]: value } as never);
}

export default function run(task: Task): unknown {
  try {
    if (task.op === 'decode') return transferred(decode(task));
    if (task.op === 'partition') return transferred(partition(task));
    if (task.op === 'join') return transferredJoin(joinPlanned(task, encodeCurated));
    if (task.op === 'flush') return transferred(flushJoin(task));
    return transferred(compress(task));
  } catch (error) {
    if (error instanceof ModelMetricsError) return { ok: false, failure: { code: error.code, message: error.message, context: { ...error.context } } } satisfies TaskReply;
    return { ok: false, failure: { code: 'E_INTERNAL', message: `worker task ${task.op} failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`, context: {} } } satisfies TaskReply;
  }
}
