/**
 * A bounded hand-off of byte chunks from a producer (the Avro encoder) to a consumer (an upload).
 * `push` waits while more than `highWaterBytes` are queued, so memory stays bounded; when the
 * consumer fails, the failure reaches the producer instead of leaving it waiting forever.
 */

/** Producer side: push, then close or fail. Consumer side: iterate. */
export class ChunkChannel implements AsyncIterable<Uint8Array> {
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private closed = false;
  private failure: unknown = undefined;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  constructor(private readonly highWaterBytes = 8 * 1024 * 1024) {}

  /** Queues a chunk; resolves once the queue is below the high-water mark again. */
  async push(chunk: Uint8Array): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    this.wake('consumer');
    while (this.queuedBytes > this.highWaterBytes && this.failure === undefined) {
      await new Promise<void>((resolve) => (this.wakeProducer = resolve));
    }
    if (this.failure !== undefined) throw this.failure;
  }

  /** No more chunks. */
  close(): void {
    this.closed = true;
    this.wake('consumer');
  }

  /** Stops both sides with an error (the consumer failed, or the producer gave up). */
  fail(error: unknown): void {
    if (this.failure === undefined) this.failure = error;
    this.wake('consumer');
    this.wake('producer');
  }

  private wake(side: 'consumer' | 'producer'): void {
    const wake = side === 'consumer' ? this.wakeConsumer : this.wakeProducer;
    if (side === 'consumer') this.wakeConsumer = undefined;
    else this.wakeProducer = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const chunk = this.queue.shift();
      if (chunk !== undefined) {
        this.queuedBytes -= chunk.length;
        if (this.queuedBytes <= this.highWaterBytes) this.wake('producer');
        yield chunk;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
  }
}
