/**
 * Crash safety (issue 5): the real CLI is killed with SIGKILL at many points of a run — during the
 * reads, between curated part files, at each step of the commit, after the data files and before
 * `_SUCCESS` — on a local folder and on s3rver. The kill points are the run's own JSON log events
 * (the child is killed in the same tick its line arrives), so no test hook lives in the job.
 *
 * Each scenario starts from a published partition of an earlier run with other inputs (an earlier
 * --as-of: other labels, other bytes in every file). After the kill: each dataset's partition is
 * the old result whole, the new result whole, or has no `_SUCCESS` with data files all from the old
 * run or all from the new one — never a mix — and a committed metrics partition implies a committed
 * curated one of the same run. Then a rerun exits 0, its files are byte-identical to those of an
 * uninterrupted run, and nothing at all is left under `_staging/`: no object, no lease, and on a
 * local folder no temp file of an interrupted write and no directory (the `_staging` folder itself
 * is gone). A dead run that left only a partial write is found and removed by the next run.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateSample } from '../../src/demo/generate.js';
import { LOCAL_TEMP_PREFIX } from '../../src/storage/local.js';
import { type DatasetRoot, type LogLine, cliEnv, localRoot, s3Root, tempDirectory, testClient } from '../helpers/cli.js';
import { type WatchedExit, describeExit, eventsOf, startCli } from '../helpers/cli-watch.js';
import { DATASETS, type Snapshot, classify, snapshot } from '../helpers/output-state.js';
import { createTestBucket } from '../helpers/s3rver.js';
import { recordReliability, withDeadline } from '../helpers/reliability-tally.js';

const DAY = '2026-03-02';
const PARTITION = `stage=preliminary/dt=${DAY}/`;
/** The earlier published result: fewer labels had arrived, so every file differs from the new one. */
const OLD_AS_OF = '2026-03-02T20:00:00Z';
const NEW_AS_OF = '2026-03-03T06:00:00Z';
/** Enough for ~6 curated parts of 1 MiB, so there are points between data files. */
const SAMPLE = { from: DAY, days: 1, predictionsPerDay: 40_000, filesPerDay: 6 };
const RUN_DEADLINE_MS = 90_000;

/** A kill point: a log event of the run (and which occurrence). */
interface KillPoint {
  name: string;
  match: (line: LogLine) => boolean;
}
const at = (event: string): KillPoint => ({ name: event, match: (line) => line.event === event });
const atPart = (part: number): KillPoint => ({ name: `curated_part_started ${part}`, match: (line) => line.event === 'curated_part_started' && line.part === part });

/** During the reads, between data files, and at every step of the commit. */
const LOCAL_POINTS: KillPoint[] = [
  at('labels_indexed'),
  // As the first curated part starts: where a lease renewal in flight left its temp file beside
  // the lease (issue 10).
  atPart(0),
  atPart(1),
  atPart(3),
  at('commit_started'),
  at('commit_unpublished'),
  at('old_outputs_removed'),
  at('outputs_moved'),
  at('run_committed'),
];
/** Fewer on s3rver (each request costs milliseconds), but each commit step, where S3 differs most (CopyObject + delete). */
const S3_POINTS: KillPoint[] = [atPart(2), at('commit_started'), at('old_outputs_removed'), at('outputs_moved')];

/** A store under test: its dataset root, the environment of its CLI runs, and how to reset and inspect it. */
interface Target {
  name: string;
  root: DatasetRoot;
  env: Record<string, string>;
  /** Removes every object of both output datasets, staging included. */
  clearOutputs(): Promise<void>;
  /** What the store holds under `_staging/` beyond listed objects (local: every file and directory, `_staging` itself included). */
  leftUnderStaging(): Promise<string[]>;
}

