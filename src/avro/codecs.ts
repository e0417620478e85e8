/**
 * Block codecs of Avro 1.11 "Object Container Files > Required Codecs / Optional Codecs", keyed by
 * the name found in a header's `avro.codec`. Adding a codec (snappy with its CRC32, zstandard,
 * bzip2, xz) is adding one entry to `registry` below; nothing else names codecs.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { corruptObject } from './container-format.js';

/** One block codec. `decompress` must throw a RangeError with code ERR_BUFFER_TOO_LARGE past `maxOutputLength`. */
export interface AvroCodec {
  /** Compresses one block's serialized records. */
  compress(data: Buffer): Buffer;
  /** The same bytes as `compress`, computed off the main thread (libuv's pool) where the codec can. */
  compressAsync(data: Buffer): Promise<Buffer>;
  /** Restores one block's serialized records, refusing to produce more than `maxOutputLength` bytes. */
  decompress(data: Buffer, maxOutputLength: number): Buffer;
}

/** The error a codec throws when a block would inflate beyond the limit (zlib's own code, reused). */
function outputTooLarge(maxOutputLength: number): RangeError {
  const error = new RangeError(`Cannot create a Buffer larger than ${maxOutputLength} bytes`);
  (error as NodeJS.ErrnoException).code = 'ERR_BUFFER_TOO_LARGE';
  return error;
}

const deflateRawAsync = promisify(zlib.deflateRaw);

/** deflate level for output: zlib's default trade-off between size and speed. */
const DEFLATE_LEVEL = 6;

// A null prototype, so `avro.codec` values such as "__proto__" or "toString" find nothing instead
// of an Object.prototype member (the avsc 5.7 BlockDecoder crashes on those).
const registry: Record<string, AvroCodec> = Object.create(null) as Record<string, AvroCodec>;

registry['null'] = {
  compress: (data) => data,
  compressAsync: async (data) => data,
  decompress: (data, maxOutputLength) => {
    if (data.length > maxOutputLength) throw outputTooLarge(maxOutputLength);
    return data;
  },
};

// Avro 1.11: "The deflate codec writes the data block using the deflate algorithm as specified in
// RFC 1951", i.e. raw DEFLATE without the zlib header and checksum.
registry['deflate'] = {
  compress: (data) => zlib.deflateRawSync(data, { level: DEFLATE_LEVEL }),
  compressAsync: (data) => deflateRawAsync(data, { level: DEFLATE_LEVEL }),
  decompress: (data, maxOutputLength) => zlib.inflateRawSync(data, { maxOutputLength }),
};

/** Names of the codecs this build reads and writes, sorted. */
export function supportedCodecs(): string[] {
  return Object.keys(registry).sort();
}

/** The codec named `name`, or undefined when this build has none by that name. */
export function findCodec(name: string): AvroCodec | undefined {
  return registry[name];
}

/** The codec an object's header names; CorruptObjectError (naming the codec, the key and the supported ones) when unknown. */
export function codecFor(name: string, key: string): AvroCodec {
  const codec = registry[name];
  if (codec === undefined) {
    throw corruptObject(
      { key, offset: 0 },
      `unknown codec ${JSON.stringify(name)} in avro.codec, expected one of ${supportedCodecs().join(', ')}`,
    );
  }
  return codec;
}

/** True when `error` is a codec refusing to inflate beyond its `maxOutputLength`. */
export function isOutputLimitError(error: unknown): boolean {
  return error instanceof RangeError && (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
}
