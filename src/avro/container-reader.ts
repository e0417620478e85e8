/**
 * Streaming reader of Avro 1.11 "Object Container Files". The framing (header, blocks, codecs, sync
 * markers) is ours because avsc 5.7's BlockDecoder ends quietly on a truncated or empty file,
 * ignores trailing bytes, throws outside the stream on an overlong varint and trusts block counts;
 * avsc still parses schemas, resolves them and decodes records.
 *
 * Input is any AsyncIterable of byte chunks (S3 body, file stream, test array). Only the unconsumed
 * tail is kept; a block is decoded once all its bytes arrived, so memory is bounded by the largest
 * block (itself bounded by DecodeLimits).
 *
 * Every damaged or hostile object (issue 5) fails with a CorruptObjectError naming the URI, the
 * header or block index and the byte offset: lengths, counts and schemas are checked against
 * DecodeLimits and against the bytes present before anything is allocated for them.
 */
import type { Type, types } from 'avsc';
import { SchemaIncompatibleError, StorageError } from '../errors.js';
import {
  AVRO_PROMOTIONS,
  decodeRecords,
  describeType,
  jsonNestingDepth,
  parseAvroType,
  schemaDepth,
  ValueLimitError,
  type Resolver,
} from './avro-types.js';
import { codecFor, isOutputLimitError, type AvroDecompressor } from './codecs.js';
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

export type { Resolver } from './avro-types.js';

/**
 * Bounds that keep a corrupt or hostile object from exhausting memory or CPU (issue 5). An object
 * past one fails as corrupt (E_CORRUPT_OBJECT), naming the limit; each has a CLI flag.
 */
export interface DecodeLimits {
  /** Largest header (magic, metadata, sync) accepted, in bytes (`--avro-max-header-mb`). */
  maxHeaderBytes: number;
  /** Largest block accepted as stored (compressed), in bytes; this much is buffered at most (`--avro-max-block-mb`). */
  maxBlockBytes: number;
  /** Largest record count a block may declare (`--avro-max-block-records`). */
  maxBlockRecords: number;
  /** Largest block accepted once decompressed, in bytes: guards against compression bombs (`--avro-max-inflated-block-mb`). */
  maxDecompressedBlockBytes: number;
  /** Largest string or bytes value in a record, in bytes (`--avro-max-string-mb`). */
  maxStringBytes: number;
  /** Largest item count of one array/map block, and of all arrays and maps of one record together (`--avro-max-items`). */
  maxCollectionItems: number;
  /** Deepest nesting of the writer schema: records, arrays, maps, unions, default values (`--avro-max-schema-depth`). */
  maxSchemaDepth: number;
}

/**
 * Defaults far above what writers produce: Java and avsc write headers of a few KiB and blocks of
 * 16 KiB to a few MiB, real schemas nest about ten levels; yet low enough that one object cannot
 * take more than a few GiB of memory (10^8 items of one array would).
 */
export const defaultDecodeLimits: DecodeLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024 * 1024,
  maxBlockBytes: 256 * 1024 * 1024,
  maxBlockRecords: 10_000_000,
  maxDecompressedBlockBytes: 512 * 1024 * 1024,
  maxStringBytes: 64 * 1024 * 1024,
  maxCollectionItems: 10_000_000,
  maxSchemaDepth: 128,
});

/** The flag that raises each limit, named in the message of an object past it (the way out for genuine data). */
const limitFlags: Readonly<Record<keyof DecodeLimits, string>> = {
  maxHeaderBytes: '--avro-max-header-mb',
  maxBlockBytes: '--avro-max-block-mb',
  maxBlockRecords: '--avro-max-block-records',
  maxDecompressedBlockBytes: '--avro-max-inflated-block-mb',
  maxStringBytes: '--avro-max-string-mb',
  maxCollectionItems: '--avro-max-items',
  maxSchemaDepth: '--avro-max-schema-depth',
};

/** "maxBlockBytes (268435456; raise it with --avro-max-block-mb if the object is genuine)". */
function limitText(limits: DecodeLimits, name: keyof DecodeLimits): string {
  return `${name} (${limits[name]}; raise it with ${limitFlags[name]} if the object is genuine)`;
}

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
  /** The object's full URI (`store.uriOf(key)`), named in every error. */
  uri: string;
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
  const resolved = { ...defaultDecodeLimits };
  for (const name of Object.keys(defaultDecodeLimits) as Array<keyof DecodeLimits>) {
    const value = limits?.[name];
    if (value !== undefined) resolved[name] = value;
  }
  return resolved;
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

