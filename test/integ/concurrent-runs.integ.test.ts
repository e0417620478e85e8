/**
 * Concurrent runs of one date and stage (issue 5): a CronJob that fires twice, an Airflow retry
 * beside a zombie. The real CLI, as child processes, on a local folder (exclusive create through
 * link(2), so the lease is decided atomically) and on s3rver (which ignores conditional writes).
 * Every scenario ends with exactly one committed result, byte-identical to an uninterrupted run,
 * the other run leaving with a clear message, and nothing under `_staging/`.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { leaseKey } from '../../src/dataset/layout.js';
import { generateSample } from '../../src/demo/generate.js';
import { StorageError } from '../../src/errors.js';
import { silentLogger } from '../../src/observability/log.js';
import { LeaseLostError, RunInProgressError, RunLease, thisProcess } from '../../src/pipeline/lease.js';
import { DEFAULT_LEASE_TIMING, type LeaseClaim, leaseDocument, leaseTimingOf, parseLease, serializeLease } from '../../src/pipeline/lease-policy.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import type { ObjectStore } from '../../src/storage/types.js';
import { type DatasetRoot, type LogLine, cliEnv, localRoot, s3Root, tempDirectory, testClient } from '../helpers/cli.js';
import { type WatchedExit, describeExit, eventsOf, startCli } from '../helpers/cli-watch.js';
import { DATASETS, type Snapshot, classify, snapshot } from '../helpers/output-state.js';
import { createTestBucket } from '../helpers/s3rver.js';

const DAY = '2026-03-02';
const PARTITION = `stage=preliminary/dt=${DAY}/`;
const LEASE = `_staging/${PARTITION}_lease.json`;
const AS_OF = '2026-03-03T06:00:00Z';
const SAMPLE = { from: DAY, days: 1, predictionsPerDay: 20_000, filesPerDay: 4 };
const ENV = { PATH: process.env.PATH ?? '' };

let directory: { path: string; remove: () => Promise<void> };
let inputs: DatasetRoot;
/** The result of an uninterrupted run, alone. */
let fresh: Snapshot;
let rootCount = 0;

/** A fresh pair of output datasets over the shared inputs. */
function outputs(): DatasetRoot & { path: string } {
  const path = join(directory.path, `out-${rootCount++}`);
  const curated = localRoot(path).store('curated');
  const metrics = localRoot(path).store('metrics');
  return {
    ...inputs,
    path,
    // Alerts (SPEC §8) would default to <root>/alerts, shared by every pair: each pair gets its own.
    args: [...inputs.args, '--curated', join(path, 'curated'), '--metrics', join(path, 'metrics'), '--alerts-dataset', join(path, 'alerts')],
    store: (dataset) => (dataset === 'curated' ? curated : dataset === 'metrics' ? metrics : inputs.store(dataset)),
  };
}

function runArgs(root: DatasetRoot, extra: string[] = []): string[] {
  return ['run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--part-size-mb', '1', ...extra, ...root.args];
}

/** The error line of a run that left because another one held the lease. */
function refusal(exit: WatchedExit): LogLine | undefined {
  // Exit 3 ("nothing done, try later") is logged as not_ready, with the code and reason.
  return exit.logs.find((l) => l.event === 'not_ready' && l.reason === 'run_in_progress');
}

/**
 * Exactly one committed result, byte-identical to the uninterrupted one, and an empty staging area:
 * no object, and on a local folder no `_staging` directory either (no temp file, no empty folder).
 */
async function expectOneResult(root: DatasetRoot & { path?: string }): Promise<void> {
  const state = await snapshot(root, PARTITION);
  for (const dataset of DATASETS) expect(classify(state[dataset], undefined, fresh[dataset]), dataset).toBe('new');
  for (const dataset of DATASETS) expect((await root.store(dataset).list('_staging/')).map((o) => o.key), `${dataset} staging`).toEqual([]);
  if (root.path === undefined) return;
  for (const dataset of DATASETS) expect(await readdir(join(root.path, dataset)), `${dataset} on disk`).not.toContain('_staging');
}

