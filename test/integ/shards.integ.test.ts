/**
 * One day across pods (SPEC §9, `run --shards K --phase partition|join|commit`) end to end against
 * the loopback S3 server, every phase a real CLI process: a 3-shard day publishes the very
 * metrics file of the unsharded run (byte for byte), the same curated records (each part in input
 * order) and manifests with the same fingerprint, inputs and stats; run as K processes by
 * `run --shards K` or phase by phase; a join before its partitions (and a commit before its
 * joins) is exit 3 naming what is missing; a shard SIGKILLed in each phase and rerun converges to
 * the same bytes, and a SIGTERM to `run --shards K` exits 143 with nothing published; a phase
 * after the commit is "already done"; bad options are exit 2 naming the option. The day mixes the
 * generated sample with early and late duplicates, label ties across objects, non-finite values
 * and labels past the as-of. Needs a fresh `dist/` (`npm run build`).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { enrichedType, labelType } from '../../src/avro/schemas.js';
import { generateSample } from '../../src/demo/generate.js';
import { S3ObjectStore } from '../../src/storage/s3.js';
import type { ObjectStore } from '../../src/storage/types.js';
import { startCli } from '../helpers/cli-watch.js';
import { type CliResult, type ManifestJson, avroFile, cliEnv, describeRun, readBytes, readHeader, readManifest, readRecords, runCli, testClient } from '../helpers/cli.js';
import { predictionV1Type, samplePrediction } from '../helpers/avro-helpers.js';
import { createTestBucket } from '../helpers/s3rver.js';

const DAY = '2026-03-02';
const NEXT = '2026-03-03';
const AS_OF = '2026-03-03T06:00:00Z';
const DAY_START = Date.parse(`${DAY}T00:00:00Z`) * 1000;
const PARTITION = `stage=preliminary/dt=${DAY}/`;
const STAGING = `_staging/${PARTITION}`;

let endpoint: string;
let bucket: string;
let client: S3Client;

const store = (prefix: string): ObjectStore => new S3ObjectStore(client, bucket, prefix);

function env(extra: Record<string, string> = {}): Record<string, string> {
  return cliEnv(endpoint, extra);
}

/** The flags of every run of the day: inputs under in/, outputs under `out`/. */
function dayArgs(out: string, extra: readonly string[] = []): string[] {
  return [
    'run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--json', '--log-format', 'json', '--part-size-mb', '1',
    '--s3-endpoint', endpoint, '--s3-force-path-style',
    '--predictions', `s3://${bucket}/in/predictions`, '--labels', `s3://${bucket}/in/labels`,
    '--curated', `s3://${bucket}/${out}/curated`, '--metrics', `s3://${bucket}/${out}/metrics`, '--alerts-dataset', `s3://${bucket}/${out}/alerts`,
    ...extra,
  ];
}

const SHARDED = ['--shards', '3', '--memory-budget', '200KiB', '--workers', '1'];

function cli(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, env(extraEnv));
}

function prediction(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...samplePrediction(i), inference_ts: DAY_START + i * 7_000_000, ...extra };
}

function label(i: number, yTrue: number, labelTs: number): Record<string, unknown> {
  return { prediction_id: samplePrediction(i).prediction_id, y_true: yTrue, label_ts: labelTs };
}

beforeAll(async () => {
  endpoint = inject('s3Endpoint');
  bucket = await createTestBucket(endpoint);
  client = testClient(endpoint);
  const predictions = store('in/predictions');
  const labels = store('in/labels');
  await generateSample(predictions, labels, { from: DAY, days: 1, predictionsPerDay: 6000, filesPerDay: 5, seed: 9 });
  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, k) => from + k);
  // Early duplicates win over their later copies; late ones (re-sent) lose; NaN predictions; ties across objects.
  await predictions.write(`dt=${DAY}/hour=00/aa-early.avro`, avroFile(predictionV1Type, range(1200, 1500).map((i) => prediction(i, { y_pred: -i })), { seed: 'early' }));
  await predictions.write(`dt=${DAY}/hour=23/zz-own.avro`, avroFile(predictionV1Type, range(0, 1500).map((i) => prediction(i, i % 97 === 0 ? { y_pred: Number.NaN } : {})), { seed: 'own' }));
  await predictions.write(`dt=${DAY}/hour=23/zz-resent.avro`, avroFile(predictionV1Type, range(0, 500).map((i) => prediction(i, { y_pred: i * 100 })), { seed: 'resent' }));
  const tieTs = (i: number): number => DAY_START + i * 7_000_000 + 3_600_000_000;
  await labels.write(`dt=${DAY}/zz-ties-a.avro`, avroFile(labelType, range(0, 1500).map((i) => label(i, i + 0.25, tieTs(i))), { seed: 'ties-a' }));
  await labels.write(`dt=${NEXT}/ties-b.avro`, avroFile(labelType, range(0, 1500).flatMap((i) => [label(i, i + 0.75, tieTs(i)), label(i, -1, Date.parse(`${NEXT}T07:00:00Z`) * 1000), ...(i % 50 === 0 ? [label(i, Number.POSITIVE_INFINITY, tieTs(i) + 1)] : [])]), { seed: 'ties-b' }));
});