/**
 * Most metadata entries a header may hold. Writers put a handful there (avro.schema, avro.codec, a
 * few of their own), but each entry costs a string and a Buffer on the heap: 16 MiB of tiny entries
 * would take gigabytes and half a minute to read. Far above any writer, far below that.
 */
const MAX_METADATA_ENTRIES = 10_000;

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
  /** Refuses a negative length, or one that would take the header past maxHeaderBytes before its bytes are read. */
  const checkLength = (length: number, what: string, at: number, bytes = length): void => {
    if (length < 0) throw new MalformedBytes(`negative ${what} ${length}`, at);
    if (cursor.pos + bytes > limits.maxHeaderBytes) {
      throw new MalformedBytes(`${what} ${length} makes the header larger than ${limitText(limits, 'maxHeaderBytes')}`, at);
    }
  };
  let entries = 0;
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
    checkLength(count, 'metadata entry count', countAt, count * 2);
    entries += count;
    if (entries > MAX_METADATA_ENTRIES) {
      throw new MalformedBytes(`the metadata holds more than ${MAX_METADATA_ENTRIES} entries (a writer puts a handful there)`, countAt);
    }
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
  if (cursor.pos + SYNC_SIZE > limits.maxHeaderBytes) {
    throw new MalformedBytes(`the header is larger than ${limitText(limits, 'maxHeaderBytes')}`, 0);
  }
  const sync = Buffer.from(cursor.bytes(SYNC_SIZE));
  return { metadata, sync, headerBytes: cursor.pos };
}

/**
 * Levels of JSON a schema within maxSchemaDepth can take: schemaDepth counts a record field one
 * level although its JSON nests three deep (the fields array, the field object, its type).
 */
const JSON_LEVELS_PER_SCHEMA_LEVEL = 3;

/** Interprets the metadata: schema, codec, fingerprint. */
function interpretHeader(raw: RawHeader, uri: string, limits: DecodeLimits): ContainerHeader {
  const site: CorruptionSite = { uri, offset: 0 };
  const schemaBytes = raw.metadata.get('avro.schema');
  if (schemaBytes === undefined) {
    throw corruptObject(site, 'the header has no avro.schema entry, so its records cannot be decoded');
  }
  const tooDeep = `avro.schema nests deeper than ${limitText(limits, 'maxSchemaDepth')}`;
  if (jsonNestingDepth(schemaBytes, JSON_LEVELS_PER_SCHEMA_LEVEL * limits.maxSchemaDepth) > JSON_LEVELS_PER_SCHEMA_LEVEL * limits.maxSchemaDepth) {
    throw corruptObject(site, tooDeep);
  }
  let writerSchema: unknown;
  try {
    writerSchema = JSON.parse(schemaBytes.toString('utf8'));
  } catch (error) {
    throw corruptObject(site, `avro.schema is not valid JSON (${(error as Error).message})`, error);
  }
  const depth = schemaDepth(writerSchema, limits.maxSchemaDepth);
  if (depth > limits.maxSchemaDepth) throw corruptObject(site, tooDeep);
  const codecBytes = raw.metadata.get('avro.codec');
  // Avro 1.11: "If codec is absent, it is assumed to be 'null'".
  const codec = codecBytes === undefined ? 'null' : codecBytes.toString('utf8');
  codecFor(codec, uri);
  let writerType: Type;
  let fingerprint: string;
  try {
    writerType = parseAvroType(writerSchema);
    fingerprint = schemaFingerprint(writerType);
  } catch (error) {
    throw corruptObject(site, `avro.schema is not a valid Avro schema (${(error as Error).message})`, error);
  }
  return { writerSchema, writerType, codec, metadata: raw.metadata, sync: raw.sync, headerBytes: raw.headerBytes, fingerprint };
}

/**
 * Reads the header from the front of `input`. The header's length is only known once it is parsed,
 * so a parse that runs out of bytes is retried with more; each retry waits for at least twice the
 * bytes of the last one, so a header of many small entries costs a few parses, not one per chunk
 * (which made a 6 MB header take 80 s). It reads at most about twice the header.
 */
