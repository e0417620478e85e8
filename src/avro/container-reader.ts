/**
 * Streaming reader of Avro 1.11 "Object Container Files". The framing (header, blocks, codecs, sync
 * markers) is ours because avsc 5.7's BlockDecoder ends quietly on a truncated or empty file,
 * ignores trailing bytes, throws outside the stream on an overlong varint and trusts block counts;
 * avsc still parses schemas, resolves them and decodes records. This module is the block loop; the
 * byte queue, the limits, the header and the writer's resolution have modules of their own.
 *
 * Input is any AsyncIterable of byte chunks (S3 body, file stream, test array). Only the unconsumed
 * tail is kept; a block is decoded once all its bytes arrived, so memory is bounded by the largest
 * block (itself bounded by DecodeLimits).
 *
 * Every damaged or hostile object (issue 5) fails with a CorruptObjectError naming the URI, the
 * header or block index and the byte offset: lengths, counts and schemas are checked against
 * DecodeLimits and against the bytes present before anything is allocated for them.
 */
import type { Type } from 'avsc';
import { StorageError } from '../errors.js';
import { decodeRecords, ValueLimitError, type Resolver } from './avro-types.js';
import { ChunkPuller, hex } from './byte-queue.js';
import { codecFor, isOutputLimitError, type AvroDecompressor } from './codecs.js';
import { type ContainerHeader, readHeader } from './container-header.js';
import { ByteCursor, corruptObject, MAGIC, MalformedBytes, MAX_VARINT_BYTES, NeedMoreBytes, SYNC_SIZE, type CorruptionSite } from './container-format.js';
import { type DecodeLimits, limitFlags, limitText, resolveLimits } from './decode-limits.js';
import { checkTimestampUnits, fingerprintOf, resolveWriter } from './writer-resolution.js';

export type { Resolver } from './avro-types.js';
export { type ContainerHeader, readContainerHeader } from './container-header.js';
export { type DecodeLimits, defaultDecodeLimits } from './decode-limits.js';
export { resolveWriter } from './writer-resolution.js';

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
export interface PreparedBlock {
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
export function decompressBlock(stored: Buffer, context: BlockDecoder, site: CorruptionSite): Buffer {
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
export function* decodeBatches(block: PreparedBlock, context: BlockDecoder, site: CorruptionSite): Generator<unknown[]> {
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
    // An incompatible writer fails here, before any block is handed on.
    if (header.fingerprint !== fingerprintOf(readerType)) resolveWriter(readerType, header, uri);
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
      yield { header, count: raw.count, stored: raw.stored, site };
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