afterAll(() => {
  client?.destroy();
});

const metricsBytes = (out: string): Promise<Buffer> => readBytes(store(`${out}/metrics`), `${PARTITION}metrics.avro`);
const manifestOf = async (out: string, dataset: 'curated' | 'metrics'): Promise<ManifestJson> => (await readManifest(store(`${out}/${dataset}`), `${PARTITION}_SUCCESS`))!;

async function curatedParts(out: string): Promise<Array<Array<Record<string, unknown>>>> {
  const curated = store(`${out}/curated`);
  const parts: Array<Array<Record<string, unknown>>> = [];
  for (const output of (await manifestOf(out, 'curated')).outputs) parts.push(await readRecords<Record<string, unknown>>(curated, output.key, enrichedType));
  return parts;
}

const canonical = (record: Record<string, unknown>): string => JSON.stringify(record, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));

describe('run --shards 3: the published day is the unsharded one', () => {
  let referenceParts: Array<Array<Record<string, unknown>>>;
  let referenceMetrics: Buffer;
  let reference: { curated: ManifestJson; metrics: ManifestJson };

  beforeAll(async () => {
    const result = await cli(dayArgs('reference', ['--workers', '0']));
    expect(result.code, describeRun(result)).toBe(0);
    referenceParts = await curatedParts('reference');
    referenceMetrics = await metricsBytes('reference');
    reference = { curated: await manifestOf('reference', 'curated'), metrics: await manifestOf('reference', 'metrics') };
  });

  /** The published day of `out` against the reference: metrics bytes, curated records, manifests; and no shard staging left. */
  async function expectReference(out: string): Promise<void> {
    expect((await metricsBytes(out)).equals(referenceMetrics), 'metrics.avro byte-identical').toBe(true);
    const parts = await curatedParts(out);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.flat().map(canonical).sort()).toEqual(referenceParts.flat().map(canonical).sort());
    // Each part in input order: its records keep the unsharded run's relative order.
    const position = new Map(referenceParts.flat().map((r, i) => [r.prediction_id as string, i]));
    for (const part of parts) {
      const positions = part.map((r) => position.get(r.prediction_id as string)!);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
    }
    // Every part's header carries the run's stage, as-of and label window (SPEC §4), as the unsharded parts do.
    const metadataOf = async (root: string, key: string): Promise<Record<string, string>> => {
      const header = await readHeader(store(`${root}/curated`), key);
      return Object.fromEntries([...header.metadata].filter(([name]) => name.startsWith('model_metrics.')).map(([name, value]) => [name, value.toString('utf8')]));
    };
    const expectedMetadata = await metadataOf('reference', reference.curated.outputs[0]!.key);
    expect(Object.keys(expectedMetadata)).toHaveLength(3);
    for (const output of (await manifestOf(out, 'curated')).outputs) expect(await metadataOf(out, output.key)).toEqual(expectedMetadata);
    for (const dataset of ['curated', 'metrics'] as const) {
      const manifest = await manifestOf(out, dataset);
      const expected = reference[dataset];
      expect(manifest.fingerprint).toBe(expected.fingerprint);
      expect(manifest.inputs).toEqual(expected.inputs);
      expect(manifest.skipped).toEqual(expected.skipped);
      expect(manifest.stats).toEqual(expected.stats);
    }
    expect((await store(`${out}/metrics`).list(PARTITION)).map((o) => o.key).sort()).toEqual([`${PARTITION}_SUCCESS`, `${PARTITION}metrics.avro`]);
    const staging = await store(`${out}/curated`).listFolder(STAGING);
    expect(staging.folders.filter((f) => f.includes('shards-')), 'the shard folder is removed after the commit').toEqual([]);
  }

  it('as 3 child processes per phase (run --shards 3 without --phase)', async () => {
    const result = await cli(dayArgs('local', SHARDED));
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.json<{ status: string }>().status).toBe('done');
    expect(result.logs.filter((l) => l.event === 'shard_partition_done')).toHaveLength(3);
    expect(result.logs.filter((l) => l.event === 'shard_join_done')).toHaveLength(3);
    expect(result.logs.filter((l) => l.event === 'shard_bucket_joined').length).toBeGreaterThan(3);
    await expectReference('local');
    // Rerun: already done, in every mode.
    const again = await cli(dayArgs('local', SHARDED));
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.json<{ status: string }>().status).toBe('already_done');
  });

  it('SIGTERM while the children partition stops them and exits 143 as interrupted (not as their failure), publishing nothing; a rerun converges', async () => {
    const out = 'interrupted';
    const run = startCli(dayArgs(out, SHARDED), env());
    expect(await run.waitFor((line) => line.event === 'shard_partition_started'), 'a child started partitioning').toBeDefined();
    run.signal('SIGTERM');
    const exit = await run.exited;
    expect(exit.code, exit.stderr.slice(-2000)).toBe(143);
    expect(exit.logs.some((line) => line.event === 'shard_phase_started' && line.phase === 'join'), 'no join phase after the signal').toBe(false);
    // The parent's own last line (it logs after its children have exited): its InterruptedError, not a child's failure.
    expect(exit.logs.filter((line) => line.code !== undefined).at(-1)).toMatchObject({ code: 'E_INTERRUPTED', name: 'InterruptedError' });
    expect(exit.stderr).not.toMatch(/the partition phase of shard \d of 3 (exited|was killed)/);
    expect(await store(`${out}/metrics`).hasAny(''), 'nothing published').toBe(false);
    const again = await cli(dayArgs(out, SHARDED));
    expect(again.code, describeRun(again)).toBe(0);
    await expectReference(out);
  });

  it('phase by phase, each a separate process; joins before their partitions and a commit before its joins are not ready (exit 3)', async () => {
    const out = 'phases';
    const phase = (name: string, index?: number, extraEnv: Record<string, string> = {}): Promise<CliResult> =>
      cli(dayArgs(out, [...SHARDED, '--phase', name, ...(index === undefined ? [] : ['--shard-index', String(index)])]), extraEnv);

    const early = await phase('join', 0);
    expect(early.code, describeRun(early)).toBe(3);
    expect(early.finalLine).toMatch(/partition phase .* not done for shard\(s\) 0, 1, 2 of 3: missing s3:\/\/.*p0\/_DONE\.json/);
    // A partition pod with another --memory-budget computes another bucket count: the join refuses the mix.
    const odd = await cli(dayArgs(out, [...SHARDED, '--memory-budget', '64KiB', '--phase', 'partition', '--shard-index', '0']));
    expect(odd.code, describeRun(odd)).toBe(0);
    const others = await Promise.all([phase('partition', 1), phase('partition', 2, { JOB_COMPLETION_INDEX: '2' })]);
    for (const p of others) expect(p.code, describeRun(p)).toBe(0);
    expect(odd.json<{ buckets: number }>().buckets).not.toBe(others[0]!.json<{ buckets: number }>().buckets);
    const mixed = await phase('join', 1);
    expect(mixed.code, describeRun(mixed)).toBe(1);
    expect(mixed.lastError()).toMatchObject({ code: 'E_CORRUPT_OBJECT' });
    expect(mixed.finalLine).toMatch(/p1\/_DONE\.json: buckets is \d+, expected \d+ \(the partition pods disagree on the bucket count: give every pod the same --memory-budget/);
    const redone = await phase('partition', 0);
    expect(redone.code, describeRun(redone)).toBe(0);
    // The index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) when --shard-index is absent.
    const fromEnv = await cli(dayArgs(out, [...SHARDED, '--phase', 'partition']), { JOB_COMPLETION_INDEX: '1' });
    expect(fromEnv.code, describeRun(fromEnv)).toBe(0);
    expect(fromEnv.json<{ shard: number; status: string }>()).toMatchObject({ shard: 1, status: 'done' });

    const commitEarly = await phase('commit');
    expect(commitEarly.code, describeRun(commitEarly)).toBe(3);
    expect(commitEarly.finalLine).toMatch(/join phase .* not done for shard\(s\) 0, 1, 2 of 3/);
    expect(await store(`${out}/metrics`).hasAny(PARTITION)).toBe(false);

    for (const index of [0, 1, 2]) {
      const joined = await phase('join', index);
      expect(joined.code, describeRun(joined)).toBe(0);
    }
    expect(await store(`${out}/curated`).hasAny(PARTITION), 'only the commit publishes').toBe(false);
    const committed = await phase('commit');
    expect(committed.code, describeRun(committed)).toBe(0);
    await expectReference(out);
    for (const [name, index] of [['partition', 1], ['join', 2], ['commit', undefined]] as const) {
      const again = await phase(name, index);
      expect(again.code, describeRun(again)).toBe(0);
      expect(again.json<{ status: string }>().status).toBe('already_done');
    }
  });

  it('a shard SIGKILLed in each phase, then rerun, converges to the same bytes', async () => {
    const out = 'killed';
    const args = (name: string, index?: number): string[] => dayArgs(out, [...SHARDED, '--phase', name, ...(index === undefined ? [] : ['--shard-index', String(index)])]);
    const killedRun = async (name: string, index: number | undefined, event: string): Promise<void> => {
      const run = startCli(args(name, index), env(), { killWhen: (line) => line.event === event });
      const exit = await run.exited;
      expect(exit.signal, `${name} ${index}: killed at ${event}\n${exit.stderr.slice(-2000)}`).toBe('SIGKILL');
    };
    const ok = async (name: string, index?: number): Promise<void> => {
      const result = await cli(args(name, index));
      expect(result.code, describeRun(result)).toBe(0);
    };

    await killedRun('partition', 1, 'shard_partition_started');
    await Promise.all([ok('partition', 0), ok('partition', 2)]);
    const notYet = await cli(args('join', 0));
    expect(notYet.code, describeRun(notYet)).toBe(3);
    expect(notYet.finalLine).toMatch(/not done for shard\(s\) 1 of 3/);
    await ok('partition', 1);

    await killedRun('join', 0, 'shard_bucket_joined');
    await Promise.all([ok('join', 1), ok('join', 2)]);
    await ok('join', 0);

    // Killed inside the commit (old outputs removed, new ones not yet all in place): the rerun takes the lease over and commits.
    await killedRun('commit', undefined, 'commit_unpublished');
    await ok('commit');
    await expectReference(out);
  });
});

