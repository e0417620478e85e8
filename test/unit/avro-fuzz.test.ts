/**
 * Fuzzing the container reader (issue 5): valid files damaged at random (byte flips, insertions,
 * deletions, splices of two files, truncations, extreme varints written over length fields) and fed
 * in random chunks. Each case must either decode to no more records than its bytes could hold or
 * fail with one of our errors naming the key; never another exception, a hang or unbounded memory.
 *
 * Cases run in a worker thread (avro-fuzz-worker.mjs) with its own heap limit: a synchronous spin
 * cannot be interrupted in-process, a worker can be terminated, so each case has a real deadline.
 * Outcomes go to the reliability tally, one entry per kind of damage.
 */
import { Worker } from 'node:worker_threads';
import type { Type, types } from 'avsc';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAvroType } from '../../src/avro/avro-types.js';
import { SYNC_SIZE, longSize, writeLong } from '../../src/avro/container-format.js';
import type { DecodeLimits } from '../../src/avro/container-reader.js';
import { recordReliability, type ReliabilityEntry } from '../helpers/reliability-tally.js';
import { encodeFile, predictionV1SchemaJson, predictionV1Type, samplePrediction } from '../helpers/avro-helpers.js';

const KEY = 'dt=2026-01-01/fuzzed.avro';
/** Generous: a case takes milliseconds; the machine running the suite may be loaded. */
const CASE_DEADLINE_MS = 15_000;
/** Heap of the worker: far above what one small damaged file may take, far below the machine's memory. */
const WORKER_HEAP_MB = 256;
/** A case's decompressed blocks stay small, so the worker's memory is bounded by design, not by luck. */
const LIMITS: Partial<DecodeLimits> = { maxDecompressedBlockBytes: 16 * 1024 * 1024 };

/**
 * Fewest bytes a record any PredictionEvent reader accepts can take: the fields without a default
 * (four strings, y_pred, inference_ts) are at least one byte each, y_pred being an int at least.
 */
const MIN_RECORD_BYTES = 6;
/** Most output one byte of deflate data can give (RFC 1951: a 258-byte match per 2 bits, about 1032:1). */
const DEFLATE_MAX_RATIO = 1032;

const v1Fields = (JSON.parse(predictionV1SchemaJson) as { fields: unknown[] }).fields;
/** A writer (and reader) with every kind of value: arrays, maps, bytes, zero-byte items, enum, fixed, a recursive union. */
const richSchema = {
  type: 'record',
  name: 'PredictionEvent',
  namespace: 'ml.monitoring',
  fields: [
    ...v1Fields,
    { name: 'tags', type: { type: 'array', items: 'string' }, default: [] },
    { name: 'scores', type: { type: 'map', values: { type: 'array', items: 'double' } }, default: {} },
    { name: 'blob', type: 'bytes', default: '' },
    { name: 'nulls', type: { type: 'array', items: 'null' }, default: [] },
    { name: 'kind', type: { type: 'enum', name: 'Kind', symbols: ['A', 'B', 'C'] }, default: 'A' },
    { name: 'digest', type: { type: 'fixed', name: 'Digest', size: 4 }, default: '\u0000\u0000\u0000\u0000' },
    {
      name: 'chain',
      type: ['null', { type: 'record', name: 'Node', fields: [{ name: 'value', type: 'long' }, { name: 'next', type: ['null', 'Node'], default: null }] }],
      default: null,
    },
  ],
};
const richType = parseAvroType(richSchema);

function richRecord(i: number): Record<string, unknown> {
  return {
    ...samplePrediction(i),
    tags: Array.from({ length: i % 4 }, (_, j) => `t${j}`),
    scores: { [`s${i % 3}`]: [i * 0.5, -i] },
    blob: Buffer.from([i, i + 1, i + 2]),
    nulls: Array.from({ length: i % 3 }, () => null),
    kind: ['A', 'B', 'C'][i % 3],
    digest: Buffer.from([1, 2, 3, i % 256]),
    chain: i % 2 === 0 ? null : { value: i, next: { value: i + 1, next: null } },
  };
}

const v1Records = Array.from({ length: 40 }, (_, i) => samplePrediction(i));
const richRecords = Array.from({ length: 30 }, (_, i) => richRecord(i));
const v1Plain = encodeFile(v1Records, { type: predictionV1Type, codec: 'null', blockBytes: 700 });
const richPlain = encodeFile(richRecords, { type: richType, codec: 'null', blockBytes: 900 });

