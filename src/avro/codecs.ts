/**
 * Block codecs of Avro 1.11 "Object Container Files > Required Codecs / Optional Codecs", keyed by
 * the name found in a header's `avro.codec`. Every codec of the spec is read (null, deflate, snappy,
 * zstandard, bzip2, xz); null, deflate, snappy and zstandard are also written (`--codec`, issue 3).
 * Nothing else names codecs.
 *
 * Libraries (README "Codecs"): deflate is Node's zlib; snappy is `snappy` (napi-rs, Rust `snap`);
 * zstandard is `@bokuweb/zstd-wasm` (the reference libzstd compiled to WebAssembly, so one pinned
 * build writes the same bytes on every platform); xz is `@napi-rs/lzma` (Rust `lzma-rs`); bzip2 is
 * `seek-bzip` (pure JavaScript). None needs a compiler or a download at install time.
 *
 * Bombs: every decompressor refuses to produce more than `maxOutputLength` bytes. deflate and bzip2
 * stop while inflating; snappy, zstandard and xz check the sizes their frame headers declare
 * (codec-frames.ts) before inflating, and their libraries cannot produce more than declared.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { init as initZstd, compress as zstdCompress, decompress as zstdDecompress } from '@bokuweb/zstd-wasm';
import { xz } from '@napi-rs/lzma';
import Bunzip from 'seek-bzip';
import { compress as snappyCompressAsync, compressSync as snappyCompress, uncompressSync as snappyUncompress } from 'snappy';
import { crc32, snappyUncompressedLength, xzStreams, zstdFrames } from './codec-frames.js';
import { corruptObject } from './container-format.js';

/** What the reader needs of a codec. `decompress` must throw a RangeError with code ERR_BUFFER_TOO_LARGE past `maxOutputLength`. */
export interface AvroDecompressor {
  /** Restores one block's serialized records, refusing to produce more than `maxOutputLength` bytes. */
  decompress(data: Buffer, maxOutputLength: number): Buffer;
}

/** A codec the job also writes output with (`--codec`). */
export interface AvroCodec extends AvroDecompressor {
  /** Compresses one block's serialized records. */
  compress(data: Buffer): Buffer;
  /** The same bytes as `compress`, computed off the main thread (libuv's pool) where the codec can. */
  compressAsync(data: Buffer): Promise<Buffer>;
}

/** The error a codec throws when a block would inflate beyond the limit (zlib's own code, reused). */
function outputTooLarge(maxOutputLength: number): RangeError {
  const error = new RangeError(`Cannot create a Buffer larger than ${maxOutputLength} bytes`);
  (error as NodeJS.ErrnoException).code = 'ERR_BUFFER_TOO_LARGE';
  return error;
}

