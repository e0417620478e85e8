/**
 * The input side of the container reader: the unconsumed bytes of a stream as a queue of chunks,
 * pulled from the source only when the parser needs more.
 */
/**
 * The unconsumed bytes of a stream as a list of chunks. Bytes are copied only when a read spans
 * chunks, and then only the chunks it spans, never the whole object.
 */
export class ByteQueue {
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
export class ChunkPuller {
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

/** Bytes as spaced hex, for messages. */
export function hex(bytes: Buffer): string {
  return bytes.toString('hex').replace(/(..)(?=.)/g, '$1 ');
}