async function readHeader(input: ChunkPuller, uri: string, limits: DecodeLimits): Promise<ContainerHeader> {
  const { queue } = input;
  /** Bytes the next parse cannot do without. */
  let needed = 1;
  /** Bytes the last parse saw. */
  let attempted = 0;
  for (;;) {
    const wanted = Math.max(needed, Math.min(2 * attempted, limits.maxHeaderBytes));
    while (queue.length < wanted) {
      if (await input.pull()) continue;
      if (queue.length >= needed) break;
      if (queue.length === 0) {
        throw corruptObject({ uri, offset: 0 }, 'the object is empty (0 bytes); a container file starts with a header');
      }
      throw corruptObject(
        { uri, offset: queue.length },
        `the file ends after ${queue.length} bytes, inside its header (truncated object?)`,
      );
    }
    attempted = queue.length;
    let raw: RawHeader;
    try {
      raw = parseRawHeader(queue.peek(queue.length), limits);
    } catch (error) {
      if (error instanceof MalformedBytes) throw corruptObject({ uri, offset: error.offset }, error.detail, error);
      if (!(error instanceof NeedMoreBytes)) throw error;
      if (error.needed > limits.maxHeaderBytes) {
        throw corruptObject({ uri, offset: 0 }, `the header is larger than ${limitText(limits, 'maxHeaderBytes')}`);
      }
      needed = error.needed;
      continue;
    }
    return interpretHeader(raw, uri, limits);
  }
}

/** Reads just the header from the start of a stream (stops consuming as soon as it has it). */
export async function readContainerHeader(
  source: AsyncIterable<Uint8Array>,
  uri: string,
  limits?: Partial<DecodeLimits>,
): Promise<ContainerHeader> {
  const input = new ChunkPuller(source);
  try {
    return await readHeader(input, uri, resolveLimits(limits));
  } finally {
    await input.close();
  }
}


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
    const sources = AVRO_PROMOTIONS[target];
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

/** A reader field holding a timestamp: its name, the names it matches and its unit. */
interface TimestampField {
  name: string;
  names: string[];
  logicalType: string;
}

/** The timestamp fields of each reader type, found once (a reader's schema never changes). */
const readerTimestampFields = new WeakMap<Type, TimestampField[]>();

function timestampFieldsOf(readerType: Type): TimestampField[] {
  let found = readerTimestampFields.get(readerType);
  if (found === undefined) {
    const fields = (readerType.schema({ exportAttrs: true }) as { fields?: Array<{ name: string; aliases?: string[]; type: unknown }> }).fields ?? [];
    found = [];
    for (const field of fields) {
      const logicalType = logicalTypeOf(field.type);
      if (logicalType !== undefined && logicalType.startsWith('timestamp-')) found.push({ name: field.name, names: [field.name, ...(field.aliases ?? [])], logicalType });
    }
    readerTimestampFields.set(readerType, found);
  }
  return found;
}

/**
 * Schema resolution ignores logical types, so a `timestamp-millis` writer field would silently be
 * read as microseconds — every delay off by a factor of 1000. A timestamp field whose writer states
 * another unit is refused; a plain long is taken to be in the reader's unit. The Parsing Canonical
 * Form drops logicalType, so this is checked for every object, whatever its fingerprint.
 */
function checkTimestampUnits(readerType: Type, header: ContainerHeader, uri: string): void {
  const writerFields = (header.writerSchema as { fields?: unknown }).fields;
  if (!Array.isArray(writerFields)) return;
  for (const readerField of timestampFieldsOf(readerType)) {
    const writerField = (writerFields as Array<{ name?: unknown; type?: unknown } | null>).find(
      (f) => typeof f?.name === 'string' && readerField.names.includes(f.name),
    );
    const actual = writerField === undefined || writerField === null ? undefined : logicalTypeOf(writerField.type);
    if (actual !== undefined && actual !== readerField.logicalType) {
      throw new SchemaIncompatibleError(
        `object "${uri}": writer schema is incompatible with ${readerType.name ?? describeType(readerType)}: ` +
          `field "${readerField.name}" is ${actual} in the writer, expected ${readerField.logicalType} (a long of that unit); ` +
          "convert the producer's timestamps; an incompatible object is never skipped",
        { uri, field: readerField.name },
      );
    }
  }
}

