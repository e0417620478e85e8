/**
 * Retry policy of every remote service the job talks to (issue 5, issue 10), pure so it is tested
 * without a server: how long to wait before attempt N (retryDelayMs, or retryWaitMs with a server's
 * Retry-After hint), and the S3 SDK retry strategy built on it, so the SDK's request retries and our
 * own (GetObject body resumes, conditional-write conflicts) share one attempt budget per operation
 * and one backoff curve. The schema registry client (schema/registry.ts) waits by retryWaitMs too.
 * Only a type comes from the AWS SDK, so importing this module does not load the SDK.
 */
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { UsageError } from '../errors.js';
import type { S3Settings } from './types.js';

/** Attempts per operation, the first included, when the settings name none (S3Settings.maxAttempts). */
export const DEFAULT_MAX_ATTEMPTS = 5;

/** A request or body that moves no byte for this long is abandoned (S3Settings.idleTimeoutMs). */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** First backoff step of ordinary transient failures: the AWS SDKs' standard-mode base delay. */
export const DEFAULT_RETRY_BASE_DELAY_MS = 100;

/** Throttling (503 SlowDown, 429) waits this many times longer, as the AWS SDKs do (500 ms vs 100 ms). */
export const THROTTLING_DELAY_FACTOR = 5;

/** No single wait exceeds this, whatever the attempt number or a Retry-After hint (AWS SDK cap). */
export const MAX_RETRY_DELAY_MS = 20_000;

/** How retries wait. */
export interface RetryTiming {
  /** First backoff step in ms; doubles per attempt. Tests use 1 to keep fault suites fast. */
  baseDelayMs: number;
  /** Upper bound of one wait, in ms. */
  maxDelayMs: number;
}

/** The timing of production runs. */
export const DEFAULT_RETRY_TIMING: RetryTiming = { baseDelayMs: DEFAULT_RETRY_BASE_DELAY_MS, maxDelayMs: MAX_RETRY_DELAY_MS };

/**
 * Milliseconds to wait before attempt `attempt + 1` after `attempt` failed attempts (attempt >= 1):
 * "full jitter" exponential backoff, uniform in [0, min(cap, base × 2^(attempt−1))), so that many
 * workers throttled at once spread out instead of retrying in lockstep (AWS Architecture Blog,
 * "Exponential Backoff and Jitter"). `random` is injectable for tests; it returns a value in [0, 1).
 */
export function retryDelayMs(attempt: number, timing: RetryTiming, throttled = false, random: () => number = Math.random): number {
  if (!Number.isSafeInteger(attempt) || attempt < 1) throw new RangeError(`retry attempt must be a positive integer, got ${attempt}`);
  const base = timing.baseDelayMs * (throttled ? THROTTLING_DELAY_FACTOR : 1);
  // 2^30 already exceeds any sane cap; clamping the exponent keeps the product finite.
  const ceiling = Math.min(timing.maxDelayMs, base * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * ceiling);
}

/**
 * Milliseconds to wait before attempt `attempt + 1`: retryDelayMs, or the server's hint
 * (Retry-After) when it asks for longer, never beyond `timing.maxDelayMs`. A hint is honoured as a
 * lower bound, not as the wait itself, so a server answering `Retry-After: 0` to a burst of
 * clients still gets them spread out by the jitter.
 */
export function retryWaitMs(
  attempt: number,
  timing: RetryTiming,
  options: { throttled?: boolean; retryAfterMs?: number; random?: () => number } = {},
): number {
  const delay = retryDelayMs(attempt, timing, options.throttled ?? false, options.random);
  const hint = options.retryAfterMs;
  if (hint === undefined || !Number.isFinite(hint)) return delay;
  return Math.max(delay, Math.min(timing.maxDelayMs, Math.max(0, hint)));
}

/** The SDK's retry token: how many retries so far, and how long to wait before the next. */
class AttemptToken {
  constructor(
    private readonly retries: number,
    private readonly delayMs: number,
  ) {}
  getRetryCount(): number {
    return this.retries;
  }
  getRetryDelay(): number {
    return this.delayMs;
  }
}

/** The SDK's retry strategy interface (RetryStrategyV2), as the client config types it. */
type SdkRetryStrategy = Extract<NonNullable<S3ClientConfig['retryStrategy']>, { acquireInitialRetryToken: unknown }>;

/**
 * The SDK retry strategy of our S3 clients: at most `maxAttempts` attempts per request, retrying
 * what the SDK classifies as throttling, transient or server errors, waiting retryDelayMs (or a
 * Retry-After hint, capped). Unlike the SDK's standard strategy it has no shared retry quota,
 * so a burst of faults across workers cannot silently shrink one request's budget below the
 * documented `--s3-max-attempts`; concurrency is bounded by the job's worker counts instead.
 */
export class S3RetryStrategy implements SdkRetryStrategy {
  constructor(
    private readonly maxAttempts: number,
    private readonly timing: RetryTiming = DEFAULT_RETRY_TIMING,
    private readonly random: () => number = Math.random,
  ) {}

  acquireInitialRetryToken(): Promise<AttemptToken> {
    return Promise.resolve(new AttemptToken(0, 0));
  }

  refreshRetryTokenForRetry(
    token: { getRetryCount(): number },
    errorInfo: { errorType: string; retryAfterHint?: Date; error?: unknown },
  ): Promise<AttemptToken> {
    const retries = token.getRetryCount() + 1;
    // 501 Not Implemented is a server error that no retry changes (s3rver's ListMultipartUploads).
    const status = (errorInfo.error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
    if (errorInfo.errorType === 'CLIENT_ERROR' || status === 501 || retries >= this.maxAttempts) {
      return Promise.reject(errorInfo.error instanceof Error ? errorInfo.error : new Error(`no retry left after ${retries} attempts`));
    }
    const delay = retryWaitMs(retries, this.timing, {
      throttled: errorInfo.errorType === 'THROTTLING',
      random: this.random,
      ...(errorInfo.retryAfterHint === undefined ? {} : { retryAfterMs: errorInfo.retryAfterHint.getTime() - Date.now() }),
    });
    return Promise.resolve(new AttemptToken(retries, delay));
  }

  recordSuccess(): void {
    // No shared quota to refill (see the class comment).
  }
}

/** The validated retry and timeout settings of an S3 client or store, defaults filled in. */
export function resilienceOf(settings: S3Settings): { maxAttempts: number; idleTimeoutMs: number; timing: RetryTiming } {
  const maxAttempts = settings.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const idleTimeoutMs = settings.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const baseDelayMs = settings.retryBaseDelayMs ?? DEFAULT_RETRY_TIMING.baseDelayMs;
  for (const [option, value] of [
    ['maxAttempts', maxAttempts],
    ['idleTimeoutMs', idleTimeoutMs],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new UsageError(`S3 setting ${option} is ${value}; expected a positive integer`, { option });
    }
  }
  if (!Number.isSafeInteger(baseDelayMs) || baseDelayMs < 0) {
    throw new UsageError(`S3 setting retryBaseDelayMs is ${baseDelayMs}; expected a non-negative integer`, { option: 'retryBaseDelayMs' });
  }
  return { maxAttempts, idleTimeoutMs, timing: { baseDelayMs, maxDelayMs: MAX_RETRY_DELAY_MS } };
}
