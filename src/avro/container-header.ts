/**
 * The header of an Avro 1.11 container file: magic, metadata map and sync marker, read from the
 * front of a stream with bounded retries, and interpreted (writer schema, codec, fingerprint)
 * within DecodeLimits. A bad header is a CorruptObjectError naming the object's URI and offset 0.
 */
import type { Type } from 'avsc';
import { jsonNestingDepth, parseAvroType, schemaDepth } from './avro-types.js';
import { ChunkPuller, hex } from './byte-queue.js';
import { codecFor } from './codecs.js';
import { ByteCursor, corruptObject, MAGIC, MalformedBytes, NeedMoreBytes, SYNC_SIZE, type CorruptionSite } from './container-format.js';
import { type DecodeLimits, limitText, resolveLimits } from './decode-limits.js';
import { schemaFingerprint } from './schemas.js';

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
export async function readHeader(input: ChunkPuller, uri: string, limits: DecodeLimits): Promise<ContainerHeader> {
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