function shortName(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/**
 * A copy of a schema whose record fields named like Object.prototype members ("constructor",
 * "toString", "__proto__") get a trailing "_" until unique; undefined when it has none. avsc 5.7
 * keys fields by name in plain objects when it resolves records (RecordType._update) and throws a
 * TypeError on such a name. Field names do not change the bytes, and no reader of ours has such a
 * field, so the renamed writer fields are skipped exactly as the originals would be.
 */
function withoutPrototypeFieldNames(schema: unknown): unknown {
  let changed = false;
  const copy = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(copy);
    if (value === null || typeof value !== 'object') return value;
    const result: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const child of ['type', 'items', 'values']) if (child in result) result[child] = copy(result[child]);
    const fields = result['fields'];
    if (Array.isArray(fields)) {
      const taken = new Set(fields.map((field) => (field as { name?: unknown } | null)?.name));
      result['fields'] = fields.map((field: unknown) => {
        if (field === null || typeof field !== 'object') return field;
        const renamed: Record<string, unknown> = { ...(field as Record<string, unknown>), type: copy((field as { type?: unknown }).type) };
        const original = renamed['name'];
        if (typeof original === 'string' && original in Object.prototype) {
          changed = true;
          let name = `${original}_`;
          while (taken.has(name) || name in Object.prototype) name = `${name}_`;
          taken.add(name);
          renamed['name'] = name;
        }
        return renamed;
      });
    }
    return result;
  };
  const result = copy(schema);
  return changed ? result : undefined;
}

/**
 * The writer type to resolve against `readerType`. SPEC §2: the writer's record name and namespace
 * need not match ours. Namespaces are ignored by resolving with `ignoreNamespaces`; for a different
 * name the writer type is re-parsed under the reader's short name (same fields, same bytes), so the
 * resolver stays bound to `readerType` itself. Fields avsc cannot resolve by name are renamed too.
 */
function writerNamedLikeReader(readerType: Type, header: ContainerHeader): Type {
  const writerType = header.writerType;
  if (!isRecord(readerType) || !isRecord(writerType) || writerType.name === undefined) return writerType;
  let schema = (withoutPrototypeFieldNames(header.writerSchema) ?? header.writerSchema) as Record<string, unknown>;
  const accepted = [readerType.name ?? '', ...(readerType.aliases ?? [])].map(shortName);
  if (!accepted.includes(shortName(writerType.name))) {
    const writerName = String(schema['name']);
    schema = { ...schema, name: writerName.slice(0, writerName.lastIndexOf('.') + 1) + shortName(readerType.name ?? '') };
  }
  if (schema === header.writerSchema) return writerType;
  try {
    return parseAvroType(schema);
  } catch {
    // A recursive writer schema refers to its own name; resolution then reports the name mismatch.
    return writerType;
  }
}

/** Resolvers per reader type and writer fingerprint: many objects share a few writer schemas. */
const resolverCache = new WeakMap<Type, Map<string, Resolver>>();
/** Writer schemas remembered per reader type; the cache is dropped when full, so it stays bounded. */
const RESOLVER_CACHE_SIZE = 64;

/** Resolves a file's writer schema against our reader type; SchemaIncompatibleError naming the URI, field path, writer type and reader type. */
export function resolveWriter(readerType: Type, header: ContainerHeader, uri: string): Resolver {
  checkTimestampUnits(readerType, header, uri);
  let cache = resolverCache.get(readerType);
  const cached = cache?.get(header.fingerprint);
  if (cached !== undefined) return cached;
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
      `object "${uri}": writer schema is incompatible with ${readerName}: ${detail}; ` +
        'fix the producer or convert the object (an incompatible object is never skipped)',
      found === undefined ? { uri } : { uri, field: found.field },
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

/** What the block loop's framing checks need of an object. */
interface FramingContext {
  uri: string;
  header: ContainerHeader;
  limits: DecodeLimits;
}

/** Block count and size (Avro 1.11: "A long indicating the count of objects in this block", then its size). */
interface BlockHead {
  count: number;
  size: number;
  headBytes: number;
}

/** Reads the two varints starting a block; undefined at a clean end of stream. */
async function readBlockHead(input: ChunkPuller, context: FramingContext, site: CorruptionSite): Promise<BlockHead | undefined> {
  const { queue } = input;
  const { limits } = context;
  if (queue.length === 0 && !(await input.pull())) return undefined;
  // Two varints of at most 10 bytes each, so that much is in hand (unless the file ends first);
  // it also holds the 4 bytes that tell another file's magic apart.
  while (queue.length < 2 * MAX_VARINT_BYTES && (await input.pull()));
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
    throw corruptObject(site, `block declares ${count} records, more than ${limitText(limits, 'maxBlockRecords')}`);
  }
  if (size < 0) throw corruptObject(site, `negative block size ${size}`);
  if (size > limits.maxBlockBytes) {
    throw corruptObject(site, `block declares ${size} bytes, more than ${limitText(limits, 'maxBlockBytes')}`);
  }
  return { count, size, headBytes: cursor.pos };
}