/** Puts a snapshot's partitions back (staging is left as it is: leftovers of dead runs pile up). */
async function restorePartitions(target: Target, state: Snapshot): Promise<void> {
  for (const dataset of DATASETS) {
    const store = target.root.store(dataset);
    const present = (await store.list(PARTITION)).map((o) => o.key);
    if (present.length > 0) await store.delete(present);
    for (const [key, bytes] of state[dataset].data) await store.write(key, bytes);
    if (state[dataset].success !== undefined) await store.write(`${PARTITION}_SUCCESS`, state[dataset].success!);
  }
}

function runArgs(target: Target, asOf: string): string[] {
  return ['run', '--date', DAY, '--stage', 'preliminary', '--as-of', asOf, '--part-size-mb', '1', ...target.root.args];
}

async function runToEnd(target: Target, asOf: string): Promise<WatchedExit> {
  const exit = await startCli(runArgs(target, asOf), target.env).exited;
  expect(exit.code, describeExit(exit)).toBe(0);
  return exit;
}

const leaseOf = (target: Target): Promise<unknown> => target.root.store('curated').head(`_staging/${PARTITION}_lease.json`);

/**
 * Kills one run after another at each point, every one starting from the old result published
 * (and from whatever the dead runs before it left in staging), then lets a last run complete from
 * where the last kill left things.
 * After each kill, what readers see must be consistent; after the last run, the result must be
 * the uninterrupted one and staging empty. One reliability entry per kill.
 */
async function killChain(target: Target, points: readonly KillPoint[], old: Snapshot, fresh: Snapshot): Promise<void> {
  await target.clearOutputs();
  const kills: Array<{ point: KillPoint; crashed: boolean; consistent: boolean }> = [];
  let staleRemoved = 0;
  const record = (completed: boolean, identical: boolean, cleaned: boolean, hung: boolean): void => {
    for (const kill of kills) {
      recordReliability({
        category: 'crash',
        kind: `SIGKILL at ${kill.point.name} (${target.name})`,
        injected: 1,
        completed: completed ? 1 : 0,
        identical: identical ? 1 : 0,
        hangs: hung ? 1 : 0,
        crashes: kill.crashed ? 1 : 0,
        wrong: (kill.consistent ? 0 : 1) + (cleaned || hung ? 0 : 1),
      });
    }
  };
  const outcome = await withDeadline(
    (async () => {
      for (const point of points) {
        await restorePartitions(target, old);
        const leaseBefore = (await leaseOf(target)) !== undefined;
        const killed = await startCli(runArgs(target, NEW_AS_OF), target.env, { killWhen: point.match }).exited;
        const after = await snapshot(target.root, PARTITION);
        const seen = { curated: classify(after.curated, old.curated, fresh.curated), metrics: classify(after.metrics, old.metrics, fresh.metrics) };
        // Never a mix, and a committed metrics partition implies the curated one of the same run.
        const consistent = ![seen.curated, seen.metrics].some((s) => s.startsWith('wrong') || s === 'mixed') && (seen.metrics.startsWith('absent') || seen.metrics === seen.curated);
        // Killed by us, or finished before the kill landed (the last events); anything else is a crash.
        const crashed = !(killed.signal === 'SIGKILL' || killed.code === 0);
        kills.push({ point, crashed, consistent });
        staleRemoved += killed.logs.filter((l) => l.event === 'stale_staging_removed').length;
        expect(killed.killedAt, `the run reached ${point.name}\n${describeExit(killed)}`).toBeDefined();
        expect(crashed, describeExit(killed)).toBe(false);
        expect(consistent, `killed at ${point.name}: curated ${seen.curated}, metrics ${seen.metrics}`).toBe(true);
        if (!eventsOf(killed).includes('commit_started')) expect([seen.curated, seen.metrics], `killed at ${point.name}, before its commit: the old result stands`).toEqual(['old', 'old']);
        if (leaseBefore) {
          // The dead run before it held the lease: same host, process gone, so taken over at once.
          expect(killed.logs.find((l) => l.event === 'lease_taken_over'), describeExit(killed)).toMatchObject({ reason: 'holder_exited' });
        }
      }
      // The last run starts from what the last kill left: no _SUCCESS and new files, or (killed
      // after its commit) the new result, where it is "already done" and only sweeps staging.
      const rerun = await startCli(runArgs(target, NEW_AS_OF), target.env).exited;
      const after = await snapshot(target.root, PARTITION);
      const staged = [...(await target.root.store('curated').list('_staging/')), ...(await target.root.store('metrics').list('_staging/'))].map((o) => o.key);
      return { rerun, after, staged, left: await target.leftUnderStaging() };
    })(),
    RUN_DEADLINE_MS * points.length,
  );
  if (outcome === 'hang') {
    record(false, false, false, true);
    expect.fail(`the runs outlived ${RUN_DEADLINE_MS} ms each`);
  }
  const { rerun, after, staged, left } = outcome;
  const converged = rerun.code === 0 && DATASETS.every((d) => classify(after[d], old[d], fresh[d]) === 'new');
  record(rerun.code === 0, converged, staged.length === 0 && left.length === 0, false);
  expect(rerun.code, describeExit(rerun)).toBe(0);
  expect(converged, `after the rerun: curated ${classify(after.curated, old.curated, fresh.curated)}, metrics ${classify(after.metrics, old.metrics, fresh.metrics)}`).toBe(true);
  // Each run after a kill removed what the dead run before it had staged.
  expect(staleRemoved + rerun.logs.filter((l) => l.event === 'stale_staging_removed').length, 'stale staging removed by the runs after the kills').toBeGreaterThan(0);
  expect(staged, 'no object left under _staging/').toEqual([]);
  // Temp files of writes a SIGKILL interrupted are removed with the dead run's folder
  // (ObjectStore.deleteUnder), and emptied directories with the last file in them.
  expect(left, 'nothing left under _staging/ on disk').toEqual([]);
}

