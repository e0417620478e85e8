/**
 * What compressed Avro blocks declare about themselves, read from their frame headers before
 * anything is inflated: the uncompressed size of a snappy block, the frames of a zstandard block and
 * the streams of an xz block with the sizes they can produce. codecs.ts checks these against the
 * reader's maxDecompressedBlockBytes first, so a decompression bomb is refused without being
 * inflated (issue 3), and hands each library exactly one frame or stream.
 */
import zlib from 'node:zlib';

/** Bytes that are not a valid frame of the codec; `offset` is relative to the block's data. */
export class FrameFormatError extends Error {
  constructor(
    detail: string,
    readonly offset: number,
  ) {
    // The name stays "Error": the reader quotes the message inside its own corrupt-object message.
    super(`${detail} at byte ${offset} of the block data`);
  }
}

function need(data: Buffer, pos: number, count: number, what: string): void {
  if (pos + count > data.length) {
    throw new FrameFormatError(`the data ends inside ${what} (${count} bytes needed, ${Math.max(0, data.length - pos)} left)`, pos);
  }
}

function hex(value: number, digits = 2): string {
  return `0x${value.toString(16).padStart(digits, '0')}`;
}

// CRC-32 (ISO-HDLC, the zlib and java.util.zip one) in JavaScript, slicing by 8 bytes: zlib.crc32
// arrived in Node 20.15 and 22.2, and the job supports every Node 20.
const CRC_TABLES: Int32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Int32Array(256));
  const first = tables[0]!;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    first[n] = c;
  }
  for (let t = 1; t < 8; t++) {
    const previous = tables[t - 1]!;
    const table = tables[t]!;
    for (let n = 0; n < 256; n++) table[n] = first[previous[n]! & 0xff]! ^ (previous[n]! >>> 8);
  }
  return tables;
})();