describe('run --shards with a corrupt input object', () => {
  const args = (out: string, extra: readonly string[]): string[] =>
    dayArgs(out, extra).map((arg) => arg.replace(`s3://${bucket}/in/`, `s3://${bucket}/corrupt-in/`));

  beforeAll(async () => {
    await generateSample(store('corrupt-in/predictions'), store('corrupt-in/labels'), { from: DAY, days: 1, predictionsPerDay: 1500, filesPerDay: 4, seed: 3 });
    await store('corrupt-in/predictions').write(`dt=${DAY}/hour=12/broken.avro`, Buffer.from('Obj\x01 but not an Avro container at all'));
  });

  it('fails like the unsharded run (the child\'s code and the object\'s URI reach the parent), and under --on-corrupt skip publishes the same day and skip list', async () => {
    const failed = await cli(args('corrupt-fail', ['--shards', '2', '--workers', '0']));
    expect(failed.code, describeRun(failed)).toBe(1);
    expect(failed.lastError()).toMatchObject({ code: 'E_CORRUPT_OBJECT' });
    expect(failed.finalLine).toMatch(/the partition phase of shard \d of 2 exited 1: .*corrupt-in\/predictions\/dt=2026-03-02\/hour=12\/broken\.avro/);
    expect(await store('corrupt-fail/metrics').hasAny(''), 'nothing published').toBe(false);

    const reference = await cli(args('corrupt-ref', ['--on-corrupt', 'skip', '--workers', '0']));
    expect(reference.code, describeRun(reference)).toBe(0);
    const sharded = await cli(args('corrupt-sharded', ['--on-corrupt', 'skip', '--shards', '2', '--workers', '0']));
    expect(sharded.code, describeRun(sharded)).toBe(0);
    expect((await metricsBytes('corrupt-sharded')).equals(await metricsBytes('corrupt-ref'))).toBe(true);
    const [mine, theirs] = [await manifestOf('corrupt-sharded', 'metrics'), await manifestOf('corrupt-ref', 'metrics')];
    expect(mine.skipped).toHaveLength(1);
    expect(mine.skipped).toEqual(theirs.skipped);
    expect(mine.inputs).toEqual(theirs.inputs);
    expect(mine.fingerprint).toBe(theirs.fingerprint);
  });
});

