/**
 * The byte layer of a serialized metric state (join/day-metrics.ts): little-endian numbers written
 * as their exact IEEE-754 bits, so a state read back is the state written, limb for limb. The
 * writer grows one buffer by doubling; the reader checks every length against the bytes left and
 * throws StateFormatError, which the caller turns into an error naming the object's URI.
 *
 * Not Avro: the state is a transient file written and read by the same job version within one run
 * (join pods to the commit pod), made of long runs of raw doubles and 32-bit counts; a raw layout
 * keeps them exact and compact without a schema per nesting level, and the envelope (magic,
 * version, sha256) is checked before any of it is trusted.
 */

/** A structural fault found while reading a state; the caller adds the URI. */
export class StateFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'StateFormatError';
  }
}

/** Appends numbers, strings and arrays to a growing buffer. */
export class StateWriter {
  private buffer = Buffer.allocUnsafe(4096);
  private length = 0;

  /** Bytes written so far. */
  get size(): number {
    return this.length;
  }

  /** Makes room for `bytes` more and returns where they go (read `this.buffer` only after: it may be replaced). */
  private reserve(bytes: number): number {
    const at = this.length;
    if (at + bytes > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, at + bytes));
      this.buffer.copy(grown, 0, 0, at);
      this.buffer = grown;
    }
    this.length = at + bytes;
    return at;
  }

  u8(value: number): void {
    const at = this.reserve(1);
    this.buffer.writeUInt8(value, at);
  }

  u32(value: number): void {
    const at = this.reserve(4);
    this.buffer.writeUInt32LE(value, at);
  }

  i32(value: number): void {
    const at = this.reserve(4);
    this.buffer.writeInt32LE(value, at);
  }

  /** A double, bit for bit. */
  f64(value: number): void {
    const at = this.reserve(8);
    this.buffer.writeDoubleLE(value, at);
  }

  bool(value: boolean): void {
    this.u8(value ? 1 : 0);
  }

  /** A UTF-8 string with its byte length. */
  string(value: string): void {
    const bytes = Buffer.byteLength(value, 'utf8');
    this.u32(bytes);
    const at = this.reserve(bytes);
    this.buffer.write(value, at, bytes, 'utf8');
  }

  /** Raw bytes, no length. */
  raw(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length);
    this.buffer.set(bytes, at);
  }

  /** The first `count` doubles of `values`, no length (the caller writes it). */
  f64s(values: ArrayLike<number>, count = values.length): void {
    const at = this.reserve(count * 8);
    for (let i = 0; i < count; i++) this.buffer.writeDoubleLE(values[i]!, at + i * 8);
  }

  /** The first `count` Int32 values, no length. */
  i32s(values: ArrayLike<number>, count = values.length): void {
    const at = this.reserve(count * 4);
    for (let i = 0; i < count; i++) this.buffer.writeInt32LE(values[i]!, at + i * 4);
  }

  /** The first `count` Uint32 values, no length. */
  u32s(values: ArrayLike<number>, count = values.length): void {
    const at = this.reserve(count * 4);
    for (let i = 0; i < count; i++) this.buffer.writeUInt32LE(values[i]!, at + i * 4);
  }

  /** The bytes written (a view of the buffer: copy before writing more). */
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

/** Reads what StateWriter wrote, checking each read against the end. */
export class StateReader {
  private at: number;

  constructor(
    private readonly buffer: Buffer,
    start = 0,
    private readonly end = buffer.length,
  ) {
    this.at = start;
  }

  /** Byte offset of the next read. */
  get offset(): number {
    return this.at;
  }

  /** Bytes left before the end. */
  get remaining(): number {
    return this.end - this.at;
  }

  private take(bytes: number, what: string): number {
    if (bytes > this.end - this.at) throw new StateFormatError(`truncated: ${what} needs ${bytes} bytes at offset ${this.at}, ${this.end - this.at} left`, this.at);
    const at = this.at;
    this.at += bytes;
    return at;
  }

  u8(what = 'a byte'): number {
    return this.buffer.readUInt8(this.take(1, what));
  }

  u32(what = 'a count'): number {
    return this.buffer.readUInt32LE(this.take(4, what));
  }

  i32(what = 'an integer'): number {
    return this.buffer.readInt32LE(this.take(4, what));
  }

  f64(what = 'a double'): number {
    return this.buffer.readDoubleLE(this.take(8, what));
  }

  bool(what = 'a flag'): boolean {
    const value = this.u8(what);
    if (value > 1) throw new StateFormatError(`${what}: expected 0 or 1, got ${value} at offset ${this.at - 1}`, this.at - 1);
    return value === 1;
  }

  string(what = 'a string'): string {
    const bytes = this.u32(`${what} length`);
    const at = this.take(bytes, what);
    return this.buffer.toString('utf8', at, at + bytes);
  }

  /** A count that must not exceed `max` (a limit from the layout, so a damaged count cannot allocate gigabytes). */
  count(what: string, max: number): number {
    const value = this.u32(what);
    if (value > max) throw new StateFormatError(`${what}: ${value} exceeds ${max} at offset ${this.at - 4}`, this.at - 4);
    return value;
  }

  f64s(count: number, what = 'doubles'): Float64Array<ArrayBuffer> {
    const at = this.take(count * 8, what);
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = this.buffer.readDoubleLE(at + i * 8);
    return out;
  }

  i32s(count: number, what = 'integers'): Int32Array<ArrayBuffer> {
    const at = this.take(count * 4, what);
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.buffer.readInt32LE(at + i * 4);
    return out;
  }

  u32s(count: number, what = 'counts'): Uint32Array<ArrayBuffer> {
    const at = this.take(count * 4, what);
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.buffer.readUInt32LE(at + i * 4);
    return out;
  }

  /** Fails unless every byte was read. */
  expectEnd(): void {
    if (this.at !== this.end) throw new StateFormatError(`${this.end - this.at} unread bytes after the state at offset ${this.at}`, this.at);
  }
}