/** CRC-32 of `data` computed in JavaScript (about 0.5 to 1 GB/s): what `crc32` uses where zlib has none. */
export function portableCrc32(data: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES as [Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array];
  let c = -1;
  let i = 0;
  const end8 = data.length - (data.length % 8);
  for (; i < end8; i += 8) {
    const a = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    c =
      t7[a & 0xff]! ^ t6[(a >>> 8) & 0xff]! ^ t5[(a >>> 16) & 0xff]! ^ t4[a >>> 24]! ^
      t3[data[i + 4]!]! ^ t2[data[i + 5]!]! ^ t1[data[i + 6]!]! ^ t0[data[i + 7]!]!;
  }
  for (; i < data.length; i++) c = t0[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/**
 * CRC-32 of `data` as an unsigned 32-bit number (Avro 1.11 snappy: "the 4-byte, big-endian CRC32
 * checksum"): zlib's (about 3 GB/s, the cost of snappy reads) where Node has it, else portableCrc32.
 */
export const crc32: (data: Uint8Array) => number =
  typeof zlib.crc32 === 'function' ? (data) => zlib.crc32(data) : portableCrc32;

/**
 * The uncompressed length a raw snappy stream starts with ("a varint-encoded little-endian uint32",
 * snappy format_description.txt), which the decoder allocates up front.
 */
export function snappyUncompressedLength(data: Buffer): number {
  let value = 0;
  for (let i = 0; i < 5; i++) {
    need(data, i, 1, 'the snappy uncompressed-length varint');
    const byte = data[i]!;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) {
      if (value > 0xffffffff) throw new FrameFormatError(`snappy uncompressed length ${value} does not fit in 32 bits`, 0);
      return value;
    }
  }
  throw new FrameFormatError('snappy uncompressed-length varint is longer than 5 bytes', 0);
}

/** One zstandard frame of a block (RFC 8878 §3.1.1), located and bounded by its headers. */
export interface ZstdFrame {
  /** Offset of the frame's magic number in the block data. */
  start: number;
  /** Offset just past the frame (its checksum included). */
  end: number;
  /** Frame_Content_Size when the header has it (Python's one-shot compressor writes it; Java's stream does not). */
  contentSize: number | undefined;
  /** Most bytes the frame can produce: contentSize, else the sum of its blocks' largest outputs. */
  maxOutput: number;
}

const ZSTD_MAGIC = 0xfd2fb528;
/** RFC 8878 §3.1.2: skippable frames carry 0x184D2A50 to 0x184D2A5F. */
const ZSTD_SKIPPABLE_MASK = 0xfffffff0;
const ZSTD_SKIPPABLE_MAGIC = 0x184d2a50;
/** RFC 8878 §3.1.1.2: Block_Maximum_Size is at most 128 KiB. */
const ZSTD_BLOCK_SIZE_MAX = 128 * 1024;

/**
 * The frames of a zstandard block, skippable frames left out. A block without Frame_Content_Size
 * is bounded by its blocks: raw and RLE blocks state their output, a compressed block yields at most
 * Block_Maximum_Size. Avro writers compress a block in one call, so their compressed blocks are full
 * (128 KiB) and the bound is within one block of the truth.
 */
export function zstdFrames(data: Buffer): ZstdFrame[] {
  const frames: ZstdFrame[] = [];
  let pos = 0;
  while (pos < data.length) {
    need(data, pos, 4, 'a zstandard frame magic number');
    const magic = data.readUInt32LE(pos);
    if (((magic & ZSTD_SKIPPABLE_MASK) >>> 0) === ZSTD_SKIPPABLE_MAGIC) {
      need(data, pos + 4, 4, 'a skippable frame size');
      const size = data.readUInt32LE(pos + 4);
      need(data, pos + 8, size, 'a skippable frame');
      pos += 8 + size;
      continue;
    }
    if (magic !== ZSTD_MAGIC) {
      throw new FrameFormatError(`expected a zstandard frame (magic ${hex(ZSTD_MAGIC, 8)}), found ${hex(magic, 8)}`, pos);
    }
    const frame = readZstdFrame(data, pos);
    frames.push(frame);
    pos = frame.end;
  }
  if (frames.length === 0) throw new FrameFormatError('no zstandard frame in the block', 0);
  return frames;
}

function readZstdFrame(data: Buffer, start: number): ZstdFrame {
  let pos = start + 4;
  need(data, pos, 1, 'a zstandard frame header');
  const descriptor = data[pos++]!;
  const contentSizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const hasChecksum = (descriptor >> 2) & 1;
  const dictionaryFlag = descriptor & 3;
  if ((descriptor >> 3) & 1) throw new FrameFormatError('zstandard frame header has its reserved bit set', start + 4);
  let windowSize = 0;
  if (singleSegment === 0) {
    need(data, pos, 1, 'a zstandard window descriptor');
    const windowDescriptor = data[pos++]!;
    const windowBase = 2 ** (10 + (windowDescriptor >> 3));
    windowSize = windowBase + (windowBase / 8) * (windowDescriptor & 7);
  }
  const dictionaryBytes = [0, 1, 2, 4][dictionaryFlag]!;
  need(data, pos, dictionaryBytes, 'a zstandard dictionary id');
  const dictionaryId = dictionaryBytes === 0 ? 0 : data.readUIntLE(pos, dictionaryBytes);
  if (dictionaryId !== 0) {
    throw new FrameFormatError(`zstandard frame needs dictionary ${dictionaryId}, but Avro's zstandard codec uses none`, pos);
  }
  pos += dictionaryBytes;
  const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][contentSizeFlag]!;
  need(data, pos, contentSizeBytes, 'a zstandard frame content size');
  let contentSize: number | undefined;
  if (contentSizeBytes === 8) contentSize = Number(data.readBigUInt64LE(pos));
  else if (contentSizeBytes === 2) contentSize = data.readUInt16LE(pos) + 256;
  else if (contentSizeBytes > 0) contentSize = data.readUIntLE(pos, contentSizeBytes);
  pos += contentSizeBytes;
  if (singleSegment) windowSize = contentSize!;
  const blockMaximum = Math.min(windowSize, ZSTD_BLOCK_SIZE_MAX);
  let blocksOutput = 0;
  for (let last = false; !last; ) {
    need(data, pos, 3, 'a zstandard block header');
    const header = data.readUIntLE(pos, 3);
    last = (header & 1) === 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw new FrameFormatError('zstandard block has the reserved block type 3', pos);
    if (size > blockMaximum) {
      throw new FrameFormatError(`zstandard block of ${size} bytes exceeds the frame's Block_Maximum_Size ${blockMaximum}`, pos);
    }
    pos += 3;
    // Raw: `size` bytes copied. RLE: one byte repeated `size` times. Compressed: `size` stored bytes.
    const stored = type === 1 ? 1 : size;
    need(data, pos, stored, 'a zstandard block');
    pos += stored;
    blocksOutput += type === 2 ? blockMaximum : size;
  }
  if (hasChecksum) {
    need(data, pos, 4, 'a zstandard content checksum');
    pos += 4;
  }
  if (contentSize !== undefined && contentSize > blocksOutput) {
    throw new FrameFormatError(`zstandard frame declares ${contentSize} bytes but its blocks produce at most ${blocksOutput}`, start);
  }
  return { start, end: pos, contentSize, maxOutput: contentSize ?? blocksOutput };
}