/** A block decompressed, not yet decoded. */
interface PreparedBlock {
  count: number;
  data: Buffer;
}

/** Reads one block and checks its framing and sync marker; undefined at a clean end of stream. */
async function readBlock(input: ChunkPuller, context: FramingContext, site: CorruptionSite): Promise<{ count: number; stored: Buffer } | undefined> {
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
  // The queue's chunks are never written to, so the view stays valid after skip. A block of 0
  // records is decompressed too: it must hold no record bytes (decodeBatches checks), whatever its codec.
  queue.skip(total);
  return { count, stored: bytes.subarray(headBytes, headBytes + size) };
}

/** Decompresses a block's stored bytes within the decompressed-size limit. */
function decompressBlock(stored: Buffer, context: BlockDecoder, site: CorruptionSite): Buffer {
  let data: Buffer;
  try {
    data = context.codec.decompress(stored, context.limits.maxDecompressedBlockBytes);
  } catch (error) {
    if (isOutputLimitError(error)) {
      throw corruptObject(site, `block decompresses to more than ${limitText(context.limits, 'maxDecompressedBlockBytes')}`, error);
    }
    // Any other codec failure (bad data, bad checksum) is the object's: the codec's message is the reason.
    throw corruptObject(site, `${context.header.codec} block cannot be decompressed (${errorText(error)})`, error);
  }
  return data;
}

/**
 * Records decoded per yielded batch: a producer may write blocks of hundreds of thousands of
 * records (the limit is maxBlockRecords), and decoding one whole into a single array would hold
 * them all in memory at once; batches bound the decoded records alive per object.
 */
const RECORDS_PER_BATCH = 1024;

/** The message of anything thrown, including non-Error values and errors without a message. */
function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error);
}

/** Decodes exactly `count` records spanning exactly the block's bytes, in batches. */
function* decodeBatches(block: PreparedBlock, context: BlockDecoder, site: CorruptionSite): Generator<unknown[]> {
  const { readerType, resolver, limits } = context;
  const { count, data } = block;
  // A plain loop over type.decode: measured as fast as driving avsc's internal Tap directly
  // (record and map allocation dominate), so the public API is kept.
  const cursor = { pos: 0 };
  let index = 0;
  while (index < count) {
    const records: unknown[] = [];
    const end = Math.min(count, index + RECORDS_PER_BATCH);
    try {
      decodeRecords(readerType, resolver, data, cursor, end - index, limits, records);
    } catch (error) {
      // A stack overflow (a recursive writer type nested deeper than the stack) lands here too.
      const failed = index + records.length;
      const way = error instanceof ValueLimitError ? ` (raise it with ${limitFlags[error.limit]} if the object is genuine)` : '';
      throw corruptObject(
        site,
        `record ${failed} of ${count}, which starts at byte ${cursor.pos} of the block's ${data.length} decoded bytes, cannot be decoded (${errorText(error)})${way}`,
        error,
      );
    }
    index += records.length;
    if (index < end) break;
    yield records;
  }
  if (index < count) {
    throw corruptObject(site, `block declares ${count} records but its ${data.length} bytes end inside record ${index}`);
  }
  if (cursor.pos !== data.length) {
    throw corruptObject(site, `block declares ${count} records that take ${cursor.pos} bytes, but it holds ${data.length}`);
  }
}

