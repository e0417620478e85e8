import { describe, expect, it } from 'vitest';
import { MAX_RETRY_DELAY_MS, S3RetryStrategy, THROTTLING_DELAY_FACTOR, retryDelayMs, retryWaitMs } from '../../src/storage/retry-policy.js';

const timing = { baseDelayMs: 100, maxDelayMs: 20_000 };
/** The largest value Math.random can return. */
const almostOne = 1 - Number.EPSILON;

describe('retryDelayMs', () => {
  it('waits up to base × 2^(attempt−1), full jitter from 0', () => {
    expect([1, 2, 3, 4].map((attempt) => retryDelayMs(attempt, timing, false, () => almostOne))).toEqual([99, 199, 399, 799]);
    expect([1, 2, 3, 4].map((attempt) => retryDelayMs(attempt, timing, false, () => 0))).toEqual([0, 0, 0, 0]);
    expect(retryDelayMs(3, timing, false, () => 0.5)).toBe(200);
  });

  it('waits longer when throttled', () => {
    expect(retryDelayMs(1, timing, true, () => almostOne)).toBe(100 * THROTTLING_DELAY_FACTOR - 1);
  });

  it('never exceeds the cap, however many attempts', () => {
    expect(retryDelayMs(40, timing, true, () => almostOne)).toBe(19_999);
    expect(retryDelayMs(1_000_000, { baseDelayMs: 100, maxDelayMs: MAX_RETRY_DELAY_MS }, false, () => almostOne)).toBeLessThan(MAX_RETRY_DELAY_MS);
  });

  it('spreads real jitter over the whole window', () => {
    const delays = Array.from({ length: 2000 }, () => retryDelayMs(3, timing));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(400);
    // With 2000 uniform draws both quarters of the window are hit (failure odds ~1e-250).
    expect(delays.some((delay) => delay < 100)).toBe(true);
    expect(delays.some((delay) => delay >= 300)).toBe(true);
  });

  it('refuses attempt numbers below 1', () => {
    expect(() => retryDelayMs(0, timing)).toThrow(RangeError);
    expect(() => retryDelayMs(1.5, timing)).toThrow(RangeError);
  });
});

describe('S3RetryStrategy', () => {
  const error = new Error('SlowDown');

  it('allows maxAttempts attempts in all, then rethrows the last error', async () => {
    const strategy = new S3RetryStrategy(3, timing, () => 0.5);
    let token = await strategy.acquireInitialRetryToken();
    expect(token.getRetryCount()).toBe(0);
    token = await strategy.refreshRetryTokenForRetry(token, { errorType: 'THROTTLING', error });
    expect([token.getRetryCount(), token.getRetryDelay()]).toEqual([1, 250]);
    token = await strategy.refreshRetryTokenForRetry(token, { errorType: 'TRANSIENT', error });
    expect([token.getRetryCount(), token.getRetryDelay()]).toEqual([2, 100]);
    await expect(strategy.refreshRetryTokenForRetry(token, { errorType: 'SERVER_ERROR', error })).rejects.toBe(error);
  });

  it('never retries client errors', async () => {
    const strategy = new S3RetryStrategy(5, timing);
    await expect(strategy.refreshRetryTokenForRetry(await strategy.acquireInitialRetryToken(), { errorType: 'CLIENT_ERROR', error })).rejects.toBe(error);
  });

  it('never retries 501 Not Implemented, a server error no retry changes', async () => {
    const strategy = new S3RetryStrategy(5, timing);
    const notImplemented = Object.assign(new Error('NotImplemented'), { $metadata: { httpStatusCode: 501 } });
    const start = await strategy.acquireInitialRetryToken();
    await expect(strategy.refreshRetryTokenForRetry(start, { errorType: 'SERVER_ERROR', error: notImplemented })).rejects.toBe(notImplemented);
    const unavailable = Object.assign(new Error('ServiceUnavailable'), { $metadata: { httpStatusCode: 503 } });
    await expect(strategy.refreshRetryTokenForRetry(start, { errorType: 'SERVER_ERROR', error: unavailable })).resolves.toBeDefined();
  });

  it('honours a Retry-After hint, up to the cap', async () => {
    const strategy = new S3RetryStrategy(5, timing, () => 0);
    const start = await strategy.acquireInitialRetryToken();
    const soon = await strategy.refreshRetryTokenForRetry(start, { errorType: 'THROTTLING', error, retryAfterHint: new Date(Date.now() + 5000) });
    expect(soon.getRetryDelay()).toBeGreaterThan(4000);
    expect(soon.getRetryDelay()).toBeLessThanOrEqual(5000);
    const late = await strategy.refreshRetryTokenForRetry(start, { errorType: 'THROTTLING', error, retryAfterHint: new Date(Date.now() + 3_600_000) });
    expect(late.getRetryDelay()).toBe(timing.maxDelayMs);
  });
});

describe('retryWaitMs (issue 10: one policy for S3 and the schema registry)', () => {
  const timing = { baseDelayMs: 100, maxDelayMs: 1000 };
  it('is retryDelayMs without a hint, or with a hint that is not a number', () => {
    expect(retryWaitMs(3, timing, { random: () => 0.5 })).toBe(retryDelayMs(3, timing, false, () => 0.5));
    expect(retryWaitMs(3, timing, { random: () => 0.5, retryAfterMs: Number.NaN })).toBe(200);
    expect(retryWaitMs(1, timing, { random: () => 0.5, throttled: true })).toBe(retryDelayMs(1, timing, true, () => 0.5));
  });

  it('takes a longer hint as its wait, capped at maxDelayMs; a shorter or negative one leaves the jitter', () => {
    expect(retryWaitMs(1, timing, { random: () => 0, retryAfterMs: 700 })).toBe(700);
    expect(retryWaitMs(1, timing, { random: () => 0, retryAfterMs: 60_000 })).toBe(1000);
    expect(retryWaitMs(3, timing, { random: () => 0.5, retryAfterMs: 10 })).toBe(200);
    expect(retryWaitMs(3, timing, { random: () => 0.5, retryAfterMs: -500 })).toBe(200);
  });
});
