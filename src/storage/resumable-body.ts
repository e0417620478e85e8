/**
 * A response body that survives the store (issue 5): the AWS SDK retries a request that fails
 * before its headers, but not a GetObject body that breaks off (ECONNRESET, a connection closed
 * short of Content-Length) or stalls (no byte for minutes, which without a watchdog hangs forever).
 * This stream hands its consumer one continuous run of bytes and, when the current body fails,
 * asks `reopen` for the rest from the next undelivered byte (a ranged GET pinned to the ETag), up
 * to `maxAttempts` bodies in all, with backoff. Store-agnostic: the store façade (object-store.ts)
 * supplies `reopen`, a backend GET pinned to the ETag.
 */
import { Readable, finished } from 'node:stream';
import { ModelMetricsError } from '../errors.js';

/** Read-ahead of the stream, in bytes (the body keeps its own small buffer), as in streams.ts. */
const HIGH_WATER_MARK = 256 * 1024;

/** One response body, and how many bytes it announced (Content-Length), when it did. */
export interface BodyPart {
  body: Readable;
  length: number | undefined;
}

/** How a ResumableBody reopens, waits and gives up. */
export interface ResumableBodyOptions {
  /** The object's URI, for messages. */
  uri: string;
  /** Absolute position of the first body's first byte. */
  start: number;
  /** The body of the first request, already checked by the caller (status, ETag, Content-Range). */
  first: BodyPart;
  /**
   * Opens the rest of the object from absolute byte `position`; throws (e.g. E_CONCURRENT_CHANGE
   * when the object was replaced) to end the stream with that error.
   */
  reopen(position: number): Promise<BodyPart>;
  /** Bodies that may fail before the stream gives up, the first included. */
  maxAttempts: number;
  /** No byte for this long while the consumer waits for one: the body is abandoned and reopened. */
  idleTimeoutMs: number;
  /** Milliseconds to wait before reopening after `failures` failed bodies (retry-policy.ts). */
  retryDelay(failures: number): number;
  /** The error the stream ends with once `attempts` bodies failed; `cause` is the last failure. */
  exhausted(attempts: number, position: number, cause: unknown): Error;
}

/** A body that moved no byte for idleTimeoutMs while the consumer was waiting. */
export class IdleTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(idleTimeoutMs: number, position: number) {
    super(`no byte arrived for ${idleTimeoutMs} ms at byte ${position}`);
    this.name = 'IdleTimeoutError';
  }
}

/** A body that ended cleanly before delivering the bytes its Content-Length announced. */
export class TruncatedBodyError extends Error {
  readonly code = 'ERR_STREAM_PREMATURE_CLOSE';
  constructor(position: number, expectedEnd: number) {
    super(`the body ended at byte ${position}, expected ${expectedEnd} (Content-Length); the connection was cut short`);
    this.name = 'TruncatedBodyError';
  }
}

/**
 * The consumer's view of a read that may take several bodies. Memory stays bounded: the current
 * body is paused whenever this stream's buffer is full. Only time spent waiting for a byte the
 * consumer asked for counts as idle; a body left paused by a slow consumer that then times out
 * (the SDK's socket timeout) is reopened when the consumer asks again, without spending an attempt.
 */
export function resumableBody(options: ResumableBodyOptions): Readable {
  return new ResumableBody(options);
}

class ResumableBody extends Readable {
  /** Absolute position of the next byte to deliver. */
  private position: number;
  /** Absolute position one past the current body's last byte, when its length is known. */
  private expectedEnd: number | undefined;
  private source: Readable | undefined;
  private detachSource: (() => void) | undefined;
  /** True while the consumer has asked for data that has not come yet. */
  private waiting = false;
  /** Bodies that failed while the consumer waited or for reasons other than our own pause. */
  private failures = 0;
  private lastFailure: unknown;
  private reopenPending = false;
  private reopenTimer: NodeJS.Timeout | undefined;
  /** Armed while the consumer waits on a body; refreshed by every chunk. */
  private idleTimer: NodeJS.Timeout | undefined;
  /** Backoff owed by a failure that happened while the consumer was not reading. */
  private deferredDelayMs = 0;

  constructor(private readonly options: ResumableBodyOptions) {
    super({ highWaterMark: HIGH_WATER_MARK });
    this.position = options.start;
    this.attach(options.first);
  }