/** True when `error` is a codec refusing to inflate beyond its `maxOutputLength`. */
export function isOutputLimitError(error: unknown): boolean {
  return error instanceof RangeError && (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
}

/** A codec's data is invalid; the reader turns this into a CorruptObjectError with the URI and the block's offset. */
function invalidData(detail: string, cause?: unknown): Error {
  return new Error(detail, cause === undefined ? undefined : { cause });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A Buffer view of a library's Uint8Array result, without copying. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

// Null prototypes, so `avro.codec` values such as "__proto__" or "toString" find nothing instead
// of an Object.prototype member (the avsc 5.7 BlockDecoder crashes on those).
const readable: Record<string, AvroDecompressor> = Object.create(null) as Record<string, AvroDecompressor>;
const writable: Record<string, AvroCodec> = Object.create(null) as Record<string, AvroCodec>;

function defineCodec(name: string, codec: AvroCodec): void {
  readable[name] = codec;
  writable[name] = codec;
}

defineCodec('null', {
  compress: (data) => data,
  compressAsync: async (data) => data,
  decompress: (data, maxOutputLength) => {
    if (data.length > maxOutputLength) throw outputTooLarge(maxOutputLength);
    return data;
  },
});

const deflateRawAsync = promisify(zlib.deflateRaw);
/** deflate level for output: zlib's default trade-off between size and speed. */
const DEFLATE_LEVEL = 6;

// Avro 1.11: "The deflate codec writes the data block using the deflate algorithm as specified in
// RFC 1951", i.e. raw DEFLATE without the zlib header and checksum.
defineCodec('deflate', {
  compress: (data) => zlib.deflateRawSync(data, { level: DEFLATE_LEVEL }),
  compressAsync: (data) => deflateRawAsync(data, { level: DEFLATE_LEVEL }),
  decompress: (data, maxOutputLength) => {
    // zlib takes a maxOutputLength of at least 1; a limit of 0 admits only an empty block.
    const out = zlib.inflateRawSync(data, { maxOutputLength: Math.max(1, maxOutputLength) });
    if (out.length > maxOutputLength) throw outputTooLarge(maxOutputLength);
    return out;
  },
});

// Avro 1.11: "The snappy codec uses Google's Snappy compression library. Each compressed block is
// followed by the 4-byte, big-endian CRC32 checksum of the uncompressed data in the block."
const SNAPPY_CRC_BYTES = 4;

function withSnappyChecksum(compressed: Buffer, data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(compressed.length + SNAPPY_CRC_BYTES);
  compressed.copy(out, 0);
  out.writeUInt32BE(crc32(data), compressed.length);
  return out;
}

defineCodec('snappy', {
  compress: (data) => withSnappyChecksum(snappyCompress(data), data),
  compressAsync: async (data) => withSnappyChecksum(await snappyCompressAsync(data), data),
  decompress: (data, maxOutputLength) => {
    if (data.length < SNAPPY_CRC_BYTES) {
      throw invalidData(`snappy block of ${data.length} bytes is shorter than its ${SNAPPY_CRC_BYTES}-byte CRC32`);
    }
    const compressed = data.subarray(0, data.length - SNAPPY_CRC_BYTES);
    // The decoder allocates the declared length up front: check it before calling it.
    if (snappyUncompressedLength(compressed) > maxOutputLength) throw outputTooLarge(maxOutputLength);
    let out: Buffer;
    try {
      // copyOutputData: a plain Buffer decodes twice as fast here as one over external memory.
      out = snappyUncompress(compressed, { asBuffer: true, copyOutputData: true }) as Buffer;
    } catch (error) {
      throw invalidData(`invalid snappy data (${messageOf(error)})`, error);
    }
    const stored = data.readUInt32BE(compressed.length);
    const computed = crc32(out);
    if (stored !== computed) {
      throw invalidData(`snappy CRC32 mismatch: stored ${hex32(stored)}, computed ${hex32(computed)} over ${out.length} uncompressed bytes`);
    }
    return out;
  },
});

// The WebAssembly module compiles once, before any block is read (top-level await: ESM).
await initZstd();

/** zstd's default level (ZSTD_CLEVEL_DEFAULT), as Python's and Java's Avro writers use by default. */
const ZSTD_LEVEL = 3;
/** Largest frame the 32-bit WebAssembly heap is asked to hold (its size_t results are 32-bit). */
const ZSTD_WASM_MAX_FRAME = 2 ** 31 - 1;
/** Names of the zstd error codes that corrupt frames produce (zstd_errors.h: values pinned since zstd 1.3.1). */
const ZSTD_ERRORS: Readonly<Record<number, string>> = {
  10: 'unknown frame prefix',
  12: 'unsupported frame version',
  14: 'unsupported frame parameter',
  16: 'window too large',
  20: 'corruption detected',
  22: 'content checksum mismatch',
  24: 'invalid literals header',
  32: 'wrong dictionary',
  64: 'out of memory',
  70: 'output larger than the frame declares',
  72: 'wrong source size',
};

/** The library reports "Failed to ... with code -N": name zstd error N when it is a known one. */
function describeZstdError(error: unknown): string {
  const message = messageOf(error);
  const code = /code -(\d+)/.exec(message);
  const name = code === null ? undefined : ZSTD_ERRORS[Number(code[1])];
  return name === undefined ? message : `${name} (zstd error ${code![1]})`;
}

// Avro 1.11: "The zstandard codec uses Facebook's Zstandard compression library."
defineCodec('zstandard', {
  compress: (data) => asBuffer(zstdCompress(data, ZSTD_LEVEL)),
  // The WebAssembly build is single-threaded: it compresses on the calling thread.
  compressAsync: async (data) => asBuffer(zstdCompress(data, ZSTD_LEVEL)),
  decompress: (data, maxOutputLength) => {
    const frames = zstdFrames(data);
    let budget = Math.min(maxOutputLength, ZSTD_WASM_MAX_FRAME);
    const parts: Buffer[] = [];
    for (const frame of frames) {
      if (frame.maxOutput > budget) throw outputTooLarge(maxOutputLength);
      let out: Buffer;
      try {
        // Output capacity is the frame's declared size, else its bound: libzstd cannot exceed it,
        // and it checks a declared size and a content checksum against what it produced.
        out = asBuffer(zstdDecompress(data.subarray(frame.start, frame.end), { defaultHeapSize: frame.maxOutput }));
      } catch (error) {
        throw invalidData(`zstandard frame at byte ${frame.start} of the block data: ${describeZstdError(error)}`, error);
      }
      budget -= out.length;
      parts.push(out);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  },
});

// Avro 1.11: "The xz codec uses the XZ compression library"; the block is one xz stream (Java's
// XZCodec writes LZMA2 with a CRC64 check). The library reads one stream per call.
readable['xz'] = {
  decompress: (data, maxOutputLength) => {
    const streams = xzStreams(data);
    const total = streams.reduce((sum, stream) => sum + stream.uncompressedSize, 0);
    if (total > maxOutputLength) throw outputTooLarge(maxOutputLength);
    const parts: Buffer[] = [];
    for (const stream of streams) {
      let out: Buffer;
      try {
        out = xz.decompressSync(data.subarray(stream.start, stream.end));
      } catch (error) {
        throw invalidData(`xz stream at byte ${stream.start} of the block data: ${messageOf(error)}`, error);
      }
      if (out.length !== stream.uncompressedSize) {
        throw invalidData(`xz stream at byte ${stream.start} decompressed to ${out.length} bytes, its LZMA2 chunks declare ${stream.uncompressedSize}`);
      }
      parts.push(out);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  },
};

/**
 * seek-bzip's output sink: grows by doubling and throws the output-limit error at the limit, so a
 * bzip2 bomb stops after `maxOutputLength` bytes (bzip2 headers do not state sizes).
 */
class BoundedByteSink {
  private buffer: Buffer;
  private length = 0;

  constructor(
    private readonly maxOutputLength: number,
    initialSize: number,
  ) {
    this.buffer = Buffer.allocUnsafe(Math.max(1, Math.min(initialSize, maxOutputLength)));
  }

  writeByte(byte: number): void {
    if (this.length === this.buffer.length) {
      if (this.length >= this.maxOutputLength) throw outputTooLarge(this.maxOutputLength);
      const grown = Buffer.allocUnsafe(Math.min(this.buffer.length * 2, this.maxOutputLength));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.buffer[this.length++] = byte;
  }

  /** The bytes written, copied when the buffer is much larger (so spare capacity is not kept alive). */
  bytes(): Buffer {
    const written = this.buffer.subarray(0, this.length);
    return this.length * 2 < this.buffer.length ? Buffer.from(written) : written;
  }
}

/** First guess of a bzip2 block's output (typical ratio), grown by doubling; never more than 8 MiB up front. */
const BZIP2_EXPECTED_RATIO = 4;
const BZIP2_MAX_INITIAL_BYTES = 8 * 1024 * 1024;

// Avro 1.11: "The bzip2 codec uses the bzip2 compression library." Block and stream CRCs are
// checked by seek-bzip; concatenated streams are read, as Python's bz2.decompress does.
readable['bzip2'] = {
  decompress: (data, maxOutputLength) => {
    const sink = new BoundedByteSink(maxOutputLength, Math.min(data.length * BZIP2_EXPECTED_RATIO, BZIP2_MAX_INITIAL_BYTES));
    try {
      Bunzip.decode(data, sink, true);
    } catch (error) {
      if (isOutputLimitError(error)) throw error;
      throw invalidData(`invalid bzip2 data (${messageOf(error)})`, error);
    }
    return sink.bytes();
  },
};

/** Names of the codecs this build reads, sorted: every codec of Avro 1.11. */
export function readableCodecs(): string[] {
  return Object.keys(readable).sort();
}

/** Names of the codecs this build writes (the values `--codec` accepts), sorted. */
export function writableCodecs(): string[] {
  return Object.keys(writable).sort();
}

/** The output codec named `name`, or undefined when this build cannot write it. */
export function findCodec(name: string): AvroCodec | undefined {
  return writable[name];
}

/** Codec names seen in the wild that are not Avro 1.11 codecs, with the way out. */
const NON_STANDARD_CODECS: Readonly<Record<string, string>> = {
  lzma: "Avro C's raw LZMA2 codec, which is not in the Avro spec; rewrite the file with avromod --codec=deflate",
};

/** The decompressor an object's header names; CorruptObjectError (naming the codec, the URI and the readable ones) when unknown. */
export function codecFor(name: string, uri: string): AvroDecompressor {
  const codec = readable[name];
  if (codec === undefined) {
    const hint = Object.hasOwn(NON_STANDARD_CODECS, name) ? ` (${NON_STANDARD_CODECS[name]})` : '';
    throw corruptObject(
      { uri, offset: 0 },
      `unknown codec ${JSON.stringify(name)} in avro.codec${hint}, expected one of ${readableCodecs().join(', ')}`,
    );
  }
  return codec;
}
