/**
 * The resumable body on in-memory streams: the consumer sees one continuous run of bytes across
 * failed bodies, idle time counts only while the consumer waits, and the budget is enforced.
 * Bodies here are real Readables that fail the ways sockets do (error, early end, silence).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ModelMetricsError } from '../../src/errors.js';
import { resumableBody, type BodyPart, type ResumableBodyOptions } from '../../src/storage/resumable-body.js';

/** Larger than the stream's 256 KiB buffer, so a consumer that stops reading really pauses the body. */
const object = randomBytes(1024 * 1024);
const CHUNK = 4096;

/** How one body of the object behaves. */
type Behaviour =
  | { kind: 'whole' }
  | { kind: 'error'; after: number; error?: Error }
  | { kind: 'end'; after: number }
  | { kind: 'stall'; after: number }
  /** Serves normally, but is destroyed with `error` after `ms`, read or not (a socket timing out). */
  | { kind: 'dies'; ms: number; error: Error };

/** A body serving object[from..end) in CHUNK pieces, failing as told. */
function body(from: number, end: number, behaviour: Behaviour): BodyPart {
  const stop = behaviour.kind === 'whole' || behaviour.kind === 'dies' ? end : Math.min(end, from + behaviour.after);
  let position = from;
  const stream = new Readable({
    read() {
      if (position < stop) {
        const next = Math.min(stop, position + CHUNK);
        const chunk = object.subarray(position, next);
        position = next;
        this.push(chunk);
        return;
      }
      if (behaviour.kind === 'error') this.destroy(behaviour.error ?? Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
      else if (behaviour.kind !== 'stall') this.push(null);
      // stall: push nothing, ever.
    },
  });
  if (behaviour.kind === 'dies') {
    const timer = setTimeout(() => stream.destroy(behaviour.error), behaviour.ms);
    stream.once('close', () => clearTimeout(timer));
  }
  return { body: stream, length: end - from };
}

/** Options over `object` whose bodies behave as `script` says, one entry per body (the first included). */
function scripted(script: Behaviour[], overrides: Partial<ResumableBodyOptions> = {}, end = object.length) {
  const opened: number[] = [];
  let next = 0;
  const open = (position: number): BodyPart => {
    opened.push(position);
    return body(position, end, script[next++] ?? { kind: 'whole' });
  };
  const options: ResumableBodyOptions = {
    uri: 's3://bucket/object.avro',
    start: 0,
    first: open(0),
    reopen: async (position) => open(position),
    maxAttempts: 4,
    idleTimeoutMs: 60_000,
    retryDelay: () => 0,
    exhausted: (attempts, position, cause) => new ModelMetricsError('E_STORAGE', `gave up after ${attempts} attempts at ${position}`, { attempts, offset: position }, { cause }),
    ...overrides,
  };
  return { options, opened };
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('resumableBody', () => {
  it('passes a healthy body through unchanged', async () => {
    const { options, opened } = scripted([{ kind: 'whole' }]);
    expect((await collect(resumableBody(options))).equals(object)).toBe(true);
    expect(opened).toEqual([0]);
  });

  it('resumes after resets and truncations from the next undelivered byte', async () => {
    const { options, opened } = scripted([
      { kind: 'error', after: 10_000 },
      { kind: 'end', after: 5_555 },
      { kind: 'error', after: 0 },
    ]);
    expect((await collect(resumableBody(options))).equals(object)).toBe(true);
    expect(opened).toEqual([0, 10_000, 15_555, 15_555]);
  });

  it('abandons a stalled body after the idle timeout and resumes', async () => {
    const { options, opened } = scripted([{ kind: 'stall', after: 30_000 }], { idleTimeoutMs: 50 });
    expect((await collect(resumableBody(options))).equals(object)).toBe(true);
    expect(opened).toEqual([0, 30_000]);
  });

  it('does not count idle time while the consumer is not reading', async () => {
    const { options, opened } = scripted([{ kind: 'whole' }], { idleTimeoutMs: 30 });
    const stream = resumableBody(options);
    // Let the stream fill its buffer, then hold it five idle timeouts long.
    await sleep(150);
    expect((await collect(stream)).equals(object)).toBe(true);
    expect(opened).toEqual([0]);
  });

  it('resumes for free a body that timed out while the consumer held it paused', async () => {
    const timeout = Object.assign(new Error('socket timed out'), { name: 'TimeoutError' });
    // A 1-attempt budget: a charged failure would end the stream.
    const { options, opened } = scripted([{ kind: 'dies', ms: 30, error: timeout }], { maxAttempts: 1 });
    const stream = resumableBody(options);
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    // Not reading: the stream's buffer fills, the body pauses, and times out behind it.
    await sleep(150);
    expect(options.first.body.destroyed).toBe(true);
    const chunks = [first.value as Buffer];
    for (let step = await iterator.next(); step.done !== true; step = await iterator.next()) chunks.push(step.value as Buffer);
    expect(Buffer.concat(chunks).equals(object)).toBe(true);
    expect(opened).toHaveLength(2);
    expect(opened[1]).toBeGreaterThanOrEqual(256 * 1024);
    expect(opened[1]).toBeLessThan(object.length);
  });

  it('gives up after maxAttempts failed bodies with the last cause', async () => {
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const { options, opened } = scripted(Array.from({ length: 10 }, () => ({ kind: 'error', after: 1000, error: reset }) as Behaviour));
    const error = (await collect(resumableBody(options)).catch((caught: unknown) => caught)) as ModelMetricsError;
    expect(error.message).toBe('gave up after 4 attempts at 4000');
    expect(error.cause).toBe(reset);
    expect(opened).toEqual([0, 1000, 2000, 3000]);
  });

  it('waits retryDelay(failures) before each reopen', async () => {
    const delays: number[] = [];
    const { options } = scripted([{ kind: 'error', after: 1 }, { kind: 'error', after: 1 }], {
      retryDelay: (failures) => {
        delays.push(failures);
        return 5;
      },
    });
    expect((await collect(resumableBody(options))).equals(object)).toBe(true);
    expect(delays).toEqual([1, 2]);
  });

  it('ends with the error of a failed reopen (e.g. the object changed)', async () => {
    const changed = new ModelMetricsError('E_CONCURRENT_CHANGE', 'ETag is B, expected A');
    const { options } = scripted([{ kind: 'error', after: 8192 }], { reopen: () => Promise.reject(changed) });
    const delivered: Buffer[] = [];
    const stream = resumableBody(options);
    const error = await (async () => {
      for await (const chunk of stream) delivered.push(chunk as Buffer);
    })().catch((caught: unknown) => caught);
    expect(error).toBe(changed);
    expect(Buffer.concat(delivered).equals(object.subarray(0, 8192))).toBe(true);
  });

  it('resumes a range within its end', async () => {
    const end = 50_000;
    const { options, opened } = scripted([{ kind: 'error', after: 20_000 }], {}, end);
    expect((await collect(resumableBody(options))).equals(object.subarray(0, end))).toBe(true);
    expect(opened).toEqual([0, 20_000]);
  });

  it('ends normally when a body fails after its last byte', async () => {
    const { options, opened } = scripted([{ kind: 'error', after: object.length }]);
    expect((await collect(resumableBody(options))).equals(object)).toBe(true);
    expect(opened).toEqual([0]);
  });

  it('refuses a body longer than its Content-Length', async () => {
    const long = { body: Readable.from([object]), length: 10 };
    const stream = resumableBody({ ...scripted([]).options, first: long });
    await expect(collect(stream)).rejects.toMatchObject({ code: 'E_STORAGE', context: { uri: 's3://bucket/object.avro', offset: 10 } });
  });

  it('releases the body when the consumer stops early', async () => {
    const { options } = scripted([{ kind: 'whole' }]);
    const first = options.first.body;
    const stream = resumableBody(options);
    for await (const chunk of stream) {
      expect((chunk as Buffer).length).toBeGreaterThan(0);
      break;
    }
    expect(first.destroyed).toBe(true);
  });
});
