/**
 * Encoder of Avro 1.11 "Object Container Files" as plain Buffers: no streams, no clock, no
 * randomness. The same records and options always give the same bytes (SPEC §1: deterministic
 * outputs), because the sync marker is derived from a seed and the metadata order is fixed.
 */
import { createHash } from 'node:crypto';
import type { Type } from 'avsc';
import { ModelMetricsError, UsageError } from '../errors.js';
import { describeType } from './avro-types.js';
import { findCodec, writableCodecs, type AvroCodec } from './codecs.js';
import { longSize, MAGIC, SYNC_SIZE, writeLong } from './container-format.js';

/** Options of a ContainerEncoder. */
export interface ContainerEncoderOptions {
  /** Type of every record; its full schema (docs, logical types) goes into the header. */
  type: Type;
  /** Block codec, default 'deflate'. */
  codec?: string;
  /** A block is closed once its uncompressed records reach this many bytes (default 256 KiB). */
  blockBytes?: number;
  /** Extra header metadata, written after avro.schema and avro.codec in sorted key order. */
  metadata?: Record<string, string>;
  /** The sync marker is the first 16 bytes of SHA-256(syncSeed). */
  syncSeed: string;
}

/** A block's records, serialized but not yet compressed. */
export interface RawBlock {
  count: number;
  data: Buffer;
}

/** Default uncompressed block size: large enough for deflate to work well, small enough to stream. */
const DEFAULT_BLOCK_BYTES = 256 * 1024;

/** Encodes records into container-file bytes, block by block. */
export class ContainerEncoder {
  private readonly type: Type;
  private readonly codecName: string;
  private readonly codec: AvroCodec;
  private readonly blockBytes: number;
  private readonly metadata: [string, string][];
  private readonly sync: Buffer;
  /** Uncompressed records of the current block, reused across blocks and grown on demand. */
  private buffer: Buffer;
  private pos = 0;
  private blockRecords = 0;
  private records = 0;
  private bytes = 0;
  private rawBytes = 0;

