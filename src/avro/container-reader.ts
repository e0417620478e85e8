/**
 * Streaming reader of Avro 1.11 "Object Container Files". The framing (header, blocks, codecs, sync
 * markers) is ours because avsc 5.7's BlockDecoder ends quietly on a truncated or empty file,
 * ignores trailing bytes, throws outside the stream on an overlong varint and trusts block counts;
 * avsc still parses schemas, resolves them and decodes records.
 *
 * Input is any AsyncIterable of byte chunks (S3 body, file stream, test array). Only the unconsumed
 * tail is kept; a block is decoded once all its bytes arrived, so memory is bounded by the largest
 * block (itself bounded by DecodeLimits).
 */
import type { Type, types } from 'avsc';
import { SchemaIncompatibleError, StorageError } from '../errors.js';
import { describeType, parseAvroType } from './avro-types.js';
import { codecFor, isOutputLimitError, type AvroCodec } from './codecs.js';
import {
  ByteCursor,
  corruptObject,
  MAGIC,
  MalformedBytes,
  MAX_VARINT_BYTES,
  NeedMoreBytes,
  SYNC_SIZE,
  type CorruptionSite,
} from './container-format.js';
import { schemaFingerprint } from './schemas.js';

/** avsc's resolver of a writer type into a reader type (opaque; pass it to `type.decode`). */
export type Resolver = ReturnType<Type['createResolver']>;

/** Bounds that keep a corrupt or hostile object from exhausting memory or CPU. */
export interface DecodeLimits {
  /** Largest header (magic, metadata, sync) accepted, in bytes. */
  maxHeaderBytes: number;
  /** Largest block data accepted as stored (compressed), in bytes; this much is buffered at most. */
  maxBlockBytes: number;
  /** Largest record count a block may declare. */
  maxBlockRecords: number;
  /** Largest block data accepted once decompressed, in bytes (guards against deflate bombs). */
  maxDecompressedBlockBytes: number;
}

/** Defaults far above what writers produce (Java and avsc write blocks of 16 KiB to a few MiB). */
export const defaultDecodeLimits: DecodeLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024 * 1024,
  maxBlockBytes: 256 * 1024 * 1024,
  maxBlockRecords: 10_000_000,
  maxDecompressedBlockBytes: 512 * 1024 * 1024,
});

/** What a container file's header says. */
export interface ContainerHeader {
  /** The parsed JSON of `avro.schema`. */
  writerSchema: unknown;
  /** avsc type parsed from `writerSchema` (unions unwrapped, timestamps as numbers). */
  writerType: Type;
  /** `avro.codec`, 'null' when absent (Avro 1.11). */
  codec: string;
  /** Every metadata entry, `avro.*` included. */
  metadata: Map<string, Buffer>;
  /** The 16-byte sync marker every block must end with. */
  sync: Buffer;
  /** Bytes the header occupies; the first block starts here. */
  headerBytes: number;
  /** Hex SHA-256 of the writer schema's Parsing Canonical Form. */
  fingerprint: string;
}

/** Options of decodeContainer. */
export interface DecodeOptions {
  /** Object key, named in every error. */
  key: string;
  /** Type records are decoded into (e.g. predictionType). */
  readerType: Type;
  limits?: Partial<DecodeLimits>;
  /** Called once, after the header is read and before any record. */
  onHeader?: (header: ContainerHeader) => void;
  /** Called after the header and after each block with the bytes of the object consumed so far. */
  onProgress?: (bytesConsumed: number) => void;
  /**
   * The object's listed size. A container file cut exactly at a block boundary is a valid shorter
   * file (the format has no trailer), so only the size the store listed can tell that bytes are missing.
   */
  expectedBytes?: number;
}