/** Every path under `<root>/<dataset>/_staging`, that folder itself included when it exists. */
async function pathsUnderStaging(rootPath: string): Promise<string[]> {
  const found: string[] = [];
  for (const dataset of DATASETS) {
    const staging = join(rootPath, dataset, '_staging');
    const entries = await readdir(staging, { recursive: true, withFileTypes: true }).catch(() => undefined);
    if (entries === undefined) continue;
    found.push(staging, ...entries.map((entry) => join(entry.parentPath, entry.name)));
  }
  return found;
}

let directory: { path: string; remove: () => Promise<void> };
let local: Target;
let old: Snapshot;
let fresh: Snapshot;

beforeAll(async () => {
  directory = await tempDirectory('crash');
  const root = localRoot(directory.path);
  local = {
    name: 'local',
    root,
    env: { PATH: process.env.PATH ?? '' },
    clearOutputs: async () => {
      await Promise.all(DATASETS.map((d) => rm(join(directory.path, d), { recursive: true, force: true })));
    },
    leftUnderStaging: () => pathsUnderStaging(directory.path),
  };
  await generateSample(root.store('predictions'), root.store('labels'), SAMPLE);
  // The uninterrupted result, and the earlier one every scenario starts from (same key and
  // position in the dataset give the same bytes on every store, so local serves s3rver too).
  await runToEnd(local, NEW_AS_OF);
  fresh = await snapshot(root, PARTITION);
  await local.clearOutputs();
  await runToEnd(local, OLD_AS_OF);
  old = await snapshot(root, PARTITION);
  expect(fresh.curated.data.size, 'several curated part files').toBeGreaterThanOrEqual(5);
  for (const dataset of DATASETS) {
    for (const [key, bytes] of old[dataset].data) expect(fresh[dataset].data.get(key)?.equals(bytes), `${key} differs between the two results`).not.toBe(true);
  }
}, 120_000);

afterAll(async () => {
  await directory?.remove();
});

