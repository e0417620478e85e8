/**
 * The hidden staging area of a stage and date (issue 5, issue 10): what runs killed before their
 * cleanup left there (folders of dead runs, partial uploads, temp files beside the lease) is
 * removed under the lease, so a rerun leaves no trace of them.
 */
import type { Stage } from '../join/records.js';
import { leaseKey, runStagingPrefix, stagingPartition } from '../dataset/layout.js';
import { type Logger, sanitizeForLog } from '../observability/log.js';
import type { ObjectStore } from '../storage/types.js';
import { type LeaseOptions, RunInProgressError, RunLease } from './lease.js';

/** The hidden staging area of one run's stage and date, on the output stores. */
export interface StagingArea {
  stores: ObjectStore[];
  stage: Stage;
  date: string;
  runId: string;
  /** Folders of the staging partition that are not debris (a sharded day's shard folder, kept until its commit). */
  keep?: readonly string[];
}

/**
 * Deletes what other runs left in the staging area of this stage and date: the folders of runs
 * killed before their cleanup (SIGKILL, OOM, a lost node), with their partial writes (issue 5:
 * S3 multipart uploads, local temp files, which no listing of objects shows), and any stray object
 * beside the lease. Only while holding the lease, confirmed by a renewal right before (a run paused
 * since it took the lease may have lost it to a run whose files are there now), so no live run's
 * files are removed; the lease object itself stays.
 */
export async function removeStaleStaging(area: StagingArea, lease: RunLease, log: Logger): Promise<void> {
  const prefix = stagingPartition(area.stage, area.date);
  const own = runStagingPrefix(area.stage, area.date, area.runId);
  const leaseObject = leaseKey(area.stage, area.date);
  await lease.renew();
  for (const store of distinctStores(area.stores)) {
    lease.assertHeld();
    const level = await store.listFolder(prefix);
    const deadRuns = level.folders.filter((folder) => folder !== own && !(area.keep ?? []).includes(folder));
    const strays = level.objects.filter((key) => key !== leaseObject);
    const partialStrays = level.partial ?? [];
    if (deadRuns.length === 0 && strays.length === 0 && partialStrays.length === 0) continue;
    let objects = strays.length;
    let partial = partialStrays.length;
    let unlisted: string | undefined;
    for (const folder of deadRuns) {
      lease.assertHeld();
      const removed = await store.deleteUnder(folder);
      objects += removed.objects;
      partial += removed.partial;
      unlisted ??= removed.partialUnlisted;
    }
    if (strays.length + partialStrays.length > 0) await store.delete([...strays, ...partialStrays]);
    const runs = deadRuns.map((folder) => folder.slice(prefix.length, -1));
    log.info(
      {
        event: 'stale_staging_removed',
        uri: store.uriOf(prefix),
        objects,
        partial_uploads_aborted: partial,
        ...(unlisted === undefined ? {} : { partial_uploads_unlisted: unlisted }),
        runs,
      },
      `removed ${objects} object(s) and ${partial} partial write(s) left in staging by ${runs.length} earlier run(s)${unlisted === undefined ? '' : ` (incomplete uploads not listed: ${unlisted}; the bucket lifecycle rule removes them)`}`,
    );
  }
}

/** Each store once, for stores given twice (curated and metrics on one URI). */
export function distinctStores(stores: readonly ObjectStore[]): ObjectStore[] {
  const byUri = new Map<string, ObjectStore>();
  for (const store of stores) if (!byUri.has(store.uri)) byUri.set(store.uri, store);
  return [...byUri.values()];
}

/**
 * After "already done": if earlier runs left files in staging (killed after their commit, or runs
 * that found the result committed), take the lease briefly and remove them. A live run holding the
 * lease keeps its files; a failure here is only logged, since the result itself is committed.
 */
export async function sweepStaging(area: StagingArea, leaseOptions: LeaseOptions, log: Logger): Promise<void> {
  try {
    const prefix = stagingPartition(area.stage, area.date);
    // listFolder, not hasAny: a folder holding only partial writes has no object to find.
    const levels = await Promise.all(distinctStores(area.stores).map((store) => store.listFolder(prefix)));
    if (!levels.some((level) => level.folders.length > 0 || level.objects.length > 0 || (level.partial?.length ?? 0) > 0)) return;
    let lease: RunLease;
    try {
      lease = await RunLease.acquire(leaseOptions);
    } catch (error) {
      if (error instanceof RunInProgressError) return;
      throw error;
    }
    try {
      await removeStaleStaging(area, lease, log);
    } finally {
      await lease.release();
    }
  } catch (error) {
    log.warn({ event: 'staging_sweep_failed', error: sanitizeForLog(String(error)) }, 'could not remove files left in staging by earlier runs; they are hidden, and the next run retries');
  }
}
