/**
 * `--memory-budget` and `--spill-dir` end to end (SPEC §9), with the real CLI on a local root: a
 * day whose join state exceeds the budget is hash-partitioned into buckets and joined bucket by
 * bucket, and publishes the very metrics file of the in-memory run (byte for byte) and the same
 * curated records, each part in input order, for several budgets and --workers 0 and 2. The day
 * mixes the generated sample with duplicate predictions at early and late positions, label ties
 * (same label_ts) across objects, labels past the as-of and non-finite labels, so each order rule
 * of SPEC §3 decides inside buckets. Also: re-partitioning of buckets the estimate undersized, one
 * id too big to split, the spill folder removed on success, failure, SIGTERM and (by the next run)
 * after SIGKILL, an unusable --spill-dir, a full spill disk, and bad --memory-budget values.
 * Needs a fresh `dist/` (`npm run build`), like every CLI test.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { enrichedType, labelType } from '../../src/avro/schemas.js';
import { generateSample } from '../../src/demo/generate.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { startCli } from '../helpers/cli-watch.js';
import { type CliResult, type ManifestJson, avroFile, cliEnv, describeRun, localRoot, readManifest, readRecords, runCli, tempDirectory } from '../helpers/cli.js';
import { predictionV1Type, samplePrediction } from '../helpers/avro-helpers.js';

const DAY = '2026-03-02';
const NEXT = '2026-03-03';
const AS_OF = '2026-03-03T06:00:00Z';
const DAY_START = Date.parse(`${DAY}T00:00:00Z`) * 1000;
const PARTITION = `stage=preliminary/dt=${DAY}/`;
/** Tests that run the CLI several times on a 20k-prediction day: generous, for a loaded 2-core machine. */
const SLOW = 300_000;

let base: { path: string; remove: () => Promise<void> };
const folders: Array<{ path: string; remove: () => Promise<void> }> = [];

function cli(args: readonly string[]): Promise<CliResult> {
  return runCli(args, cliEnv(inject('s3Endpoint')));
}

async function temp(name: string): Promise<string> {
  const dir = await tempDirectory(name);
  folders.push(dir);
  return dir.path;
}

function prediction(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...samplePrediction(i), inference_ts: DAY_START + i * 7_000_000, ...extra };
}

function label(i: number, yTrue: number, labelTs: number): Record<string, unknown> {
  return { prediction_id: samplePrediction(i).prediction_id, y_true: yTrue, label_ts: labelTs };
}

beforeAll(async () => {
  base = await tempDirectory('spill-base');
  const root = localRoot(base.path);
  await generateSample(root.store('predictions'), root.store('labels'), { from: DAY, days: 1, predictionsPerDay: 12_000, filesPerDay: 4 });
  const predictions = root.store('predictions');
  const labels = root.store('labels');
  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, k) => from + k);
  // Early duplicates (hour=00, before everything): these win over the later copies of their ids.
  await predictions.write(`dt=${DAY}/hour=00/aa-early.avro`, avroFile(predictionV1Type, range(2500, 3000).map((i) => prediction(i, { y_pred: -i })), { seed: 'early' }));
  await predictions.write(`dt=${DAY}/hour=23/zz-own.avro`, avroFile(predictionV1Type, range(0, 3000).map((i) => prediction(i, i % 97 === 0 ? { y_pred: Number.NaN } : {})), { seed: 'own' }));
  // Late duplicates (re-sent): they lose to the copies before them.
  await predictions.write(`dt=${DAY}/hour=23/zz-resent.avro`, avroFile(predictionV1Type, range(0, 1000).map((i) => prediction(i, { y_pred: i * 100 })), { seed: 'resent' }));
  // Ties: two labels of the same label_ts in two objects (the later object wins), a label past the as-of, non-finite ones.
  const tieTs = (i: number): number => DAY_START + i * 7_000_000 + 3_600_000_000;
  await labels.write(`dt=${DAY}/zz-ties-a.avro`, avroFile(labelType, range(0, 3000).map((i) => label(i, i + 0.25, tieTs(i))), { seed: 'ties-a', codec: 'snappy' }));
  await labels.write(`dt=${NEXT}/ties-b.avro`, avroFile(labelType, range(0, 3000).flatMap((i) => [label(i, i + 0.75, tieTs(i)), label(i, -1, Date.parse(`${NEXT}T07:00:00Z`) * 1000), ...(i % 50 === 0 ? [label(i, Number.POSITIVE_INFINITY, tieTs(i) + 1)] : [])]), { seed: 'ties-b' }));
}, SLOW);