describe('partial writes of dead runs (issue 5)', () => {
  it('on a local folder: a dead run that left only a temp file and empty folders is found and removed', async () => {
    // What a SIGKILL in the middle of the first staged write leaves (local.ts write): a temp file in
    // the run's folder, which no listing shows, and on the other dataset the folders made so far.
    const deadRun = '0badc0de-dead-4bad-8bad-000000000001';
    const runFolder = (dataset: string): string => join(directory.path, dataset, '_staging', PARTITION, deadRun);
    const temp = join(runFolder('curated'), PARTITION, `${LOCAL_TEMP_PREFIX}0123456789abcdef`);
    await mkdir(dirname(temp), { recursive: true });
    await writeFile(temp, Buffer.alloc(64 * 1024, 1));
    await mkdir(join(runFolder('metrics'), PARTITION), { recursive: true });
    // The outputs of OLD_AS_OF are committed (beforeAll): the run is "already done" and only sweeps
    // staging, where an object listing finds nothing but a folder listing finds the dead run.
    const exit = await runToEnd(local, OLD_AS_OF);
    expect(exit.logs.find((l) => l.event === 'already_done'), describeExit(exit)).toBeDefined();
    const removed = exit.logs.filter((l) => l.event === 'stale_staging_removed');
    expect(removed, describeExit(exit)).toEqual([
      expect.objectContaining({ uri: expect.stringContaining('/curated/_staging/'), objects: 0, partial_uploads_aborted: 1, runs: [deadRun] }),
      expect.objectContaining({ uri: expect.stringContaining('/metrics/_staging/'), objects: 0, partial_uploads_aborted: 0, runs: [deadRun] }),
    ]);
    expect(await pathsUnderStaging(directory.path)).toEqual([]);
  }, 120_000);
});

describe('temp files of dead processes beside the lease (issue 10)', () => {
  it('on a local folder: a lease write a SIGKILL interrupted leaves a temp file in the partition folder, which the next run removes', async () => {
    // What a kill during a lease write leaves (local.ts writeConditional): a temp file beside
    // `_lease.json`, in no run's folder. One of a dead process (pid that does not run) and one
    // named as releases before issue 10 named them (no pid).
    const folder = join(directory.path, 'curated', '_staging', PARTITION);
    await mkdir(folder, { recursive: true });
    const names = [`${LOCAL_TEMP_PREFIX}999999999-00112233aabbccdd`, `${LOCAL_TEMP_PREFIX}0123456789abcdef`];
    for (const name of names) await writeFile(join(folder, name), Buffer.alloc(300, 1));
    const exit = await runToEnd(local, OLD_AS_OF);
    expect(exit.logs.find((l) => l.event === 'already_done'), describeExit(exit)).toBeDefined();
    expect(exit.logs.filter((l) => l.event === 'stale_staging_removed'), describeExit(exit)).toEqual([
      expect.objectContaining({ uri: expect.stringContaining('/curated/_staging/'), objects: 0, partial_uploads_aborted: 2, runs: [] }),
    ]);
    expect(await pathsUnderStaging(directory.path)).toEqual([]);
  }, 120_000);
});

describe('SIGKILL at any point (issue 5)', () => {
  it('on a local folder: readers never see a mix, and a rerun converges to the uninterrupted result', async () => {
    await killChain(local, LOCAL_POINTS, old, fresh);
  }, 180_000);

  it('on s3rver: readers never see a mix, and a rerun converges to the uninterrupted result', async () => {
    const endpoint = inject('s3Endpoint');
    const bucket = await createTestBucket(endpoint);
    const client = testClient(endpoint);
    try {
      const root = s3Root(client, bucket, 'crash', endpoint);
      const target: Target = {
        name: 's3',
        root,
        env: cliEnv(endpoint),
        clearOutputs: async () => {
          for (const dataset of DATASETS) {
            const store = root.store(dataset);
            const keys = (await store.list('')).map((o) => o.key);
            if (keys.length > 0) await store.delete(keys);
          }
        },
        leftUnderStaging: async () => [],
      };
      await generateSample(root.store('predictions'), root.store('labels'), SAMPLE);
      await killChain(target, S3_POINTS, old, fresh);
    } finally {
      client.destroy();
    }
  }, 180_000);
});