  constructor(options: ContainerEncoderOptions) {
    this.type = options.type;
    this.codecName = options.codec ?? 'deflate';
    const codec = findCodec(this.codecName);
    if (codec === undefined) {
      throw new UsageError(
        `unknown output codec ${JSON.stringify(this.codecName)}, expected one of ${writableCodecs().join(', ')}`,
        { option: 'codec' },
      );
    }
    this.codec = codec;
    this.blockBytes = options.blockBytes ?? DEFAULT_BLOCK_BYTES;
    if (!Number.isSafeInteger(this.blockBytes) || this.blockBytes < 1) {
      throw new ModelMetricsError('E_INTERNAL', `blockBytes must be a positive integer, got ${this.blockBytes}`, {
        option: 'blockBytes',
      });
    }
    const extra = Object.entries(options.metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const reserved = extra.find(([name]) => name.startsWith('avro.'));
    if (reserved !== undefined) {
      // Avro 1.11 "Object Container Files": "All metadata properties that start with 'avro.' are reserved".
      throw new ModelMetricsError('E_INTERNAL', `metadata key "${reserved[0]}" is reserved by the Avro spec`, {
        field: reserved[0],
      });
    }
    this.metadata = [
      ['avro.schema', JSON.stringify(this.type.schema({ exportAttrs: true }))],
      ['avro.codec', this.codecName],
      ...extra,
    ];
    this.sync = createHash('sha256').update(options.syncSeed, 'utf8').digest().subarray(0, SYNC_SIZE);
    this.buffer = Buffer.alloc(this.blockBytes + 16 * 1024);
  }

  /** Records appended so far. */
  get recordCount(): number {
    return this.records;
  }

  /** Bytes returned so far by header(), append() and finish(). */
  get bytesOut(): number {
    return this.bytes;
  }

  /** The file header: magic, metadata map (one map block), sync marker. */
  header(): Buffer {
    const entries = this.metadata.map(([name, value]): [Buffer, Buffer] => [Buffer.from(name, 'utf8'), Buffer.from(value, 'utf8')]);
    let size = MAGIC.length + longSize(entries.length) + longSize(0) + SYNC_SIZE;
    for (const [name, value] of entries) {
      size += longSize(name.length) + name.length + longSize(value.length) + value.length;
    }
    const out = Buffer.alloc(size);
    let pos = MAGIC.copy(out, 0);
    pos = writeLong(entries.length, out, pos);
    for (const [name, value] of entries) {
      pos = writeLong(name.length, out, pos);
      pos += name.copy(out, pos);
      pos = writeLong(value.length, out, pos);
      pos += value.copy(out, pos);
    }
    pos = writeLong(0, out, pos);
    this.sync.copy(out, pos);
    this.bytes += out.length;
    return out;
  }

  /** Adds a record; returns a finished block when the current one reached blockBytes. */
  append(record: unknown): Buffer | undefined {
    const raw = this.appendRaw(record);
    return raw === undefined ? undefined : this.frame(raw, this.codec.compress(raw.data));
  }

  /** The last partial block, if any records are pending. */
  finish(): Buffer | undefined {
    const raw = this.finishRaw();
    return raw === undefined ? undefined : this.frame(raw, this.codec.compress(raw.data));
  }

  /**
   * Like append, but hands back the finished block uncompressed (a copy), so the caller can
   * compress it elsewhere — e.g. `compressAsync` on libuv's threads — and then `frame` the
   * blocks in the order they were returned.
   */
  appendRaw(record: unknown): RawBlock | undefined {
    const start = this.pos;
    let end: number;
    try {
      end = this.type.encode(record, this.buffer, start);
      while (end < 0) {
        // avsc returns minus the missing byte count when the buffer is too small.
        this.grow(this.buffer.length - end);
        end = this.type.encode(record, this.buffer, start);
      }
    } catch (error) {
      throw this.invalidRecord(record, error);
    }
    this.pos = end;
    this.blockRecords++;
    this.records++;
    return this.pos >= this.blockBytes ? this.takeRaw() : undefined;
  }

  /**
   * Appends records encoded elsewhere (a worker): record i is `bytes[ends[i - 1] .. ends[i])`, the
   * first starting at 0. Copies from record `from` up to the one that completes the current block
   * (the same block boundaries as appendRaw of the same records) and returns the next record's
   * index with that block, if one was completed.
   */
  appendEncoded(bytes: Uint8Array, ends: Int32Array, from: number): { next: number; block: RawBlock | undefined } {
    const start = from === 0 ? 0 : ends[from - 1]!;
    let last = from;
    while (last < ends.length - 1 && this.pos + (ends[last]! - start) < this.blockBytes) last++;
    const length = ends[last]! - start;
    if (this.pos + length > this.buffer.length) this.grow(this.pos + length);
    this.buffer.set(bytes.subarray(start, start + length), this.pos);
    this.pos += length;
    const count = last + 1 - from;
    this.blockRecords += count;
    this.records += count;
    return { next: last + 1, block: this.pos >= this.blockBytes ? this.takeRaw() : undefined };
  }

  /** Like finish, uncompressed. */
  finishRaw(): RawBlock | undefined {
    return this.blockRecords > 0 ? this.takeRaw() : undefined;
  }

  /** The output codec, for callers that compress raw blocks themselves. */
  get blockCodec(): AvroCodec {
    return this.codec;
  }

  /** Uncompressed bytes of every block taken so far: deterministic, whatever the compression timing. */
  get rawBytesOut(): number {
    return this.rawBytes;
  }

  /** Avro 1.11 block: record count, byte size, (compressed) records, sync marker. */
  frame(block: RawBlock, compressed: Buffer): Buffer {
    const out = Buffer.allocUnsafe(longSize(block.count) + longSize(compressed.length) + compressed.length + SYNC_SIZE);
    let pos = writeLong(block.count, out, 0);
    pos = writeLong(compressed.length, out, pos);
    pos += compressed.copy(out, pos);
    this.sync.copy(out, pos);
    this.bytes += out.length;
    return out;
  }

  private takeRaw(): RawBlock {
    const block: RawBlock = { count: this.blockRecords, data: Buffer.from(this.buffer.subarray(0, this.pos)) };
    this.rawBytes += this.pos;
    this.pos = 0;
    this.blockRecords = 0;
    return block;
  }

  private grow(minimum: number): void {
    const grown = Buffer.alloc(Math.max(minimum, this.buffer.length * 2));
    this.buffer.copy(grown, 0, 0, this.pos);
    this.buffer = grown;
  }

  /** Names the offending field: validation runs only after an encode failed, never per record. */
  private invalidRecord(record: unknown, cause: unknown): ModelMetricsError {
    let problem: { path: string; value: unknown; type: Type } | undefined;
    this.type.isValid(record, {
      errorHook: (path, value, type) => {
        problem ??= { path: path.join('.'), value, type };
      },
    });
    const recordName = this.type.name ?? describeType(this.type);
    const where = `record ${this.records} is not a valid ${recordName}`;
    const message =
      problem === undefined
        ? `${where}: ${(cause as Error).message}`
        : `${where}: ${problem.path === '' ? 'the record' : `field "${problem.path}"`} is ${describeValue(problem.value)}, ` +
          `expected ${describeType(problem.type)}`;
    return new ModelMetricsError(
      'E_INTERNAL',
      `${message}; this is a bug in the code producing the records`,
      problem === undefined ? {} : { field: problem.path },
      { cause },
    );
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'missing';
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return `${String(value)} (${typeof value})`;
  }
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return `${text.length > 80 ? `${text.slice(0, 77)}...` : text} (${value === null ? 'null' : typeof value})`;
}