afterAll(async () => {
  await Promise.all([base?.remove(), ...folders.map((f) => f.remove())]);
});

interface Run {
  result: CliResult;
  out: string;
  spillDir: string;
}

async function run(flags: readonly string[], spillDir?: string): Promise<Run> {
  const out = await temp('spill-out');
  const dir = spillDir ?? (await temp('spill-dir'));
  const result = await cli([
    'run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--json', '--part-size-mb', '1', '--log-format', 'json',
    '--root', base.path, '--curated', join(out, 'curated'), '--metrics', join(out, 'metrics'), '--alerts-dataset', join(out, 'alerts'),
    '--spill-dir', dir, ...flags,
  ]);
  return { result, out, spillDir: dir };
}

const metricsBytes = (r: Run): Promise<Buffer> => readFile(join(r.out, 'metrics', PARTITION, 'metrics.avro'));
const manifestOf = async (r: Run, dataset: 'curated' | 'metrics'): Promise<ManifestJson | undefined> => readManifest(new LocalObjectStore(join(r.out, dataset)), `${PARTITION}_SUCCESS`);

async function curatedParts(r: Run): Promise<Array<Array<Record<string, unknown>>>> {
  const store = new LocalObjectStore(join(r.out, 'curated'));
  const manifest = (await manifestOf(r, 'curated'))!;
  const parts: Array<Array<Record<string, unknown>>> = [];
  for (const output of manifest.outputs) parts.push(await readRecords<Record<string, unknown>>(store, output.key, enrichedType));
  return parts;
}

const canonical = (record: Record<string, unknown>): string => JSON.stringify(record, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));

async function spillFolders(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith('model-metrics-spill-'));
}

describe('--memory-budget: a spilled day publishes what the in-memory run publishes', () => {
  let reference: Run;
  let referenceParts: Array<Array<Record<string, unknown>>>;

  beforeAll(async () => {
    reference = await run(['--workers', '0']);
    expect(reference.result.code, describeRun(reference.result)).toBe(0);
    expect(reference.result.logs.some((l) => l.event === 'spill_started')).toBe(false);
    referenceParts = await curatedParts(reference);
  }, SLOW);

  const cases: Array<[string, string]> = [
    ['64KiB', '0'],
    ['64KiB', '2'],
    ['300KiB', '0'],
    ['300KiB', '2'],
    ['1MiB', '2'],
  ];
  const bucketCounts = new Map<string, number>();
  it.each(cases)('--memory-budget %s --workers %s: the same metrics bytes, the same curated records, each part in input order', { timeout: SLOW }, async (budget, workers) => {
    const spilled = await run(['--memory-budget', budget, '--workers', workers]);
    expect(spilled.result.code, describeRun(spilled.result)).toBe(0);
    const started = spilled.result.logs.find((l) => l.event === 'spill_started');
    expect(started, 'a spill_started line').toBeDefined();
    expect(started).toMatchObject({ budget: expect.any(Number), estimate_bytes: expect.any(Number), buckets: expect.any(Number) });
    expect(spilled.result.logs.filter((l) => l.event === 'spill_bucket_joined').length).toBeGreaterThan(1);

    expect((await metricsBytes(spilled)).equals(await metricsBytes(reference))).toBe(true);
    const parts = await curatedParts(spilled);
    expect(parts.length).toBeGreaterThan(1);
    const all = parts.flat().map(canonical).sort();
    expect(all).toEqual(referenceParts.flat().map(canonical).sort());
    // Each part in input order: its records keep the in-memory run's relative order.
    const position = new Map(referenceParts.flat().map((r, i) => [r.prediction_id as string, i]));
    for (const part of parts) {
      const positions = part.map((r) => position.get(r.prediction_id as string)!);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
    }
    const manifest = (await manifestOf(spilled, 'curated'))!;
    const { spill_buckets, spill_bytes, ...stats } = manifest.stats;
    expect(stats).toEqual((await manifestOf(reference, 'curated'))!.stats);
    expect(spill_buckets).toBeGreaterThan(1);
    expect(spill_bytes).toBeGreaterThan(0);
    bucketCounts.set(budget, spill_buckets!);
    expect(await spillFolders(spilled.spillDir)).toEqual([]);
  });

  it('smaller budgets make more buckets', () => {
    expect(bucketCounts.get('64KiB')!).toBeGreaterThan(bucketCounts.get('300KiB')!);
    expect(bucketCounts.get('300KiB')!).toBeGreaterThan(bucketCounts.get('1MiB')!);
  });

  it('re-partitions buckets whose exact counts exceed the budget (labels that compress far better than the estimate assumes)', async () => {
    const labels = localRoot(base.path).store('labels');
    // 10 labels per id in runs of one id, constant values: deflate shrinks them ~10x below the estimate's 32 bytes a record.
    const bulk = Array.from({ length: 30_000 }, (_, k) => label(Math.floor(k / 10), 5, DAY_START + 3_600_000_000));
    const key = `dt=${NEXT}/zz-bulk.avro`;
    await labels.write(key, avroFile(labelType, bulk, { seed: 'bulk' }));
    try {
      const inMemory = await run(['--workers', '2']);
      expect(inMemory.result.code, describeRun(inMemory.result)).toBe(0);
      for (const workers of ['0', '2']) {
        const spilled = await run(['--memory-budget', '200KiB', '--workers', workers]);
        expect(spilled.result.code, describeRun(spilled.result)).toBe(0);
        const repartitioned = spilled.result.logs.filter((l) => l.event === 'spill_bucket_repartitioned');
        expect(repartitioned.length).toBeGreaterThan(0);
        expect(repartitioned[0]).toMatchObject({ level: 1 });
        expect((await metricsBytes(spilled)).equals(await metricsBytes(inMemory))).toBe(true);
        expect((await curatedParts(spilled)).flat().map(canonical).sort()).toEqual((await curatedParts(inMemory)).flat().map(canonical).sort());
        expect(await spillFolders(spilled.spillDir)).toEqual([]);
      }
    } finally {
      await labels.delete([key]);
    }
  }, SLOW);

  it('fails with exit 2 naming the id and --memory-budget when one id has more labels than fit, publishing nothing', async () => {
    const labels = localRoot(base.path).store('labels');
    const key = `dt=${NEXT}/zz-one-id.avro`;
    await labels.write(key, avroFile(labelType, Array.from({ length: 5000 }, (_, k) => label(7, k, DAY_START + k)), { seed: 'one-id' }));
    try {
      const spilled = await run(['--memory-budget', '64KiB', '--workers', '0']);
      expect(spilled.result.code, describeRun(spilled.result)).toBe(2);
      const message = String(spilled.result.lastError()?.message);
      expect(message).toContain(`prediction_id "${samplePrediction(7).prediction_id as string}" alone has`);
      expect(message).toContain('Raise --memory-budget');
      expect(await manifestOf(spilled, 'curated')).toBeUndefined();
      expect(await manifestOf(spilled, 'metrics')).toBeUndefined();
      expect(await spillFolders(spilled.spillDir)).toEqual([]);
    } finally {
      await labels.delete([key]);
    }
  }, SLOW);
});