describe('run --shards before a final window closes', () => {
  it('is not ready (exit 3) from the first phase, as the unsharded run is, and writes nothing', async () => {
    const result = await cli(dayArgs('early-final', ['--shards', '2', '--workers', '0']).map((arg) => (arg === 'preliminary' ? 'final' : arg)));
    expect(result.code, describeRun(result)).toBe(3);
    expect(result.lastError()).toMatchObject({ code: 'E_NOT_READY' });
    expect(result.finalLine).toMatch(/the partition phase of shard \d of 2 exited 3: final metrics for 2026-03-02 are not ready/);
    expect(await store('early-final/curated').hasAny(''), 'nothing written').toBe(false);
  });
});

describe('run --shards: bad values are exit 2 naming the option', () => {
  const cases: Array<[string, string[], Record<string, string>, string, RegExp]> = [
    ['--shards 0', ['--shards', '0'], {}, '--shards', /--shards must be from 1 to 256, got 0/],
    ['--shards 1000', ['--shards', '1000'], {}, '--shards', /--shards must be from 1 to 256/],
    ['--shards two', ['--shards', 'two'], {}, '--shards', /expected a whole number/],
    ['--shard-index 3 of 3', ['--shards', '3', '--phase', 'join', '--shard-index', '3'], {}, '--shard-index', /--shard-index must be from 0 to 2 \(--shards 3\), got 3/],
    ['JOB_COMPLETION_INDEX past K', ['--shards', '2', '--phase', 'partition'], { JOB_COMPLETION_INDEX: '5' }, '--shard-index', /--shard-index must be from 0 to 1/],
    ['no index for a partition', ['--shards', '3', '--phase', 'partition'], {}, '--shard-index', /--phase partition needs --shard-index I \(0 to 2\), or JOB_COMPLETION_INDEX/],
    ['a bad JOB_COMPLETION_INDEX', ['--shards', '3', '--phase', 'join'], { JOB_COMPLETION_INDEX: 'x' }, '--shard-index', /JOB_COMPLETION_INDEX .*\(got "x"\)/],
    ['an unknown phase', ['--shards', '3', '--phase', 'merge'], {}, '--phase', /--phase must be one of partition, join, commit, got "merge"/],
    ['--phase without --shards', ['--phase', 'join'], {}, '--phase', /--phase needs --shards K/],
    ['--shard-index without --phase', ['--shards', '3', '--shard-index', '1'], {}, '--shard-index', /--shard-index is for --phase partition or join/],
    ['--shard-index with the commit', ['--shards', '3', '--phase', 'commit', '--shard-index', '1'], {}, '--shard-index', /the commit runs once/],
  ];

  it.each(cases)('%s', async (_name, flags, extraEnv, option, message) => {
    const result = await cli(dayArgs('bad', flags), extraEnv);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.lastError()).toMatchObject({ code: 'E_USAGE', option });
    expect(result.finalLine).toMatch(message);
    expect(await store('bad/curated').hasAny(''), 'nothing written').toBe(false);
  });

  it('a phase of a preliminary without --as-of is refused: every phase must list the same run', async () => {
    const args = dayArgs('bad', ['--shards', '2', '--phase', 'partition', '--shard-index', '0']);
    args.splice(args.indexOf('--as-of'), 2);
    const result = await cli(args);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.lastError()).toMatchObject({ code: 'E_USAGE', option: '--as-of' });
    expect(result.finalLine).toMatch(/--phase partition of a preliminary needs an explicit --as-of/);
    expect(await store('bad/curated').hasAny(''), 'nothing written').toBe(false);
  });

  it('backfill refuses --shards (sharding a range is --shard-count)', async () => {
    const result = await cli(['backfill', '--from', DAY, '--to', DAY, '--stage', 'preliminary', '--root', `s3://${bucket}/in`, '--s3-endpoint', endpoint, '--s3-force-path-style', '--shards', '2', '--log-format', 'json']);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.lastError()).toMatchObject({ code: 'E_USAGE', option: '--shards' });
    expect(result.finalLine).toMatch(/backfill does not use --shards \(an option of run\)/);
  });
});