function resolveLimits(limits: Partial<DecodeLimits> | undefined): DecodeLimits {
  return {
    maxHeaderBytes: limits?.maxHeaderBytes ?? defaultDecodeLimits.maxHeaderBytes,
    maxBlockBytes: limits?.maxBlockBytes ?? defaultDecodeLimits.maxBlockBytes,
    maxBlockRecords: limits?.maxBlockRecords ?? defaultDecodeLimits.maxBlockRecords,
    maxDecompressedBlockBytes: limits?.maxDecompressedBlockBytes ?? defaultDecodeLimits.maxDecompressedBlockBytes,
  };
}

/**
 * The unconsumed bytes of a stream as a list of chunks. Bytes are copied only when a read spans
 * chunks, and then only the chunks it spans, never the whole object.
 */
class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  /** Bytes buffered and not yet consumed. */
  length = 0;
  /** Bytes consumed so far: the object offset of the first buffered byte. */
  consumed = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first `count` bytes (count ≤ length) as one Buffer, without consuming them. */
  peek(count: number): Buffer {
    let first = this.chunks[0];
    if (first === undefined) return Buffer.alloc(0);
    if (first.length - this.head < count) {
      let spanned = 0;
      let have = first.length - this.head;
      while (have < count) have += this.chunks[++spanned]!.length;
      const merged = Buffer.allocUnsafe(have);
      let pos = first.copy(merged, 0, this.head);
      for (let i = 1; i <= spanned; i++) pos += this.chunks[i]!.copy(merged, pos);
      this.chunks.splice(0, spanned + 1, merged);
      this.head = 0;
      first = merged;
    }
    return first.subarray(this.head, this.head + count);
  }

  skip(count: number): void {
    this.head += count;
    this.length -= count;
    this.consumed += count;
    while (this.chunks.length > 0 && this.head >= this.chunks[0]!.length) {
      this.head -= this.chunks[0]!.length;
      this.chunks.shift();
    }
  }
}

/** Pulls chunks from the source only when the parser needs more bytes (no read-ahead). */
class ChunkPuller {
  readonly queue = new ByteQueue();
  private readonly iterator: AsyncIterator<Uint8Array>;
  private ended = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Appends the next non-empty chunk to the queue; false once the source is exhausted. */
  async pull(): Promise<boolean> {
    while (!this.ended) {
      const next = await this.iterator.next();
      if (next.done === true) {
        this.ended = true;
        return false;
      }
      const chunk = next.value;
      if (chunk.length === 0) continue;
      this.queue.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      return true;
    }
    return false;
  }