describe('the spill folder', () => {
  it('is removed after a failed run (a corrupt block met while partitioning), which publishes nothing', async () => {
    const predictions = localRoot(base.path).store('predictions');
    const good = avroFile(predictionV1Type, Array.from({ length: 4000 }, (_, k) => prediction(40_000 + k)), { seed: 'corrupt' });
    const damaged = Buffer.from(good);
    for (let i = damaged.length - 40; i < damaged.length - 20; i++) damaged[i] = 0xff;
    const key = `dt=${DAY}/hour=23/zzz-corrupt.avro`;
    await predictions.write(key, damaged);
    try {
      for (const workers of ['0', '2']) {
        const spilled = await run(['--memory-budget', '64KiB', '--workers', workers]);
        expect(spilled.result.code, describeRun(spilled.result)).toBe(1);
        expect(spilled.result.lastError()).toMatchObject({ code: 'E_CORRUPT_OBJECT', uri: predictions.uriOf(key) });
        expect(spilled.result.logs.some((l) => l.event === 'spill_started')).toBe(true);
        expect(await spillFolders(spilled.spillDir)).toEqual([]);
        expect(await manifestOf(spilled, 'curated')).toBeUndefined();
      }
    } finally {
      await predictions.delete([key]);
    }
  }, SLOW);

  it('is removed on SIGTERM (exit 143), and a SIGKILLed run\'s folder is removed by the next run', async () => {
    const spillDir = await temp('spill-signals');
    const out = await temp('spill-signals-out');
    const args = [
      'run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--log-format', 'json', '--workers', '0',
      '--root', base.path, '--curated', join(out, 'curated'), '--metrics', join(out, 'metrics'), '--alerts-dataset', join(out, 'alerts'),
      '--spill-dir', spillDir, '--memory-budget', '64KiB',
    ];
    const env = cliEnv(inject('s3Endpoint'));
    const termed = startCli(args, env);
    await termed.waitFor((l) => l.event === 'spill_started');
    expect(await spillFolders(spillDir)).toHaveLength(1);
    termed.signal('SIGTERM');
    const termExit = await termed.exited;
    expect(termExit.code).toBe(143);
    expect(await spillFolders(spillDir)).toEqual([]);

    const killed = startCli(args, env, { killWhen: (l) => l.event === 'spill_partitioned' });
    const killExit = await killed.exited;
    expect(killExit.signal).toBe('SIGKILL');
    const left = await spillFolders(spillDir);
    expect(left).toHaveLength(1);
    const owner = JSON.parse(await readFile(join(spillDir, left[0]!, 'owner.json'), 'utf8')) as { pid: number };
    expect(owner.pid).toBe(killed.pid);
    expect((await readdir(join(spillDir, left[0]!))).length).toBeGreaterThan(1);

    const next = await cli([...args, '--json']);
    expect(next.code, describeRun(next)).toBe(0);
    expect(next.logs.find((l) => l.event === 'spill_stale_removed')).toMatchObject({ owner_pid: killed.pid });
    expect(await spillFolders(spillDir)).toEqual([]);
  }, SLOW);

  it('refuses an unusable --spill-dir with exit 2 before reading anything, naming the option', async () => {
    const dir = await temp('spill-file');
    const file = join(dir, 'not-a-folder');
    await writeFile(file, 'x');
    const spilled = await run(['--memory-budget', '64KiB', '--workers', '0'], join(file, 'spill'));
    expect(spilled.result.code, describeRun(spilled.result)).toBe(2);
    expect(spilled.result.lastError()).toMatchObject({ code: 'E_USAGE', option: '--spill-dir' });
    expect(String(spilled.result.lastError()?.message)).toMatch(/^--spill-dir .* cannot hold this run's bucket files \(ENOTDIR\)/);
    expect(spilled.result.logs.some((l) => l.event === 'labels_indexed' || l.event === 'spill_started')).toBe(false);
    expect(await manifestOf(spilled, 'curated')).toBeUndefined();
    // A day that fits never opens the spill dir: the same bad --spill-dir does not matter then.
    const fits = await run(['--workers', '0'], join(file, 'spill'));
    expect(fits.result.code, describeRun(fits.result)).toBe(0);
  }, SLOW);

  // A full disk for real: a 256 KiB tmpfs (mounting needs root; the bucket files of this day take more).
  it.skipIf(process.getuid?.() !== 0)('fails with a clear error naming the spill dir when it fills up (ENOSPC on a small tmpfs), publishing nothing', async () => {
    const mount = join(await temp('spill-tmpfs'), 'small');
    await mkdir(mount);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount]);
    expect(mounted.status, String(mounted.stderr)).toBe(0);
    try {
      for (const workers of ['0', '2']) {
        const spilled = await run(['--memory-budget', '64KiB', '--workers', workers], mount);
        expect(spilled.result.code, describeRun(spilled.result)).toBe(1);
        expect(spilled.result.lastError()).toMatchObject({ code: 'E_STORAGE', option: '--spill-dir', path: mount });
        expect(String(spilled.result.lastError()?.message)).toContain(`the spill dir ${mount} is full (ENOSPC)`);
        expect(String(spilled.result.lastError()?.message)).toContain('raise --memory-budget');
        expect(await manifestOf(spilled, 'curated')).toBeUndefined();
        expect(await manifestOf(spilled, 'metrics')).toBeUndefined();
        expect(await readdir(mount)).toEqual([]);
      }
    } finally {
      spawnSync('umount', [mount]);
    }
  }, SLOW);
});

describe('--memory-budget values', () => {
  it.each(['lots', '12XB', '-1GiB', '1KiB', '0', '1.5.2G'])('refuses %j with exit 2 naming the option', async (bad) => {
    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--root', base.path, '--log-format', 'json', '--memory-budget', bad]);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.lastError()).toMatchObject({ code: 'E_USAGE', option: '--memory-budget' });
    expect(String(result.lastError()?.message)).toMatch(/^--memory-budget: /);
  });

  it('refuses a bad MODEL_METRICS_MEMORY_BUDGET naming the option', async () => {
    const result = await runCli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--root', base.path, '--log-format', 'json'], cliEnv(inject('s3Endpoint'), { MODEL_METRICS_MEMORY_BUDGET: 'huge' }));
    expect(result.code, describeRun(result)).toBe(2);
    expect(String(result.lastError()?.message)).toContain('--memory-budget');
  });
});