beforeAll(async () => {
  directory = await tempDirectory('concurrent');
  inputs = localRoot(directory.path);
  await generateSample(inputs.store('predictions'), inputs.store('labels'), SAMPLE);
  const reference = outputs();
  const exit = await startCli(runArgs(reference), ENV).exited;
  expect(exit.code, describeExit(exit)).toBe(0);
  fresh = await snapshot(reference, PARTITION);
  expect(fresh.curated.data.size, 'several curated part files').toBeGreaterThanOrEqual(2);
}, 120_000);

afterAll(async () => {
  await directory?.remove();
});

describe('two runs of the same date and stage at once (local folder)', () => {
  it('started together: one commits, the other leaves (another run holds it) or finds it already done', async () => {
    const root = outputs();
    const [a, b] = await Promise.all([startCli(runArgs(root), ENV).exited, startCli(runArgs(root), ENV).exited]);
    const committed = [a, b].filter((exit) => eventsOf(exit).includes('run_committed'));
    expect(committed, `${describeExit(a)}\n---\n${describeExit(b)}`).toHaveLength(1);
    const other = committed[0] === a ? b : a;
    expect(committed[0]!.code).toBe(0);
    if (other.code === 0) expect(eventsOf(other), describeExit(other)).toContain('already_done');
    else expect(refusal(other), describeExit(other)).toMatchObject({ exit_code: 3, code: 'E_RUN_IN_PROGRESS' });
    await expectOneResult(root);
  });

  it('a run that finds a live holder (paused mid-run) leaves at once, naming it; the holder then commits', async () => {
    const root = outputs();
    const holder = startCli(runArgs(root), ENV);
    await holder.waitFor((l) => l.event === 'lease_acquired');
    holder.signal('SIGSTOP');
    try {
      const second = await startCli(runArgs(root, ['--json']), ENV).exited;
      expect(second.code, describeExit(second)).toBe(3);
      const line = refusal(second);
      expect(line, describeExit(second)).toMatchObject({ code: 'E_RUN_IN_PROGRESS', reason: 'run_in_progress', holder_pid: holder.pid, key: LEASE });
      expect(String(line?.message)).toMatch(new RegExp(`another run is computing preliminary ${DAY}: run [0-9a-f-]+ \\(host .+, pid ${holder.pid},.*this run did nothing`));
      expect(JSON.parse(second.stdout)).toMatchObject({ status: 'not_ready', exit_code: 3, code: 'E_RUN_IN_PROGRESS', reason: 'run_in_progress' });
      expect(eventsOf(second), 'it read nothing').not.toContain('run_started');
    } finally {
      holder.signal('SIGCONT');
    }
    const done = await holder.exited;
    expect(done.code, describeExit(done)).toBe(0);
    expect(eventsOf(done)).toContain('run_committed');
    await expectOneResult(root);
  });

  it('a killed run\'s lease is taken over at once on the same host, and its staged files removed', async () => {
    const root = outputs();
    const killed = await startCli(runArgs(root), ENV, { killWhen: (l) => l.event === 'curated_part_started' && l.part === 1 }).exited;
    expect(killed.signal, describeExit(killed)).toBe('SIGKILL');
    expect(await root.store('curated').head(LEASE)).toBeDefined();
    const rerun = await startCli(runArgs(root), ENV).exited;
    expect(rerun.code, describeExit(rerun)).toBe(0);
    expect(rerun.logs.find((l) => l.event === 'lease_taken_over')).toMatchObject({ reason: 'holder_exited' });
    expect(rerun.logs.find((l) => l.event === 'stale_staging_removed')).toMatchObject({ objects: expect.any(Number), partial_uploads_aborted: expect.any(Number) });
    await expectOneResult(root);
  });

  it('a lease of a run on another host is respected until it expires, then taken over', async () => {
    const root = outputs();
    const leasePath = join(root.path, 'curated', LEASE);
    const foreign = (renewedAtMs: number): Buffer =>
      serializeLease(
        leaseDocument(
          { runId: 'another-host-run', stage: 'preliminary', date: DAY, jobVersion: 'x', holder: { host: 'worker-elsewhere', process_space: 'worker-elsewhere/boot/pid:[1]', pid: 1 }, startedAtMs: renewedAtMs },
          renewedAtMs,
          0,
          DEFAULT_LEASE_TIMING,
        ),
      );
    await root.store('curated').write(LEASE, foreign(Date.now()));
    const refused = await startCli(runArgs(root), ENV).exited;
    expect(refused.code, describeExit(refused)).toBe(3);
    expect(refusal(refused)).toMatchObject({ holder_host: 'worker-elsewhere', holder_run_id: 'another-host-run', retry_after_s: expect.any(Number) });
    expect(Number(refusal(refused)!.retry_after_s)).toBeGreaterThan(DEFAULT_LEASE_TIMING.ttlMs / 1000);

    // The same lease, last renewed longer ago than its lifetime plus the clock-skew allowance.
    await writeFile(leasePath, foreign(Date.now() - DEFAULT_LEASE_TIMING.ttlMs - DEFAULT_LEASE_TIMING.clockSkewMs - 1_000));
    const taker = await startCli(runArgs(root), ENV).exited;
    expect(taker.code, describeExit(taker)).toBe(0);
    expect(taker.logs.find((l) => l.event === 'lease_taken_over')).toMatchObject({ reason: 'expired', previous_host: 'worker-elsewhere' });
    await expectOneResult(root);
  });

  it('a zombie that wakes up after another run took over its expired lease commits nothing', async () => {
    const root = outputs();
    const zombie = startCli(runArgs(root), ENV);
    await zombie.waitFor((l) => l.event === 'run_started');
    zombie.signal('SIGSTOP');
    let retry: WatchedExit;
    try {
      // Time passes for the paused run: its leases (one per output dataset), as written, are now
      // older than their lifetime.
      const lapsed = Date.now() - DEFAULT_LEASE_TIMING.ttlMs - DEFAULT_LEASE_TIMING.clockSkewMs - 1_000;
      // The alerts dataset (beside --metrics) holds a lease too (SPEC §8).
      for (const dataset of [...DATASETS, 'alerts']) {
        const leasePath = join(root.path, dataset, LEASE);
        const held = parseLease(await readFile(leasePath))!;
        await writeFile(leasePath, serializeLease({ ...held, renewed_at: new Date(lapsed).toISOString(), expires_at: new Date(lapsed + DEFAULT_LEASE_TIMING.ttlMs).toISOString() }));
      }
      retry = await startCli(runArgs(root), ENV).exited;
    } finally {
      zombie.signal('SIGCONT');
    }
    expect(retry.code, describeExit(retry)).toBe(0);
    expect(retry.logs.find((l) => l.event === 'lease_taken_over')).toMatchObject({ reason: 'expired', previous_pid: zombie.pid });
    const woke = await zombie.exited;
    expect(woke.code, describeExit(woke)).toBe(1);
    expect(woke.logs.find((l) => l.event === 'command_failed')).toMatchObject({ code: 'E_CONCURRENT_CHANGE', reason: 'lease_lost' });
    expect(eventsOf(woke), 'stopped before touching the published partition').not.toContain('commit_unpublished');
    await expectOneResult(root);
  });
});