/** One block of an object as stored: framing and sync marker checked, not yet decompressed. */
export interface StoredBlock {
  /** The object's header (the first block carries it like every other one). */
  header: ContainerHeader;
  /** Whether the writer schema differs from the reader's (its resolution was checked when the header was read). */
  resolved: boolean;
  count: number;
  /** The block's compressed records (a view into the read buffer: copy it before keeping it). */
  stored: Buffer;
  site: CorruptionSite & { block: number };
}

/**
 * Reads one container file block by block without decompressing or decoding: the header, the
 * writer schema's resolution (an incompatible one throws here), every block's framing and sync
 * marker, and the listed size. decodeContainer decodes what this yields; the worker pool decodes
 * the blocks elsewhere (decodeStoredBlock).
 */
export async function* readStoredBlocks(source: AsyncIterable<Uint8Array>, options: DecodeOptions): AsyncGenerator<StoredBlock> {
  const { uri, readerType } = options;
  const limits = resolveLimits(options.limits);
  const input = new ChunkPuller(source);
  try {
    const header = await readHeader(input, uri, limits);
    input.queue.skip(header.headerBytes);
    options.onHeader?.(header);
    const resolved = header.fingerprint !== fingerprintOf(readerType);
    if (resolved) resolveWriter(readerType, header, uri);
    else checkTimestampUnits(readerType, header, uri);
    const framing = { uri, header, limits };
    options.onProgress?.(input.queue.consumed);
    for (let block = 0; ; block++) {
      const site = { uri, offset: input.queue.consumed, block };
      const raw = await readBlock(input, framing, site);
      const { consumed } = input.queue;
      if (raw === undefined) {
        if (options.expectedBytes !== undefined && consumed !== options.expectedBytes) {
          throw new StorageError(
            `object "${uri}" ended after ${consumed} bytes but was listed with ${options.expectedBytes}: the read was cut short or the object changed; rerun`,
            { uri, offset: consumed, operation: 'GetObject' },
          );
        }
        return;
      }
      if (options.expectedBytes !== undefined && consumed > options.expectedBytes) {
        // Checked before the block's records are used: they are not part of the object that was listed.
        throw new StorageError(
          `object "${uri}" holds more than the ${options.expectedBytes} bytes it was listed with (block ${block} ends at byte ${consumed}): the object changed; rerun`,
          { uri, offset: site.offset, block, operation: 'GetObject' },
        );
      }
      options.onProgress?.(consumed);
      yield { header, resolved, count: raw.count, stored: raw.stored, site };
    }
  } finally {
    await input.close();
  }
}

/** What decoding a stored block needs: the reader type, the writer's resolution, the limits. */
export interface BlockDecoder {
  header: Pick<ContainerHeader, 'codec' | 'fingerprint'>;
  codec: AvroDecompressor;
  readerType: Type;
  resolver: Resolver | undefined;
  limits: DecodeLimits;
}

/** The decoder of an object's blocks (its header already checked by readStoredBlocks). */
export function blockDecoder(readerType: Type, header: ContainerHeader, uri: string, limits: Partial<DecodeLimits> | undefined): BlockDecoder {
  const resolver = header.fingerprint === fingerprintOf(readerType) ? undefined : resolveWriter(readerType, header, uri);
  return { header, codec: codecFor(header.codec, uri), readerType, resolver, limits: resolveLimits(limits) };
}

/** Decompresses and decodes one stored block, in arrays of at most RECORDS_PER_BATCH records. */
export function* decodeStoredBlock(decoder: BlockDecoder, block: Pick<StoredBlock, 'count' | 'stored' | 'site'>): Generator<unknown[]> {
  const data = decompressBlock(block.stored, decoder, block.site);
  yield* decodeBatches({ count: block.count, data }, decoder, block.site);
}

/** Streams the records of one container file in order, in arrays of at most RECORDS_PER_BATCH records of one block. */
export async function* decodeContainer(
  source: AsyncIterable<Uint8Array>,
  options: DecodeOptions,
): AsyncGenerator<unknown[]> {
  let decoder: BlockDecoder | undefined;
  for await (const block of readStoredBlocks(source, options)) {
    decoder ??= blockDecoder(options.readerType, block.header, options.uri, options.limits);
    yield* decodeStoredBlock(decoder, block);
  }
}