  /** Stops the source early (destroys an S3 body or file stream) when we are done with it. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.iterator.return?.();
  }
}

function hex(bytes: Buffer): string {
  return bytes.toString('hex').replace(/(..)(?=.)/g, '$1 ');
}

/** Header fields read straight from the bytes, before the schema is interpreted. */
interface RawHeader {
  metadata: Map<string, Buffer>;
  sync: Buffer;
  headerBytes: number;
}

/** Parses the header (Avro 1.11: magic, map<bytes> metadata, 16-byte sync) from a buffer holding its start. */
function parseRawHeader(buf: Buffer, limits: DecodeLimits): RawHeader {
  const seen = Math.min(buf.length, MAGIC.length);
  if (!buf.subarray(0, seen).equals(MAGIC.subarray(0, seen))) {
    throw new MalformedBytes(
      `not an Avro container file: expected magic bytes ${hex(MAGIC)} ("Obj\\x01"), found ${hex(buf.subarray(0, seen))}`,
      0,
    );
  }
  const cursor = new ByteCursor(buf);
  cursor.bytes(MAGIC.length);
  const metadata = new Map<string, Buffer>();
  const checkLength = (length: number, what: string, at: number): void => {
    if (length < 0) throw new MalformedBytes(`negative ${what} ${length}`, at);
    if (cursor.pos + length > limits.maxHeaderBytes) {
      throw new MalformedBytes(`${what} ${length} makes the header larger than maxHeaderBytes (${limits.maxHeaderBytes})`, at);
    }
  };
  for (;;) {
    const countAt = cursor.pos;
    let count = cursor.long('metadata block count');
    if (count === 0) break;
    if (count < 0) {
      // Avro 1.11 "Complex Types > Maps": a negative count is followed by the block's byte size.
      count = -count;
      checkLength(cursor.long('metadata block size'), 'metadata block size', countAt);
    }
    // Every entry takes at least two bytes (two length varints).
    checkLength(count * 2, 'metadata entry count', countAt);
    for (let i = 0; i < count; i++) {
      const keyAt = cursor.pos;
      const keyLength = cursor.long('metadata key length');
      checkLength(keyLength, 'metadata key length', keyAt);
      const metadataKey = cursor.bytes(keyLength).toString('utf8');
      const valueAt = cursor.pos;
      const valueLength = cursor.long('metadata value length');
      checkLength(valueLength, 'metadata value length', valueAt);
      metadata.set(metadataKey, Buffer.from(cursor.bytes(valueLength)));
    }
  }
  const sync = Buffer.from(cursor.bytes(SYNC_SIZE));
  return { metadata, sync, headerBytes: cursor.pos };
}

/** Interprets the metadata: schema, codec, fingerprint. */
function interpretHeader(raw: RawHeader, key: string): ContainerHeader {
  const site: CorruptionSite = { key, offset: 0 };
  const schemaBytes = raw.metadata.get('avro.schema');
  if (schemaBytes === undefined) {
    throw corruptObject(site, 'the header has no avro.schema entry, so its records cannot be decoded');
  }
  let writerSchema: unknown;
  try {
    writerSchema = JSON.parse(schemaBytes.toString('utf8'));
  } catch (error) {
    throw corruptObject(site, `avro.schema is not valid JSON (${(error as Error).message})`, error);
  }
  let writerType: Type;
  try {
    writerType = parseAvroType(writerSchema);
  } catch (error) {
    throw corruptObject(site, `avro.schema is not a valid Avro schema (${(error as Error).message})`, error);
  }
  const codecBytes = raw.metadata.get('avro.codec');
  // Avro 1.11: "If codec is absent, it is assumed to be 'null'".
  const codec = codecBytes === undefined ? 'null' : codecBytes.toString('utf8');
  codecFor(codec, key);
  return {
    writerSchema,
    writerType,
    codec,
    metadata: raw.metadata,
    sync: raw.sync,
    headerBytes: raw.headerBytes,
    fingerprint: schemaFingerprint(writerType),
  };
}

/** Reads the header from the front of `input`, pulling only as many chunks as it needs. */
async function readHeader(input: ChunkPuller, key: string, limits: DecodeLimits): Promise<ContainerHeader> {
  const { queue } = input;
  let needed = 1;
  for (;;) {
    while (queue.length < needed) {
      if (await input.pull()) continue;
      if (queue.length === 0) {
        throw corruptObject({ key, offset: 0 }, 'the object is empty (0 bytes); a container file starts with a header');
      }
      throw corruptObject(
        { key, offset: queue.length },
        `the file ends after ${queue.length} bytes, inside its header (truncated object?)`,
      );
    }
    try {
      return interpretHeader(parseRawHeader(queue.peek(queue.length), limits), key);
    } catch (error) {
      if (error instanceof MalformedBytes) throw corruptObject({ key, offset: error.offset }, error.detail, error);
      if (!(error instanceof NeedMoreBytes)) throw error;
      if (error.needed > limits.maxHeaderBytes) {
        throw corruptObject(
          { key, offset: 0 },
          `the header is larger than maxHeaderBytes (${limits.maxHeaderBytes})`,
        );
      }
      needed = error.needed;
    }
  }
}

/** Reads just the header from the start of a stream (stops consuming as soon as it has it). */
export async function readContainerHeader(
  source: AsyncIterable<Uint8Array>,
  key: string,
  limits?: Partial<DecodeLimits>,
): Promise<ContainerHeader> {
  const input = new ChunkPuller(source);
  try {
    return await readHeader(input, key, resolveLimits(limits));
  } finally {
    await input.close();
  }
}

/** Avro 1.11 "Schema Resolution" promotions: writer types each reader type accepts besides itself. */
const PROMOTABLE_FROM: Readonly<Record<string, readonly string[]>> = {
  long: ['int'],
  float: ['int', 'long'],
  double: ['int', 'long', 'float'],
  string: ['bytes'],
  bytes: ['string'],
};

function baseTypeName(type: Type): string {
  const underlying = (type as types.LogicalType).underlyingType;
  return type.typeName.startsWith('logical:') && underlying !== undefined ? underlying.typeName : type.typeName;
}

function isUnion(type: Type): type is types.UnwrappedUnionType {
  return type.typeName.startsWith('union');
}

function isRecord(type: Type): type is types.RecordType {
  return type.typeName === 'record' || type.typeName === 'error';
}

/** " (or a type that promotes to it: int, long, float)" for a reader type that accepts promotions. */
function promotionHint(readerType: Type): string {
  const branches = isUnion(readerType) ? readerType.types : [readerType];
  const hints: string[] = [];
  for (const branch of branches) {
    const target = baseTypeName(branch);
    const sources = PROMOTABLE_FROM[target];
    if (sources === undefined) continue;
    hints.push(`${isUnion(readerType) ? target : 'it'}: ${sources.join(', ')}`);
  }
  return hints.length === 0 ? '' : ` (or a type that promotes to ${hints.join('; ')})`;
}

/** Fresh options per resolution: avsc stores a resolver registry (keyed by record names) in the object it is given. */
function resolveOptions(): { ignoreNamespaces: boolean } {
  return { ignoreNamespaces: true };
}

/** Why a writer record cannot be read as a reader record: the first offending field, by path. */
function findIncompatibleField(
  readerType: types.RecordType,
  writerType: types.RecordType,
  prefix: string,
): { field: string; detail: string } | undefined {
  for (const readerField of readerType.fields) {
    const path = `${prefix}${readerField.name}`;
    const names = [readerField.name, ...(readerField.aliases ?? [])];
    const writerField = writerType.fields.find((candidate) => names.includes(candidate.name));
    if (writerField === undefined) {
      if (readerField.defaultValue() === undefined) {
        return { field: path, detail: `field "${path}" is missing in the writer and has no default in the reader` };
      }
      continue;
    }
    try {
      readerField.type.createResolver(writerField.type, resolveOptions());
    } catch {
      if (isRecord(readerField.type) && isRecord(writerField.type)) {
        const nested = findIncompatibleField(readerField.type, writerField.type, `${path}.`);
        if (nested !== undefined) return nested;
      }
      return {
        field: path,
        detail:
          `field "${path}" is ${describeType(writerField.type)} in the writer, ` +
          `expected ${describeType(readerField.type)}${promotionHint(readerField.type)}`,
      };
    }
  }
  return undefined;
}

/** The logicalType of a field's schema JSON, looking inside a nullable union. */
function logicalTypeOf(schema: unknown): string | undefined {
  if (Array.isArray(schema)) {
    for (const branch of schema) {
      const found = logicalTypeOf(branch);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (schema !== null && typeof schema === 'object') {
    const logical = (schema as { logicalType?: unknown }).logicalType;
    return typeof logical === 'string' ? logical : undefined;
  }
  return undefined;
}

/**
 * Schema resolution ignores logical types, so a `timestamp-millis` writer field would silently be
 * read as microseconds — every delay off by a factor of 1000. A timestamp field whose writer states
 * another unit is refused; a plain long is taken to be in the reader's unit.
 */
function findTimestampUnitMismatch(readerType: Type, writerSchema: unknown): { field: string; detail: string } | undefined {
  const readerFields = (readerType.schema({ exportAttrs: true }) as { fields?: Array<{ name: string; aliases?: string[]; type: unknown }> }).fields ?? [];
  const writerFields = (writerSchema as { fields?: unknown }).fields;
  if (!Array.isArray(writerFields)) return undefined;
  for (const readerField of readerFields) {
    const expected = logicalTypeOf(readerField.type);
    if (expected === undefined || !expected.startsWith('timestamp-')) continue;
    const names = [readerField.name, ...(readerField.aliases ?? [])];
    const writerField = (writerFields as Array<{ name?: unknown; type?: unknown }>).find((f) => typeof f.name === 'string' && names.includes(f.name));
    const actual = writerField === undefined ? undefined : logicalTypeOf(writerField.type);
    if (actual !== undefined && actual !== expected) {
      return { field: readerField.name, detail: `field "${readerField.name}" is ${actual} in the writer, expected ${expected} (a long of that unit); convert the producer's timestamps` };
    }
  }
  return undefined;
}

function shortName(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/**
 * SPEC §2: the writer's record name and namespace need not match ours. Namespaces are ignored by
 * resolving with `ignoreNamespaces`; for a different name the writer type is re-parsed under the
 * reader's short name (same fields, same bytes), so the resolver stays bound to `readerType` itself.
 */
function writerNamedLikeReader(readerType: Type, header: ContainerHeader): Type {
  const writerType = header.writerType;
  if (!isRecord(readerType) || !isRecord(writerType) || writerType.name === undefined) return writerType;
  const accepted = [readerType.name ?? '', ...(readerType.aliases ?? [])].map(shortName);
  if (accepted.includes(shortName(writerType.name))) return writerType;
  const schema = header.writerSchema as Record<string, unknown>;
  const writerName = String(schema['name']);
  const renamed = writerName.slice(0, writerName.lastIndexOf('.') + 1) + shortName(readerType.name ?? '');
  try {
    return parseAvroType({ ...schema, name: renamed });
  } catch {
    // A recursive writer schema refers to its own name; resolution then reports the name mismatch.
    return writerType;
  }
}

/** Resolvers per reader type and writer fingerprint: many objects share a few writer schemas. */
const resolverCache = new WeakMap<Type, Map<string, Resolver>>();
/** Writer schemas remembered per reader type; the cache is dropped when full, so it stays bounded. */
const RESOLVER_CACHE_SIZE = 64;

/** Resolves a file's writer schema against our reader type; SchemaIncompatibleError naming key, field path, writer type and reader type. */
export function resolveWriter(readerType: Type, header: ContainerHeader, key: string): Resolver {
  let cache = resolverCache.get(readerType);
  const cached = cache?.get(header.fingerprint);
  if (cached !== undefined) return cached;
  const unitMismatch = findTimestampUnitMismatch(readerType, header.writerSchema);
  if (unitMismatch !== undefined) {
    throw new SchemaIncompatibleError(
      `object "${key}": writer schema is incompatible with ${readerType.name ?? describeType(readerType)}: ${unitMismatch.detail}; an incompatible object is never skipped`,
      { key, field: unitMismatch.field },
    );
  }
  const writerType = writerNamedLikeReader(readerType, header);
  let resolver: Resolver;
  try {
    resolver = readerType.createResolver(writerType, resolveOptions());
  } catch (error) {
    const readerName = readerType.name ?? describeType(readerType);
    const found =
      isRecord(readerType) && isRecord(writerType) ? findIncompatibleField(readerType, writerType, '') : undefined;
    const detail =
      found?.detail ??
      (isRecord(readerType) && !isRecord(writerType)
        ? `the writer schema is ${describeType(writerType)}, expected a record`
        : `${describeType(writerType)} cannot be read as ${readerName} (${(error as Error).message})`);
    throw new SchemaIncompatibleError(
      `object "${key}": writer schema is incompatible with ${readerName}: ${detail}; ` +
        'fix the producer or convert the object (an incompatible object is never skipped)',
      found === undefined ? { key } : { key, field: found.field },
      { cause: error },
    );
  }
  if (cache === undefined) {
    cache = new Map();
    resolverCache.set(readerType, cache);
  } else if (cache.size >= RESOLVER_CACHE_SIZE) {
    cache.clear();
  }
  cache.set(header.fingerprint, resolver);
  return resolver;
}

/** Reader fingerprints, computed once per type (a SHA-256 of the canonical form). */
const readerFingerprints = new WeakMap<Type, string>();

function fingerprintOf(type: Type): string {
  let fingerprint = readerFingerprints.get(type);
  if (fingerprint === undefined) {
    fingerprint = schemaFingerprint(type);
    readerFingerprints.set(type, fingerprint);
  }
  return fingerprint;
}

/** Per-object state of decodeContainer's block loop. */
interface BlockContext {
  key: string;
  header: ContainerHeader;
  codec: AvroCodec;
  readerType: Type;
  /** undefined when the writer schema equals the reader schema: the reader type decodes the bytes as is. */
  resolver: Resolver | undefined;
  limits: DecodeLimits;
}

/** Block count and size (Avro 1.11: "A long indicating the count of objects in this block", then its size). */
interface BlockHead {
  count: number;
  size: number;
  headBytes: number;
}

/** Reads the two varints starting a block; undefined at a clean end of stream. */
async function readBlockHead(input: ChunkPuller, context: BlockContext, site: CorruptionSite): Promise<BlockHead | undefined> {
  const { queue } = input;
  const { limits } = context;
  for (;;) {
    if (queue.length === 0 && !(await input.pull())) return undefined;
    const front = queue.peek(Math.min(queue.length, 2 * MAX_VARINT_BYTES));
    const cursor = new ByteCursor(front);
    let count: number;
    let size: number;
    try {
      count = cursor.long('block record count');
      size = cursor.long('block size');
    } catch (error) {
      if (error instanceof MalformedBytes) throw corruptObject(site, error.detail, error);
      if (!(error instanceof NeedMoreBytes)) throw error;
      if (await input.pull()) continue;
      throw corruptObject(
        site,
        `the file ends ${queue.length} bytes after the last complete block, inside a block header ` +
          `(truncated object, or trailing bytes ${hex(queue.peek(Math.min(queue.length, 8)))})`,
      );
    }
    if (count < 0) {
      const concatenated = front.length >= MAGIC.length && front.subarray(0, MAGIC.length).equals(MAGIC);
      throw corruptObject(
        site,
        `negative block record count ${count}` +
          (concatenated ? ' (the bytes are the magic of another container file: concatenated files are not valid Avro)' : ''),
      );
    }
    if (count > limits.maxBlockRecords) {
      throw corruptObject(site, `block declares ${count} records, more than maxBlockRecords (${limits.maxBlockRecords})`);
    }
    if (size < 0) throw corruptObject(site, `negative block size ${size}`);
    if (size > limits.maxBlockBytes) {
      throw corruptObject(site, `block declares ${size} bytes, more than maxBlockBytes (${limits.maxBlockBytes})`);
    }
    return { count, size, headBytes: cursor.pos };
  }
}

/** A block read whole, its sync marker checked and its records decompressed, not yet decoded. */
interface PreparedBlock {
  count: number;
  data: Buffer;
}

/** Reads, checks and decompresses one block; undefined at a clean end of stream. */
async function readBlock(input: ChunkPuller, context: BlockContext, site: CorruptionSite): Promise<PreparedBlock | undefined> {
  const head = await readBlockHead(input, context, site);
  if (head === undefined) return undefined;
  const { queue } = input;
  const { count, size, headBytes } = head;
  const total = headBytes + size + SYNC_SIZE;
  while (queue.length < total) {
    if (await input.pull()) continue;
    throw corruptObject(
      site,
      `the file ends ${queue.length} bytes into a block of ${total} bytes ` +
        `(${count} records in ${size} bytes plus the ${SYNC_SIZE}-byte sync marker): truncated object`,
    );
  }
  const bytes = queue.peek(total);
  const sync = bytes.subarray(headBytes + size, total);
  if (!sync.equals(context.header.sync)) {
    throw corruptObject(
      { ...site, offset: site.offset + headBytes + size },
      `sync marker mismatch: expected ${hex(context.header.sync)}, found ${hex(sync)}`,
    );
  }
  // The queue's chunks are never written to, so the view stays valid after skip.
  const data = count === 0 ? Buffer.alloc(0) : decompressBlock(bytes.subarray(headBytes, headBytes + size), context, site);
  queue.skip(total);
  return { count, data };
}

/** Decompresses a block's stored bytes within the decompressed-size limit. */
function decompressBlock(stored: Buffer, context: BlockContext, site: CorruptionSite): Buffer {
  let data: Buffer;
  try {
    data = context.codec.decompress(stored, context.limits.maxDecompressedBlockBytes);
  } catch (error) {
    if (isOutputLimitError(error)) {
      throw corruptObject(
        site,
        `block decompresses to more than maxDecompressedBlockBytes (${context.limits.maxDecompressedBlockBytes})`,
        error,
      );
    }
    throw corruptObject(site, `${context.header.codec} block cannot be decompressed (${(error as Error).message})`, error);
  }
  return data;
}

/**
 * Records decoded per yielded batch: a producer may write blocks of hundreds of thousands of
 * records (the limit is maxBlockRecords), and decoding one whole into a single array would hold
 * them all in memory at once; batches bound the decoded records alive per object.
 */
const RECORDS_PER_BATCH = 1024;

/** Decodes exactly `count` records spanning exactly the block's bytes, in batches. */
function* decodeBatches(block: PreparedBlock, context: BlockContext, site: CorruptionSite): Generator<unknown[]> {
  const { readerType, resolver } = context;
  const { count, data } = block;
  // A plain loop over type.decode: measured as fast as driving avsc's internal Tap directly
  // (record and map allocation dominate), so the public API is kept.
  let pos = 0;
  let index = 0;
  while (index < count) {
    const records: unknown[] = [];
    const end = Math.min(count, index + RECORDS_PER_BATCH);
    try {
      for (; index < end; index++) {
        const result = readerType.decode(data, pos, resolver);
        if (result.offset < 0) break;
        pos = result.offset;
        records.push(result.value);
      }
    } catch (error) {
      throw corruptObject(site, `record ${index} of ${count} cannot be decoded (${(error as Error).message})`, error);
    }
    if (index < end) break;
    yield records;
  }
  if (index < count) {
    throw corruptObject(
      site,
      `block declares ${count} records but its ${data.length} bytes end inside record ${index}`,
    );
  }
  if (pos !== data.length) {
    throw corruptObject(site, `block declares ${count} records that take ${pos} bytes, but it holds ${data.length}`);
  }
}

/** Streams the records of one container file in order, in arrays of at most RECORDS_PER_BATCH records of one block. */
export async function* decodeContainer(
  source: AsyncIterable<Uint8Array>,
  options: DecodeOptions,
): AsyncGenerator<unknown[]> {
  const { key, readerType } = options;
  const limits = resolveLimits(options.limits);
  const input = new ChunkPuller(source);
  try {
    const header = await readHeader(input, key, limits);
    input.queue.skip(header.headerBytes);
    options.onHeader?.(header);
    const resolver =
      header.fingerprint === fingerprintOf(readerType) ? undefined : resolveWriter(readerType, header, key);
    const context: BlockContext = { key, header, codec: codecFor(header.codec, key), readerType, resolver, limits };
    options.onProgress?.(input.queue.consumed);
    for (let block = 0; ; block++) {
      const site: CorruptionSite = { key, offset: input.queue.consumed, block };
      const prepared = await readBlock(input, context, site);
      if (prepared === undefined) {
        if (options.expectedBytes !== undefined && input.queue.consumed !== options.expectedBytes) {
          throw new StorageError(
            `object "${key}" ended after ${input.queue.consumed} bytes but was listed with ${options.expectedBytes}: the read was cut short or the object changed; rerun`,
            { key, offset: input.queue.consumed, operation: 'GetObject' },
          );
        }
        return;
      }
      options.onProgress?.(input.queue.consumed);
      yield* decodeBatches(prepared, context, site);
    }
  } finally {
    await input.close();
  }
}