describe('two runs at once on s3rver (conditional writes ignored)', () => {
  it('started together: exactly one result is committed; the other leaves or finds it done', async () => {
    const endpoint = inject('s3Endpoint');
    const bucket = await createTestBucket(endpoint);
    const client = testClient(endpoint);
    try {
      const root = s3Root(client, bucket, 'concurrent', endpoint);
      await generateSample(root.store('predictions'), root.store('labels'), SAMPLE);
      const env = cliEnv(endpoint);
      const [a, b] = await Promise.all([startCli(runArgs(root), env).exited, startCli(runArgs(root), env).exited]);
      const committed = [a, b].filter((exit) => eventsOf(exit).includes('run_committed'));
      expect(committed, `${describeExit(a)}\n---\n${describeExit(b)}`).toHaveLength(1);
      const other = committed[0] === a ? b : a;
      if (other.code === 0) {
        expect(eventsOf(other), describeExit(other)).toContain('already_done');
      } else {
        // Refused at the lease, or (both created it, the store ignoring If-None-Match) lost it at
        // the renewal before its commit.
        const failure = other.logs.find((l) => l.event === 'command_failed' || l.event === 'not_ready');
        if (other.code === 3) expect(failure, describeExit(other)).toMatchObject({ code: 'E_RUN_IN_PROGRESS', reason: 'run_in_progress' });
        else expect(failure, describeExit(other)).toMatchObject({ exit_code: 1, code: 'E_CONCURRENT_CHANGE', reason: 'lease_lost' });
        expect(eventsOf(other)).not.toContain('commit_unpublished');
      }
      await expectOneResult(root);
    } finally {
      client.destroy();
    }
  });
});