/** The valid files the damage starts from: both writers, both codecs, several blocks each. */
const bases: Buffer[] = [
  v1Plain.bytes,
  encodeFile(v1Records, { type: predictionV1Type, codec: 'deflate', blockBytes: 700 }).bytes,
  richPlain.bytes,
  encodeFile(richRecords, { type: richType, codec: 'deflate', blockBytes: 900 }).bytes,
];

/**
 * Where each top-level field value of each record starts in a null-codec file: a string's length,
 * an array's or map's first count, a union's index. Damage aimed there reaches the reader's length
 * and count checks, which damage at random positions rarely does.
 */
function valueStarts(file: ReturnType<typeof encodeFile>, type: Type, records: unknown[]): number[] {
  const fields = (type as types.RecordType).fields;
  const starts: number[] = [];
  let blockStart = file.headerBytes;
  let next = 0;
  file.blockEnds.forEach((blockEnd, block) => {
    const count = file.blockRecordCounts[block]!;
    const dataBytes = blockEnd - SYNC_SIZE - blockStart - longSize(count);
    // dataBytes counts the size varint too; the size is what is left (a varint of 1 or 2 bytes here).
    let pos = blockStart + longSize(count) + longSize(dataBytes - longSize(dataBytes));
    for (let i = 0; i < count; i++) {
      const record = records[next++] as Record<string, unknown>;
      for (const field of fields) {
        starts.push(pos);
        pos += field.type.toBuffer(record[field.name]).length;
      }
    }
    if (pos !== blockEnd - SYNC_SIZE) throw new Error(`value starts of block ${block} end at ${pos}, not ${blockEnd - SYNC_SIZE}`);
    blockStart = blockEnd;
  });
  return starts;
}

/** Value starts of the null-codec bases, by base index. */
const targets: Array<{ base: number; starts: number[] }> = [
  { base: 0, starts: valueStarts(v1Plain, predictionV1Type, v1Records) },
  { base: 2, starts: valueStarts(richPlain, richType, richRecords) },
];
const readers = { v1: predictionV1SchemaJson, rich: JSON.stringify(richSchema) };
type ReaderName = keyof typeof readers;

/** What the worker answered for one case. */
type Reply =
  | { outcome: 'records'; count: number; codec: string | undefined }
  | { outcome: 'error'; name: string; code?: string; message: string; contextUri?: string };

/** One worker thread decoding cases one at a time; replaced when it outlives a deadline or dies. */
class GuardedDecoder {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private nextId = 0;
  private pending: { id: number; settle: (reply: Reply | 'crash') => void } | undefined;

  private start(): Promise<void> {
    const worker = new Worker(new URL('../helpers/avro-fuzz-worker.mjs', import.meta.url), {
      workerData: { readers },
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
    });
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (message: { ready?: boolean; id?: number } & Reply) => {
        if (message.ready === true) return resolve();
        const pending = this.pending;
        if (pending !== undefined && pending.id === message.id) pending.settle(message);
      });
      // An uncaught error or exceeding the heap limit ends the worker: the case in flight crashed it.
      const died = (): void => {
        if (this.worker === worker) this.worker = undefined;
        this.pending?.settle('crash');
        reject(new Error('the fuzz worker died while starting'));
      };
      worker.on('error', died);
      worker.on('exit', died);
    });
    return this.ready;
  }

  /**
   * Decodes one case; 'hang' when it outlives the deadline, 'crash' when the worker died of it.
   * `selfTest` makes the worker misbehave on purpose, to show the guard catches it.
   */
  async decode(
    bytes: Buffer,
    chunkSizes: number[],
    reader: ReaderName,
    options: { deadlineMs?: number; selfTest?: 'spin' | 'allocate' } = {},
  ): Promise<Reply | 'hang' | 'crash'> {
    if (this.worker === undefined) await this.start();
    await this.ready;
    const id = this.nextId++;
    let timer: NodeJS.Timeout | undefined;
    const reply = new Promise<Reply | 'hang' | 'crash'>((resolve) => {
      this.pending = { id, settle: resolve };
      timer = setTimeout(() => resolve('hang'), options.deadlineMs ?? CASE_DEADLINE_MS);
    });
    this.worker!.postMessage({ id, bytes: new Uint8Array(bytes), chunkSizes, reader, uri: KEY, limits: LIMITS, selfTest: options.selfTest });
    const result = await reply;
    clearTimeout(timer);
    this.pending = undefined;
    if (result === 'hang' || result === 'crash') await this.stop();
    return result;
  }

  /** Terminates the worker (interrupting whatever it runs). */
  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) {
      worker.removeAllListeners('exit');
      worker.removeAllListeners('error');
      await worker.terminate();
    }
  }
}

