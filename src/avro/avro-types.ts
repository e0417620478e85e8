/**
 * How model-metrics turns Avro schemas into avsc Types, for our own schemas and for the writer
 * schemas found in file headers alike, so both sides of a resolution are parsed the same way.
 *
 * Departures from avsc's defaults, each for a reason:
 * - unions are never wrapped (`wrapUnions: false`): `["null","double"]` decodes to `null` or a number;
 * - `timestamp-micros` is kept as a plain number of microseconds instead of a Date (avsc 5.7's long
 *   writes exactly within ±2^52: it refuses 2^53 − 1 and flips the sign below −2^52; for
 *   microseconds that is the years 1827 to 2112), while the logicalType attribute still
 *   round-trips into written headers;
 * - every length and count read from the data is checked before it is used (issue 5, hostile Avro):
 *   stock avsc 5.7 trusts a map/array block count, so one corrupt varint (a count of 2^62) makes it
 *   spin for ever on a tiny buffer, and a block of 10^8 claimed items allocates them all. Strings,
 *   bytes, maps and arrays here refuse a length beyond the bytes present or beyond ValueLimits;
 * - type names are looked up in a registry without a prototype, so a writer schema naming
 *   `"toString"` or `{"type": "constructor"}` is refused instead of yielding an Object.prototype member.
 *
 * Length: a little over the ~400-line guideline because the parse options, the logical types and
 * the name rules must agree for both sides of a resolution; schema-shape facts already live in
 * schema-shape.ts.
 */
import avro from 'avsc';
import type { Schema, Type, types } from 'avsc';

/** The part of avsc's internal Tap (lib/utils.js) that the bounded readers below use. */
interface AvroTap {
  /** `utf8Slice` is Node's unchecked Buffer method, the one avsc's own readString uses. */
  buf: Buffer & { utf8Slice(start: number, end: number): string };
  pos: number;
  readLong(): number;
  skipLong(): void;
}

/** avsc's internal reader protocol: every Type and Resolver has `_read(tap)`, every Type `_skip(tap)`. */
interface TapReader {
  _read(tap: AvroTap): unknown;
  _skip(tap: AvroTap): void;
}

/** avsc's resolver of a writer type into a reader type (opaque; pass it to `type.decode`). */
export type Resolver = ReturnType<Type['createResolver']>;

/** The bounds of DecodeLimits that apply inside a record (issue 5); see DecodeLimits for their meaning. */
export interface ValueLimits {
  /** Largest string or bytes value, in bytes. */
  maxStringBytes: number;
  /** Largest item count of one array/map block, and of all arrays and maps of one record together. */
  maxCollectionItems: number;
}

/**
 * Bounds used when a Type decodes outside decodeRecords (tests, tools): the defaults of DecodeLimits
 * (container-reader.ts, which imports this module) for one value or block; nothing is counted per record.
 */
const standaloneLimits: ValueLimits = Object.freeze({ maxStringBytes: 64 * 1024 * 1024, maxCollectionItems: 10_000_000 });

/**
 * The bounds in force while a record is decoded. avsc hands its readers nothing but a tap, so they
 * live here: decodeRecords sets them for its synchronous loop and restores the standalone ones
 * before returning, so no other object's decoding can see them.
 */
const budget = {
  maxStringBytes: standaloneLimits.maxStringBytes,
  maxItems: standaloneLimits.maxCollectionItems,
  /** Items the current record may still declare across its arrays and maps. */
  itemsLeft: Number.POSITIVE_INFINITY,
  /** Items of zero-byte types (null, empty records) the current run may still declare: they cost memory but no bytes. */
  zeroWidthItemsLeft: Number.POSITIVE_INFINITY,
};

/** The block's bytes ended inside a length: the record is incomplete, as when avsc's tap runs past the end. */
class RecordCutShort extends Error {}