describe('the lease on local stores, in process', () => {
  const key = leaseKey('final', DAY);
  const claim = (runId: string): LeaseClaim => ({ runId, stage: 'final', date: DAY, jobVersion: 'test', holder: thisProcess(), startedAtMs: Date.now() });
  const stores = (): { curated: ObjectStore; metrics: ObjectStore } => {
    const path = join(directory.path, `lease-${rootCount++}`);
    return { curated: new LocalObjectStore(join(path, 'curated')), metrics: new LocalObjectStore(join(path, 'metrics')) };
  };
  const options = (runId: string, on: ObjectStore[], ttlMs = 60_000) => ({ stores: on, key, claim: claim(runId), timing: leaseTimingOf(ttlMs), logger: silentLogger() });

  it('is taken on both output stores and released from both', async () => {
    const { curated, metrics } = stores();
    const lease = await RunLease.acquire(options('run-1', [curated, metrics]));
    expect(parseLease((await curated.readSmall(key))!)).toMatchObject({ run_id: 'run-1', pid: process.pid });
    expect(parseLease((await metrics.readSmall(key))!)).toMatchObject({ run_id: 'run-1' });
    await lease.release();
    expect([await curated.head(key), await metrics.head(key)]).toEqual([undefined, undefined]);
  });

  it('refused on the second store, gives back what it took on the first', async () => {
    const { curated, metrics } = stores();
    const other = await RunLease.acquire(options('run-other', [metrics]));
    await expect(RunLease.acquire(options('run-2', [curated, metrics]))).rejects.toBeInstanceOf(RunInProgressError);
    expect(await curated.head(key), 'no lease left behind on curated').toBeUndefined();
    expect(parseLease((await metrics.readSmall(key))!)).toMatchObject({ run_id: 'run-other' });
    await other.release();
  });

  it('leaves alone an object at the lease key that it cannot read', async () => {
    const { curated } = stores();
    await curated.write(key, Buffer.from('{"format":"model-metrics/lease@9"}'));
    await expect(RunLease.acquire(options('run-3', [curated]))).rejects.toThrow(/is not a run lease this version can read/);
    expect((await curated.readSmall(key))!.toString()).toBe('{"format":"model-metrics/lease@9"}');
  });

  it('is renewed in the background while the run works', async () => {
    const { curated } = stores();
    const lease = await RunLease.acquire(options('run-4', [curated], 4_000));
    try {
      await vi.waitFor(async () => expect(parseLease((await curated.readSmall(key))!)!.renewals).toBeGreaterThanOrEqual(2), { timeout: 20_000, interval: 100 });
      lease.assertHeld();
    } finally {
      await lease.release();
    }
  });

  it('stops the run when renewals fail for longer than the lease allows', async () => {
    const { curated } = stores();
    let failing = false;
    const flaky = new Proxy(curated, {
      get(target, property, receiver) {
        if (property === 'writeConditional' && failing) return () => Promise.reject(new StorageError('injected: store unreachable'));
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const lease = await RunLease.acquire(options('run-5', [flaky], 4_000));
    failing = true;
    await vi.waitFor(() => expect(lease.isHeld()).toBe(false), { timeout: 20_000, interval: 100 });
    expect(() => lease.assertHeld()).toThrow(LeaseLostError);
    await lease.release();
    // Left to expire rather than deleted: it can no longer prove the lease is its own.
    expect(parseLease((await curated.readSmall(key))!)).toMatchObject({ run_id: 'run-5' });
  });
});