/** One xz stream of a block (xz file format 1.1.0 §2.1), with the exact size its LZMA2 chunks declare. */
export interface XzStream {
  /** Offset of the stream header in the block data. */
  start: number;
  /** Offset just past the stream footer. */
  end: number;
  /** Bytes the stream decompresses to: the sum of its LZMA2 chunks' unpacked sizes. */
  uncompressedSize: number;
}

const XZ_HEADER_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const XZ_FOOTER_MAGIC = Buffer.from([0x59, 0x5a]);
const XZ_FILTER_LZMA2 = 0x21;
/** Delta (0x03) and the branch converters (0x04 to 0x0b) keep the size: only LZMA2 decides it. */
const XZ_SIZE_PRESERVING_FILTERS = new Set([0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b]);
/** Size of the block check for each check id (xz format §2.1.1.2): 0, 4, 8, 16, 32 and 64 bytes in groups of three. */
const XZ_CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];

/** An xz multibyte integer (§1.2): up to 9 bytes, 7 bits each, least significant first. */
function readMultibyte(data: Buffer, pos: number, what: string): { value: number; next: number } {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    need(data, pos + i, 1, what);
    const byte = data[pos + i]!;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) {
      if (byte === 0 && i > 0) throw new FrameFormatError(`${what} is not minimally encoded`, pos);
      return { value, next: pos + i + 1 };
    }
  }
  throw new FrameFormatError(`${what} is longer than 9 bytes`, pos);
}

/**
 * The xz streams of a block, with their decompressed sizes. Every size comes from the LZMA2 chunk
 * headers (each chunk states its unpacked size, at most 2 MiB, and the decoder cannot produce more),
 * so the total is exact and known before inflating. Stream padding between streams is skipped.
 */
export function xzStreams(data: Buffer): XzStream[] {
  const streams: XzStream[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (streams.length > 0 && data[pos] === 0) {
      // Stream padding (§2.2): null bytes in multiples of four after a stream.
      need(data, pos, 4, 'xz stream padding');
      if (data.readUInt32LE(pos) !== 0) throw new FrameFormatError('xz stream padding holds non-null bytes', pos);
      pos += 4;
      continue;
    }
    const stream = readXzStream(data, pos);
    streams.push(stream);
    pos = stream.end;
  }
  if (streams.length === 0) throw new FrameFormatError('no xz stream in the block', 0);
  return streams;
}