  override _read(): void {
    this.waiting = true;
    if (this.source !== undefined) {
      this.source.resume();
      this.armIdle();
    } else if (!this.reopenPending) {
      this.scheduleReopen(this.deferredDelayMs);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.disarmIdle();
    clearTimeout(this.reopenTimer);
    this.dropSource();
    callback(error);
  }

  private attach(part: BodyPart): void {
    const source = part.body;
    this.source = source;
    this.expectedEnd = part.length === undefined ? undefined : this.position + part.length;
    // Paused before the 'data' listener is attached, so attaching it does not start the flow.
    source.pause();
    const onData = (chunk: Buffer): void => this.onData(chunk);
    source.on('data', onData);
    const cleanup = finished(source, (error) => this.onSourceDone(source, error ?? undefined));
    this.detachSource = () => {
      source.off('data', onData);
      cleanup();
    };
    if (this.waiting) {
      source.resume();
      this.armIdle();
    }
  }

  private onData(chunk: Buffer): void {
    this.position += chunk.length;
    if (this.expectedEnd !== undefined && this.position > this.expectedEnd) {
      const announced = this.expectedEnd;
      this.destroy(
        new ModelMetricsError('E_STORAGE', `the store sent ${this.options.uri} past byte ${announced}, the end its Content-Length announced; check the store`, {
          uri: this.options.uri,
          offset: announced,
        }),
      );
      return;
    }
    this.idleTimer?.refresh();
    if (!this.push(chunk)) {
      this.waiting = false;
      this.source?.pause();
      this.disarmIdle();
    }
  }

  private onSourceDone(source: Readable, error: Error | undefined): void {
    if (source !== this.source || this.destroyed) return;
    const complete = this.expectedEnd === undefined || this.position >= this.expectedEnd;
    if (error === undefined && complete) {
      this.dropSource();
      this.disarmIdle();
      this.push(null);
      return;
    }
    // A body that failed after its last byte delivered everything: nothing to resume.
    if (complete && this.expectedEnd !== undefined) {
      this.dropSource();
      this.disarmIdle();
      this.push(null);
      return;
    }
    this.fail(error ?? new TruncatedBodyError(this.position, this.expectedEnd ?? this.position));
  }

  private onIdle(): void {
    this.idleTimer = undefined;
    if (this.source === undefined || !this.waiting) return;
    this.fail(new IdleTimeoutError(this.options.idleTimeoutMs, this.position));
  }

  /** The current body failed: give up, or reopen now (consumer waiting) or on the next read. */
  private fail(error: unknown): void {
    // A timeout while we held the body paused is our consumer's slowness, not the store's fault.
    const charged = this.waiting || !isTimeout(error);
    this.dropSource();
    this.disarmIdle();
    if (error instanceof ModelMetricsError) {
      this.destroy(error);
      return;
    }
    this.lastFailure = error;
    if (charged) {
      this.failures++;
      if (this.failures >= this.options.maxAttempts) {
        this.destroy(this.options.exhausted(this.failures, this.position, error));
        return;
      }
    }
    const delayMs = charged ? this.options.retryDelay(this.failures) : 0;
    if (this.waiting) this.scheduleReopen(delayMs);
    else this.deferredDelayMs = delayMs;
  }

  private scheduleReopen(delayMs: number): void {
    this.reopenPending = true;
    this.deferredDelayMs = 0;
    this.reopenTimer = setTimeout(() => {
      this.options.reopen(this.position).then(
        (part) => {
          this.reopenPending = false;
          if (this.destroyed) {
            part.body.destroy();
            return;
          }
          this.attach(part);
        },
        (error: unknown) => {
          this.reopenPending = false;
          this.destroy(error instanceof Error ? error : this.options.exhausted(this.failures, this.position, this.lastFailure));
        },
      );
    }, delayMs);
  }

  private armIdle(): void {
    this.idleTimer ??= setTimeout(() => this.onIdle(), this.options.idleTimeoutMs);
  }

  private disarmIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private dropSource(): void {
    this.detachSource?.();
    this.detachSource = undefined;
    const source = this.source;
    this.source = undefined;
    // Destroying releases the socket; an error it emits now has no listener to reach but this one.
    if (source !== undefined && !source.destroyed) {
      source.on('error', () => undefined);
      source.destroy();
    }
  }
}

/** True for the timeouts of an idle socket (the SDK's socketTimeout) or our own watchdog. */
function isTimeout(error: unknown): boolean {
  const record = (typeof error === 'object' && error !== null ? error : {}) as { name?: unknown; code?: unknown };
  return record.name === 'TimeoutError' || record.name === 'IdleTimeoutError' || record.code === 'ETIMEDOUT';
}