/** A value limit of ValueLimits was exceeded (the data may be genuine: the way out is raising the limit). */
export class ValueLimitError extends Error {
  constructor(
    readonly limit: keyof ValueLimits,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Decodes up to `count` records of `type` from `data` at `cursor.pos` into `out`, each within
 * `limits`; `cursor.pos` follows the last record decoded, so after a throw it is where the failing
 * record starts. Fewer than `count` are pushed when the data ends inside a record; a length or
 * count that cannot be right throws.
 */
export function decodeRecords(
  type: Type,
  resolver: Resolver | undefined,
  data: Buffer,
  cursor: { pos: number },
  count: number,
  limits: ValueLimits,
  out: unknown[],
): void {
  budget.maxStringBytes = limits.maxStringBytes;
  budget.maxItems = limits.maxCollectionItems;
  budget.zeroWidthItemsLeft = limits.maxCollectionItems;
  try {
    for (let i = 0; i < count; i++) {
      budget.itemsLeft = limits.maxCollectionItems;
      const result = type.decode(data, cursor.pos, resolver);
      if (result.offset < 0) break;
      cursor.pos = result.offset;
      out.push(result.value);
    }
  } catch (error) {
    // Reported by the caller like any record the data ends inside of.
    if (!(error instanceof RecordCutShort)) throw error;
  } finally {
    budget.maxStringBytes = standaloneLimits.maxStringBytes;
    budget.maxItems = standaloneLimits.maxCollectionItems;
    budget.itemsLeft = Number.POSITIVE_INFINITY;
    budget.zeroWidthItemsLeft = Number.POSITIVE_INFINITY;
  }
}

/**
 * Reads a string/bytes length (Avro 1.11 "Primitive Types": a long, then that many bytes) and
 * returns where the value ends. Nothing is allocated for a length that is not present in the buffer.
 */
function readLength(tap: AvroTap, what: 'string' | 'bytes'): number {
  const length = tap.readLong();
  const end = tap.pos + length;
  // One test on the hot path; the failure is worked out apart, so this stays small enough to inline.
  if (length < 0 || end > tap.buf.length || length > budget.maxStringBytes) refuseLength(tap, length, what);
  return end;
}

/** Throws the reason a string/bytes length read just now cannot be used. */
function refuseLength(tap: AvroTap, length: number, what: 'string' | 'bytes'): never {
  if (tap.pos > tap.buf.length) throw new RecordCutShort();
  if (length < 0) throw new Error(`negative ${what} length ${length}`);
  if (tap.pos + length > tap.buf.length) {
    throw new Error(`${what} claims ${length} bytes but only ${tap.buf.length - tap.pos} remain in the block`);
  }
  throw new ValueLimitError('maxStringBytes', `${what} of ${length} bytes is longer than maxStringBytes (${budget.maxStringBytes})`);
}

function readString(tap: AvroTap): string {
  const end = readLength(tap, 'string');
  const start = tap.pos;
  tap.pos = end;
  return tap.buf.utf8Slice(start, end);
}

function skipString(tap: AvroTap): void {
  tap.pos = readLength(tap, 'string');
}

/** A string whose length is checked before it is read. */
class BoundedStringType extends avro.types.StringType {
  // `this` may be avsc's Resolver (StringType.prototype._update copies `_read`): no state on it.
  _read(tap: AvroTap): string {
    return readString(tap);
  }

  _skip(tap: AvroTap): void {
    skipString(tap);
  }
}

/** Bytes whose length is checked before anything is allocated for them. */
class BoundedBytesType extends avro.types.BytesType {
  _read(tap: AvroTap): Buffer {
    const end = readLength(tap, 'bytes');
    // A copy, as avsc makes: a view would keep the whole decompressed block alive.
    const value = Buffer.allocUnsafe(end - tap.pos);
    tap.buf.copy(value, 0, tap.pos, end);
    tap.pos = end;
    return value;
  }

  _skip(tap: AvroTap): void {
    tap.pos = readLength(tap, 'bytes');
  }
}

/** Fewest bytes a value of each type takes, memoized; a lower bound for recursive types. */
const minBytesMemo = new WeakMap<Type, number>();

/**
 * Fewest bytes one value of `type` takes in Avro binary encoding (Avro 1.11 "Binary Encoding"):
 * 0 for null and for records of such fields, so an item count cannot always be checked against bytes.
 */
function minEncodedBytes(type: Type, visiting: Set<Type> = new Set()): number {
  const known = minBytesMemo.get(type);
  if (known !== undefined) return known;
  let bytes: number;
  switch (type.typeName) {
    case 'null':
      bytes = 0;
      break;
    case 'float':
      bytes = 4;
      break;
    case 'double':
      bytes = 8;
      break;
    case 'fixed':
      bytes = (type as types.FixedType).size;
      break;
    case 'record':
    case 'error':
      // A recursive reference counts 0: still a lower bound.
      if (visiting.has(type)) return 0;
      visiting.add(type);
      bytes = 0;
      for (const field of (type as types.RecordType).fields) bytes += minEncodedBytes(field.type, visiting);
      visiting.delete(type);
      break;
    default:
      if (type.typeName.startsWith('union')) {
        // The branch index, then the smallest branch.
        let smallest = Number.POSITIVE_INFINITY;
        for (const branch of (type as types.UnwrappedUnionType).types) smallest = Math.min(smallest, minEncodedBytes(branch, visiting));
        bytes = 1 + smallest;
      } else if (type.typeName.startsWith('logical:')) {
        bytes = minEncodedBytes((type as types.LogicalType).underlyingType, visiting);
      } else {
        // boolean, int, long, string, bytes, enum: one varint or byte; array, map: the closing 0 count.
        bytes = 1;
      }
  }
  minBytesMemo.set(type, bytes);
  return bytes;
}

/**
 * Reads the count of one map/array block (Avro 1.11 "Complex Types": a negative count is followed
 * by the block's byte size) and refuses a count that cannot be right: more than maxCollectionItems
 * in the block or in the record, more items than the remaining bytes hold, or too many zero-byte items.
 */
function readBlockCount(tap: AvroTap, minItemBytes: number, what: 'map' | 'array'): number {
  let count = tap.readLong();
  if (count === 0) return 0;
  if (count < 0) {
    count = -count;
    tap.skipLong();
  }
  // Items that take no bytes cannot be checked against the data; they are bounded per run instead.
  if (
    count > budget.maxItems ||
    count > budget.itemsLeft ||
    (minItemBytes > 0 ? count * minItemBytes > tap.buf.length - tap.pos : count > budget.zeroWidthItemsLeft)
  ) {
    refuseCount(tap, count, minItemBytes, what);
  }
  budget.itemsLeft -= count;
  if (minItemBytes === 0) budget.zeroWidthItemsLeft -= count;
  return count;
}

/** Throws the reason a map/array block count read just now cannot be used. */
function refuseCount(tap: AvroTap, count: number, minItemBytes: number, what: 'map' | 'array'): never {
  const limit = `maxCollectionItems (${budget.maxItems})`;
  if (count > budget.maxItems) throw new ValueLimitError('maxCollectionItems', `${what} block declares ${count} items, more than ${limit}`);
  if (count > budget.itemsLeft) {
    throw new ValueLimitError('maxCollectionItems', `${what} block declares ${count} items, which makes the record's arrays and maps hold more than ${limit} in total`);
  }
  if (minItemBytes > 0) {
    throw new Error(`${what} block claims ${count} items of at least ${minItemBytes} bytes but only ${Math.max(tap.buf.length - tap.pos, 0)} bytes remain`);
  }
  throw new ValueLimitError('maxCollectionItems', `${what} block declares ${count} items of a type that takes no bytes, more than ${limit} of them in one batch of records`);
}

/** A map whose reads and skips refuse impossible block counts and key lengths; values keep a plain-object shape. */
class BoundedMapType extends avro.types.MapType {
  // `this` is either the map type or, inside a resolver, avsc's Resolver whose `valuesType` is the
  // values' resolver (MapType.prototype._update copies `_read`), hence no captured state here. A key
  // takes at least its length byte, so a count is checked against one byte per entry.
  _read(tap: AvroTap): Record<string, unknown> {
    const values = this.valuesType as TapReader;
    const map: Record<string, unknown> = {};
    for (let n = readBlockCount(tap, 1, 'map'); n !== 0; n = readBlockCount(tap, 1, 'map')) {
      for (let i = 0; i < n; i++) {
        const key = readString(tap);
        const value = values._read(tap);
        if (key === '__proto__') {
          // A plain assignment would hit Object.prototype's setter and silently drop the entry.
          Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
        } else {
          map[key] = value;
        }
      }
    }
    return map;
  }

  _skip(tap: AvroTap): void {
    const values = this.valuesType as TapReader;
    for (let n = readBlockCount(tap, 1, 'map'); n !== 0; n = readBlockCount(tap, 1, 'map')) {
      for (let i = 0; i < n; i++) {
        skipString(tap);
        values._skip(tap);
      }
    }
  }
}

/**
 * Fewest bytes per item of the array read by a BoundedArrayType or by its resolver: the writer's
 * items decide, since the bytes are the writer's. Kept aside because avsc freezes its types.
 */
const arrayItemBytes = new WeakMap<object, number>();

function itemBytesOf(reader: BoundedArrayType): number {
  let bytes = arrayItemBytes.get(reader);
  if (bytes === undefined) {
    // Computed on first use: at construction a recursive items type may not be complete yet.
    bytes = minEncodedBytes(reader.itemsType);
    arrayItemBytes.set(reader, bytes);
  }
  return bytes;
}

/** An array whose reads and skips refuse impossible block counts. */
class BoundedArrayType extends avro.types.ArrayType {
  // Same `this` contract as BoundedMapType: a Resolver carries the items' resolver as `itemsType`
  // and its items' size is set by `_update` below.
  _read(tap: AvroTap): unknown[] {
    const items = this.itemsType as unknown as TapReader;
    const itemBytes = itemBytesOf(this);
    const array: unknown[] = [];
    for (let n = readBlockCount(tap, itemBytes, 'array'); n !== 0; n = readBlockCount(tap, itemBytes, 'array')) {
      for (let i = 0; i < n; i++) array.push(items._read(tap));
    }
    return array;
  }

  _skip(tap: AvroTap): void {
    const items = this.itemsType as unknown as TapReader;
    const itemBytes = itemBytesOf(this);
    for (let n = readBlockCount(tap, itemBytes, 'array'); n !== 0; n = readBlockCount(tap, itemBytes, 'array')) {
      for (let i = 0; i < n; i++) items._skip(tap);
    }
  }

  /** avsc's hook for building a resolver from a writer type; the resolver reads the writer's items. */
  _update(resolver: object, writerType: Type, opts: unknown): void {
    (avro.types.ArrayType.prototype as unknown as { _update(r: object, w: Type, o: unknown): void })._update.call(this, resolver, writerType, opts);
    if (writerType.typeName === 'array') arrayItemBytes.set(resolver, minEncodedBytes((writerType as types.ArrayType).itemsType));
  }
}

/** Type names a timestamp-micros reader accepts from a writer (Avro 1.11 promotion int → long). */
const TIMESTAMP_WRITER_TYPES = ['int', 'long', 'logical:timestamp-micros'];

/** `timestamp-micros` as a plain number: no Date conversion, logicalType kept in exported schemas. */
class TimestampMicrosType extends avro.types.LogicalType {
  constructor(schema: Schema, opts?: unknown) {
    super(schema, opts);
    // Avro 1.11 "Logical Types": an invalid logical type must be ignored; avsc falls back to the
    // underlying type when the constructor throws.
    if (this.underlyingType.typeName !== 'long') {
      throw new Error('timestamp-micros annotates a long');
    }
  }

  protected override _fromValue(value: unknown): unknown {
    return value;
  }

  protected override _toValue(value: unknown): unknown {
    return value;
  }

  protected override _resolve(writerType: Type): ((value: unknown) => unknown) | undefined {
    return TIMESTAMP_WRITER_TYPES.includes(writerType.typeName) ? (value: unknown) => value : undefined;
  }
}

/** The name avsc looks a type reference up by (lib/utils.js `qualify`): a leading dot is absolute. */
function registryName(name: string, namespace: string | undefined): string {
  if (name.includes('.')) return name.replace(/^\./, '');
  return namespace ? `${namespace}.${name}` : name;
}

/**
 * Routes string, bytes, map and array schemas to their bounded classes, whatever logicalType
 * annotates them (Avro 1.11: an unknown logical type is ignored, and avsc would then build the
 * stock class), and refuses names that would resolve to an Object.prototype member.
 */
function boundedTypesHook(schema: Schema, opts: { namespace?: string }): Type | undefined {
  if (typeof schema === 'string') {
    if (registryName(schema, opts.namespace) in Object.prototype) throw new Error(`undefined type name: ${schema}`);
    if (schema === 'string') return new BoundedStringType();
    if (schema === 'bytes') return new BoundedBytesType();
    return undefined;
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
  const typeName = (schema as { type?: unknown }).type;
  if (typeof typeName !== 'string') return undefined;
  // avsc looks `type` up in a plain object of constructors: "constructor" would build an Object.
  if (typeName in Object.prototype) throw new Error(`unknown type: ${JSON.stringify(typeName)}`);
  switch (typeName) {
    case 'string':
      return new BoundedStringType();
    case 'bytes':
      return new BoundedBytesType();
    case 'map':
      return new BoundedMapType(schema, opts);
    case 'array':
      return new BoundedArrayType(schema, opts);
    default:
      return undefined;
  }
}

/** Parses an Avro schema (JSON value) into an avsc Type the way model-metrics reads and writes data. */
export function parseAvroType(schema: unknown): Type {
  const type = avro.Type.forSchema(schema as Schema, {
    wrapUnions: false,
    logicalTypes: { 'timestamp-micros': TimestampMicrosType },
    typeHook: boundedTypesHook as (schema: Schema) => Type | undefined,
    registry: Object.create(null) as Record<string, Type>,
  });
  if (!avro.Type.isType(type)) throw new Error(`not an Avro schema: ${JSON.stringify(schema)?.slice(0, 100)}`);
  return type;
}

export { AVRO_PROMOTIONS, describeType, jsonNestingDepth, schemaDepth } from './schema-shape.js';