function readXzStream(data: Buffer, start: number): XzStream {
  const magic = data.subarray(start, start + XZ_HEADER_MAGIC.length);
  if (!magic.equals(XZ_HEADER_MAGIC.subarray(0, magic.length))) {
    throw new FrameFormatError(`expected an xz stream header (magic fd 37 7a 58 5a 00), found ${magic.toString('hex')}`, start);
  }
  need(data, start, 12, 'an xz stream header');
  const flags = data.subarray(start + 6, start + 8);
  if (crc32(flags) !== data.readUInt32LE(start + 8)) throw new FrameFormatError('xz stream header CRC32 mismatch', start);
  if (flags[0] !== 0 || flags[1]! > 0x0f) throw new FrameFormatError(`xz stream flags ${flags.toString('hex')} are not defined by xz format 1.1`, start + 6);
  const checkSize = XZ_CHECK_SIZES[flags[1]!]!;
  let pos = start + 12;
  let uncompressedSize = 0;
  let blocks = 0;
  for (;;) {
    need(data, pos, 1, 'an xz block header');
    if (data[pos] === 0) break; // the index indicator
    const blockStart = pos;
    const headerSize = (data[pos]! + 1) * 4;
    need(data, pos, headerSize, 'an xz block header');
    if (crc32(data.subarray(pos, pos + headerSize - 4)) !== data.readUInt32LE(pos + headerSize - 4)) {
      throw new FrameFormatError('xz block header CRC32 mismatch', pos);
    }
    const blockFlags = data[pos + 1]!;
    if (blockFlags & 0x3c) throw new FrameFormatError(`xz block flags ${hex(blockFlags)} set reserved bits`, pos + 1);
    let field = pos + 2;
    let declaredCompressed: number | undefined;
    let declaredUncompressed: number | undefined;
    if (blockFlags & 0x40) ({ value: declaredCompressed, next: field } = readMultibyte(data, field, 'an xz compressed size'));
    if (blockFlags & 0x80) ({ value: declaredUncompressed, next: field } = readMultibyte(data, field, 'an xz uncompressed size'));
    const filterCount = (blockFlags & 3) + 1;
    for (let i = 0; i < filterCount; i++) {
      const id = readMultibyte(data, field, 'an xz filter id');
      const propertiesSize = readMultibyte(data, id.next, 'an xz filter properties size');
      field = propertiesSize.next + propertiesSize.value;
      const isLast = i === filterCount - 1;
      if (isLast ? id.value !== XZ_FILTER_LZMA2 : !XZ_SIZE_PRESERVING_FILTERS.has(id.value)) {
        throw new FrameFormatError(
          `xz filter ${hex(id.value)} cannot be ${isLast ? 'the last' : 'a non-last'} filter of a block (expected LZMA2 ${hex(XZ_FILTER_LZMA2)} last)`,
          pos,
        );
      }
    }
    if (field > pos + headerSize - 4) throw new FrameFormatError('xz block header fields overrun the header', pos);
    pos += headerSize;
    const chunks = lzma2Chunks(data, pos);
    if (declaredCompressed !== undefined && chunks.end - pos !== declaredCompressed) {
      throw new FrameFormatError(`xz block declares ${declaredCompressed} compressed bytes, its LZMA2 chunks take ${chunks.end - pos}`, blockStart);
    }
    if (declaredUncompressed !== undefined && chunks.size !== declaredUncompressed) {
      throw new FrameFormatError(`xz block declares ${declaredUncompressed} uncompressed bytes, its LZMA2 chunks hold ${chunks.size}`, blockStart);
    }
    uncompressedSize += chunks.size;
    blocks++;
    pos = chunks.end;
    while ((pos - blockStart) % 4 !== 0) {
      need(data, pos, 1, 'xz block padding');
      if (data[pos] !== 0) throw new FrameFormatError('xz block padding holds a non-null byte', pos);
      pos++;
    }
    need(data, pos, checkSize, 'an xz block check');
    pos += checkSize;
  }
  const indexStart = pos;
  const records = readMultibyte(data, pos + 1, 'the xz index record count');
  if (records.value !== blocks) {
    throw new FrameFormatError(`xz index lists ${records.value} blocks, the stream holds ${blocks}`, indexStart);
  }
  pos = records.next;
  let indexedSize = 0;
  for (let i = 0; i < records.value; i++) {
    const unpadded = readMultibyte(data, pos, 'an xz index record');
    const uncompressed = readMultibyte(data, unpadded.next, 'an xz index record');
    indexedSize += uncompressed.value;
    pos = uncompressed.next;
  }
  if (indexedSize !== uncompressedSize) {
    throw new FrameFormatError(`xz index lists ${indexedSize} uncompressed bytes, the blocks hold ${uncompressedSize}`, indexStart);
  }
  pos += (4 - ((pos - indexStart) % 4)) % 4; // index padding
  pos += 4; // index CRC32, verified by the decoder
  need(data, pos, 12, 'an xz stream footer');
  const backwardSize = (data.readUInt32LE(pos + 4) + 1) * 4;
  if (backwardSize !== pos - indexStart) {
    throw new FrameFormatError(`xz stream footer gives an index of ${backwardSize} bytes, found ${pos - indexStart}`, pos);
  }
  if (!data.subarray(pos + 8, pos + 10).equals(flags) || !data.subarray(pos + 10, pos + 12).equals(XZ_FOOTER_MAGIC)) {
    throw new FrameFormatError('xz stream footer does not match its header (flags or magic "YZ")', pos);
  }
  return { start, end: pos + 12, uncompressedSize };
}

/** Walks an LZMA2 chunk sequence (xz format §5.3.1; chunk layout as in liblzma's lzma2_decoder.c). */
function lzma2Chunks(data: Buffer, start: number): { size: number; end: number } {
  let pos = start;
  let size = 0;
  for (;;) {
    need(data, pos, 1, 'an LZMA2 chunk header');
    const control = data[pos++]!;
    if (control === 0x00) return { size, end: pos };
    if (control === 0x01 || control === 0x02) {
      // Uncompressed chunk: 16-bit size minus one, then the bytes.
      need(data, pos, 2, 'an LZMA2 chunk header');
      const stored = data.readUInt16BE(pos) + 1;
      pos += 2;
      need(data, pos, stored, 'an uncompressed LZMA2 chunk');
      pos += stored;
      size += stored;
      continue;
    }
    if (control < 0x80) throw new FrameFormatError(`invalid LZMA2 control byte ${hex(control)}`, pos - 1);
    // LZMA chunk: 21-bit unpacked size minus one (5 bits in the control byte), 16-bit packed size
    // minus one, and a properties byte when the control byte resets them (0xc0 and up).
    need(data, pos, 4, 'an LZMA2 chunk header');
    const unpacked = (control & 0x1f) * 65536 + data.readUInt16BE(pos) + 1;
    const packed = data.readUInt16BE(pos + 2) + 1;
    pos += control >= 0xc0 ? 5 : 4;
    need(data, pos, packed, 'an LZMA2 chunk');
    pos += packed;
    size += unpacked;
  }
}