const decoder = new GuardedDecoder();

beforeAll(async () => {
  // Started once up front: the first start transpiles the sources (seconds on a loaded machine).
  expect(await decoder.decode(bases[0]!, [4096], 'v1')).toMatchObject({ outcome: 'records', count: 40 });
}, 120_000);

afterAll(async () => {
  await decoder.stop();
});

/** Counts of one kind of damage: the reliability tally, and how the completed cases ended. */
interface FuzzTally extends ReliabilityEntry {
  decoded: number;
  refused: number;
}

function newTally(kind: string): FuzzTally {
  return { category: 'hostile', kind, injected: 0, completed: 0, identical: 0, hangs: 0, crashes: 0, wrong: 0, decoded: 0, refused: 0 };
}

/**
 * Runs one damaged file and judges it: records within what the bytes could hold, or one of our
 * errors naming the key. Throws (for fast-check to shrink and report) on anything else.
 */
async function judge(tally: FuzzTally, bytes: Buffer, chunkSizes: number[], reader: ReaderName): Promise<void> {
  tally.injected++;
  const reply = await decoder.decode(bytes, chunkSizes, reader);
  if (reply === 'hang') {
    tally.hangs++;
    throw new Error(`no answer within ${CASE_DEADLINE_MS} ms`);
  }
  if (reply === 'crash') {
    tally.crashes++;
    throw new Error('the worker died (uncaught error or heap limit)');
  }
  if (reply.outcome === 'records') {
    const ratio = reply.codec === 'null' ? 1 : DEFLATE_MAX_RATIO;
    const most = Math.floor((ratio * bytes.length) / MIN_RECORD_BYTES);
    if (reply.count > most) {
      tally.wrong++;
      throw new Error(`${reply.count} records from ${bytes.length} bytes (${reply.codec}), more than the ${most} they could hold`);
    }
    tally.decoded++;
  } else {
    // E_STORAGE would mean the reader consumed other than the bytes it was given (expectedBytes is their length).
    if (reply.code !== 'E_CORRUPT_OBJECT' && reply.code !== 'E_SCHEMA_INCOMPATIBLE') {
      tally.crashes++;
      throw new Error(`escaped as ${reply.name} (${reply.code ?? 'no code'}): ${reply.message}`);
    }
    if (reply.contextUri !== KEY || !reply.message.includes(`"${KEY}"`)) {
      tally.wrong++;
      throw new Error(`${reply.code} without the URI: ${reply.message}`);
    }
    tally.refused++;
  }
  tally.completed++;
  tally.identical++;
}

/** Runs a property with a fixed seed, records its tally, then fails the test on any counterexample. */
async function fuzz<T>(kind: string, arbitrary: fc.Arbitrary<T>, damage: (value: T) => Buffer, numRuns: number, seed: number): Promise<void> {
  const tally = newTally(kind);
  const property = fc.asyncProperty(
    arbitrary,
    fc.array(fc.integer({ min: 1, max: 512 }), { minLength: 1, maxLength: 6 }),
    fc.constantFrom<ReaderName>('v1', 'rich'),
    async (value, chunkSizes, reader) => judge(tally, damage(value), chunkSizes, reader),
  );
  const details = await fc.check(property, { numRuns, seed, endOnFailure: false });
  const { decoded, refused, ...entry } = tally;
  recordReliability(entry);
  expect(details.failed, fc.defaultReportMessage(details) ?? '').toBe(false);
  expect(tally.injected).toBeGreaterThanOrEqual(numRuns);
  // Not vacuous: the damage did make the reader refuse files (and some damaged files still decode).
  expect(refused).toBeGreaterThan(numRuns / 10);
  expect(decoded + refused).toBe(tally.completed);
}

const base = fc.integer({ min: 0, max: bases.length - 1 });
/** A position inside (or at the end of) a file, as a fraction so it fits every base. */
const fraction = fc.double({ min: 0, max: 1, noNaN: true });
const at = (bytes: Buffer, where: number): number => Math.min(bytes.length, Math.floor(where * bytes.length));

