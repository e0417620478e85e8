/**
 * How model-metrics turns Avro schemas into avsc Types, for our own schemas and for the writer
 * schemas found in file headers alike, so both sides of a resolution are parsed the same way.
 *
 * Three departures from avsc's defaults, each for a reason:
 * - unions are never wrapped (`wrapUnions: false`): `["null","double"]` decodes to `null` or a number;
 * - `timestamp-micros` is kept as a plain number of microseconds (safe below 2^53, i.e. until year
 *   2255) instead of a Date, while the logicalType attribute still round-trips into written headers;
 * - maps and arrays check each block's item count against the bytes left before looping: stock
 *   avsc 5.7 trusts the count, so one corrupt varint (a count of 2^62) makes it spin for ever on a
 *   tiny buffer instead of failing.
 */
import avro from 'avsc';
import type { Schema, Type } from 'avsc';

/** The part of avsc's internal Tap (lib/utils.js) that the collection guards below use. */
interface AvroTap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  skipLong(): void;
  readString(): string;
}

/** avsc's internal reader protocol: every Type and Resolver has `_read(tap)`, every Type `_skip(tap)`. */
interface TapReader {
  _read(tap: AvroTap): unknown;
  _skip(tap: AvroTap): void;
}

/**
 * Highest item count an array block may claim beyond the bytes left in the buffer. Items of a
 * zero-width type (null, an empty record) take no bytes, so a count cannot be bounded by bytes
 * alone; 2^20 keeps a corrupt count cheap to refute while allowing such arrays.
 */
const MAX_ZERO_WIDTH_ITEMS = 1 << 20;

/**
 * Reads the count of one map/array block (Avro 1.11 "Complex Types": a negative count is followed
 * by the block's byte size) and refuses a count the remaining bytes cannot hold.
 */
function readBlockCount(tap: AvroTap, minBytesPerItem: 0 | 1, what: string): number {
  let count = tap.readLong();
  if (count < 0) {
    count = -count;
    tap.skipLong();
  }
  const remaining = tap.buf.length - tap.pos;
  const limit = minBytesPerItem === 1 ? remaining : Math.max(remaining, MAX_ZERO_WIDTH_ITEMS);
  if (count > 0 && count > limit) {
    throw new Error(`${what} block claims ${count} items but only ${Math.max(remaining, 0)} bytes remain`);
  }
  return count;
}

/** A map whose reads and skips refuse impossible block counts; values keep a plain-object shape. */
class BoundedMapType extends avro.types.MapType {
  // `this` is either the map type or, inside a resolver, avsc's Resolver whose `valuesType` is the
  // values' resolver (MapType.prototype._update copies `_read`), hence no captured state here.
  _read(tap: AvroTap): Record<string, unknown> {
    const values = this.valuesType as TapReader;
    const map: Record<string, unknown> = {};
    for (let n = readBlockCount(tap, 1, 'map'); n !== 0; n = readBlockCount(tap, 1, 'map')) {
      for (let i = 0; i < n; i++) {
        const key = tap.readString();
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
        tap.readString();
        values._skip(tap);
      }
    }
  }
}

/** An array whose reads and skips refuse impossible block counts. */
class BoundedArrayType extends avro.types.ArrayType {
  // Same `this` contract as BoundedMapType: a Resolver carries the items' resolver as `itemsType`.
  _read(tap: AvroTap): unknown[] {
    const items = this.itemsType as unknown as TapReader;
    const array: unknown[] = [];
    for (let n = readBlockCount(tap, 0, 'array'); n !== 0; n = readBlockCount(tap, 0, 'array')) {
      for (let i = 0; i < n; i++) array.push(items._read(tap));
    }
    return array;
  }

  _skip(tap: AvroTap): void {
    const items = this.itemsType as unknown as TapReader;
    for (let n = readBlockCount(tap, 0, 'array'); n !== 0; n = readBlockCount(tap, 0, 'array')) {
      for (let i = 0; i < n; i++) items._skip(tap);
    }
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

/** Routes map and array schemas to their bounded classes; everything else takes avsc's path. */
function boundedCollectionsHook(schema: Schema, opts: unknown): Type | undefined {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
  const definition = schema as { type?: unknown; logicalType?: unknown };
  if (definition.logicalType !== undefined) return undefined;
  if (definition.type === 'map') return new BoundedMapType(schema, opts);
  if (definition.type === 'array') return new BoundedArrayType(schema, opts);
  return undefined;
}

/** Parses an Avro schema (JSON value) into an avsc Type the way model-metrics reads and writes data. */
export function parseAvroType(schema: unknown): Type {
  return avro.Type.forSchema(schema as Schema, {
    wrapUnions: false,
    logicalTypes: { 'timestamp-micros': TimestampMicrosType },
    typeHook: boundedCollectionsHook,
  });
}

/** A short rendering of a type for error messages: `"double"`, `["null","double"]`, a record's name. */
export function describeType(type: Type): string {
  const text = JSON.stringify(type.schema({ noDeref: true }));
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
