/**
 * The byte-level pieces of the Avro 1.11 "Object Container Files" format shared by the reader and
 * the writer: magic, sync size, zig-zag varints, and the one way a corrupt object is reported.
 */
import { CorruptObjectError } from '../errors.js';

/** Four bytes every container file starts with: 'O', 'b', 'j', 1 (Avro 1.11 "Object Container Files"). */
export const MAGIC = Buffer.from([0x4f, 0x62, 0x6a, 0x01]);

/** Size of the sync marker that ends the header and every block. */
export const SYNC_SIZE = 16;

/** A zig-zag varint of a long takes at most 10 bytes (64 bits, 7 per byte). */
export const MAX_VARINT_BYTES = 10;

/** Where in an object a corruption was found; `block` is absent for the header. */
export interface CorruptionSite {
  /** The object's full URI. */
  uri: string;
  offset: number;
  block?: number;
}

/** Builds the CorruptObjectError for a bad byte range, with the URI, the offset and the way out. */
export function corruptObject(site: CorruptionSite, detail: string, cause?: unknown): CorruptObjectError {
  const where = site.block === undefined ? 'header' : `block ${site.block}`;
  const context = site.block === undefined ? { uri: site.uri, offset: site.offset } : { ...site };
  return new CorruptObjectError(
    `corrupt Avro object "${site.uri}" at byte ${site.offset} (${where}): ${detail}; ` +
      'fix or remove the object, or rerun with --on-corrupt skip',
    context,
    cause === undefined ? undefined : { cause },
  );
}

/** Number of bytes `writeLong` takes for `value`. */
export function longSize(value: number): number {
  let rest = value >= 0 ? value * 2 : -value * 2 - 1;
  let size = 1;
  while (rest >= 128) {
    rest = Math.floor(rest / 128);
    size++;
  }
  return size;
}

/**
 * Writes `value` (a safe integer) as a zig-zag varint at `pos` and returns the position after it.
 * Float arithmetic keeps values beyond 2^31 exact (the bitwise operators are 32-bit).
 */
export function writeLong(value: number, buf: Buffer, pos: number): number {
  let rest = value >= 0 ? value * 2 : -value * 2 - 1;
  while (rest >= 128) {
    buf[pos++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  buf[pos++] = rest;
  return pos;
}

/** Thrown by ByteCursor when the buffer ends before the value does; `needed` is the total length to wait for. */
export class NeedMoreBytes extends Error {
  constructor(readonly needed: number) {
    super(`need ${needed} bytes`);
  }
}

/** Thrown by ByteCursor for bytes that can never be valid; `offset` is relative to the cursor's buffer. */
export class MalformedBytes extends Error {
  constructor(
    readonly detail: string,
    readonly offset: number,
  ) {
    super(detail);
  }
}

/**
 * A read position over a buffer that may hold only a prefix of what is being parsed: it throws
 * NeedMoreBytes instead of reading past the end, so a parse can be retried once more bytes arrived.
 */
export class ByteCursor {
  pos: number;

  constructor(
    readonly buf: Buffer,
    pos = 0,
  ) {
    this.pos = pos;
  }

  /** Reads a zig-zag varint long; refuses more than 10 bytes and values beyond ±2^53. */
  long(what: string): number {
    const start = this.pos;
    let unsigned = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (start + i >= this.buf.length) throw new NeedMoreBytes(start + i + 1);
      const byte = this.buf[start + i];
      unsigned += (byte & 0x7f) * scale;
      scale *= 128;
      if ((byte & 0x80) === 0) {
        if (unsigned > Number.MAX_SAFE_INTEGER) {
          throw new MalformedBytes(`${what} does not fit in 53 bits`, start);
        }
        this.pos = start + i + 1;
        return unsigned % 2 === 0 ? unsigned / 2 : -(unsigned + 1) / 2;
      }
    }
    throw new MalformedBytes(`${what} is a varint longer than ${MAX_VARINT_BYTES} bytes`, start);
  }

  /** Returns the next `length` bytes (a view, not a copy). */
  bytes(length: number): Buffer {
    const end = this.pos + length;
    if (end > this.buf.length) throw new NeedMoreBytes(end);
    const view = this.buf.subarray(this.pos, end);
    this.pos = end;
    return view;
  }
}