describe('the guard', () => {
  it('reports a case that spins as a hang and one that eats the heap as a crash, then carries on', async () => {
    expect(await decoder.decode(bases[0]!, [4096], 'v1', { selfTest: 'spin', deadlineMs: 1000 })).toBe('hang');
    expect(await decoder.decode(bases[1]!, [4096], 'v1')).toMatchObject({ outcome: 'records', count: 40 });
    expect(await decoder.decode(bases[0]!, [4096], 'v1', { selfTest: 'allocate' })).toBe('crash');
    expect(await decoder.decode(bases[2]!, [4096], 'rich')).toMatchObject({ outcome: 'records', count: 30 });
  }, 120_000);
});

describe('damaged files never escape as anything but our errors', () => {
  it('byte flips', async () => {
    const flips = fc.array(fc.record({ where: fraction, xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 8 });
    await fuzz('avro byte flips', fc.tuple(base, flips), ([b, changes]) => {
      const bytes = Buffer.from(bases[b]!);
      for (const { where, xor } of changes) bytes[Math.min(bytes.length - 1, at(bytes, where))] ^= xor;
      return bytes;
    }, 1500, 20260101);
  });

  it('insertions', async () => {
    const insertion = fc.record({ where: fraction, inserted: fc.uint8Array({ minLength: 1, maxLength: 64 }) });
    await fuzz('avro insertions', fc.tuple(base, insertion), ([b, { where, inserted }]) => {
      const bytes = bases[b]!;
      const i = at(bytes, where);
      return Buffer.concat([bytes.subarray(0, i), inserted, bytes.subarray(i)]);
    }, 800, 20260102);
  });

  it('deletions', async () => {
    const deletion = fc.record({ where: fraction, length: fc.integer({ min: 1, max: 64 }) });
    await fuzz('avro deletions', fc.tuple(base, deletion), ([b, { where, length }]) => {
      const bytes = bases[b]!;
      const i = at(bytes, where);
      return Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + length)]);
    }, 800, 20260103);
  });

  it('splices of two files', async () => {
    await fuzz('avro splices', fc.tuple(base, fraction, base, fraction), ([a, cutA, b, cutB]) => {
      return Buffer.concat([bases[a]!.subarray(0, at(bases[a]!, cutA)), bases[b]!.subarray(at(bases[b]!, cutB))]);
    }, 600, 20260104);
  });

  it('truncations', async () => {
    await fuzz('avro truncations', fc.tuple(base, fraction), ([b, cut]) => bases[b]!.subarray(0, at(bases[b]!, cut)), 500, 20260105);
  });

  const varint = (value: number): Buffer => {
    const bytes = Buffer.alloc(10);
    return bytes.subarray(0, writeLong(value, bytes, 0));
  };
  const extremes = fc.constantFrom(
      varint(2 ** 52),
      varint(-(2 ** 52)),
      varint(2 ** 31),
      varint(100_000_000),
      varint(-1),
      varint(-100_000_000),
      Buffer.alloc(11, 0xff),
      Buffer.concat([Buffer.alloc(9, 0xff), Buffer.from([0x7f])]),
  );
  /** `value` written over (or inserted at) byte `i`. */
  const place = (bytes: Buffer, i: number, value: Buffer, overwrite: boolean): Buffer =>
    Buffer.concat([bytes.subarray(0, i), value, bytes.subarray(overwrite ? i + value.length : i)]);

  it('extreme varints anywhere', async () => {
    await fuzz('avro extreme varints', fc.tuple(base, fraction, extremes, fc.boolean()), ([b, where, value, overwrite]) => {
      return place(bases[b]!, at(bases[b]!, where), value, overwrite);
    }, 1000, 20260106);
  });

  it('extreme varints where a length, count or union index starts', async () => {
    const target = fc.integer({ min: 0, max: targets.length - 1 }).chain((t) =>
      fc.tuple(fc.constant(t), fc.integer({ min: 0, max: targets[t]!.starts.length - 1 })),
    );
    await fuzz('avro extreme varints at value starts', fc.tuple(target, extremes, fc.boolean()), ([[t, s], value, overwrite]) => {
      const { base: b, starts } = targets[t]!;
      return place(bases[b]!, starts[s]!, value, overwrite);
    }, 1000, 20260107);
  });
});
