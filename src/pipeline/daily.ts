/**
 * One day, one stage, end to end (SPEC §1–§5): list and check inputs, skip when already done,
 * build the label index, stream the day's predictions through the join into curated parts,
 * compute the slices, write the metrics file, and commit both partitions with `_SUCCESS` last.
 * On any failure the partial outputs are removed and no `_SUCCESS` is written.
 *
 * Length: about 400 lines because runDay is the one place that orders the steps under the lease
 * (plan, inputs, join in memory, spilled or sharded, alerts, commit, rollback); the steps themselves
 * live in run-plan.ts, join-steps.ts, scale/grace-join.ts, sharded.ts, commit.ts and staging.ts.
 */
import { randomUUID } from 'node:crypto';
import { enrichedType, metricsType } from '../avro/schemas.js';
import type { JobConfig } from '../config/resolve.js';
import { AvroFilesWriter } from '../dataset/avro-writer.js';
import { METRICS_FILE, SUCCESS_FILE, curatedPartKey, leaseKey, outputPartition, runStagingPrefix } from '../dataset/layout.js';
import { MANIFEST_FORMAT, type Manifest, type ManifestOutput, serializeManifest, writerSchemaCounts } from '../dataset/manifest.js';
import { DayJoin, type JoinStats } from '../join/day-join.js';
import { DayMetrics } from '../join/day-metrics.js';
import { formatMicros } from '../join/policy.js';
import type { Stage } from '../join/records.js';
import { computeSlices } from '../join/slices.js';
import type { Logger } from '../observability/log.js';
import { sanitizeForLog } from '../observability/log.js';
import type { Progress } from '../observability/progress.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';
import { preflight } from './inputs.js';
import { estimateRecords, joinSettingsOf, outputMetadata, planDay } from './run-plan.js';
import { type ShardedDay, loadShardedDay, removeShardFolder } from './sharded.js';
import { shardFolder } from './sharded-layout.js';
import { buildLabelIndex, probePredictions, type ReadSetup } from './join-steps.js';
import { type SpillPlan, joinSpilledDay, planSpill } from '../scale/grace-join.js';
import { SpillArea, explainSpillFailure } from '../scale/spill-area.js';
import { WorkerPool } from '../workers/pool.js';
import { committedWith, promote, removeData } from './commit.js';
import { distinctStores, removeStaleStaging, type StagingArea, sweepStaging } from './staging.js';
import { type LeaseOptions, RunLease, thisProcess } from './lease.js';
import { DEFAULT_LEASE_TIMING, type LeaseTiming } from './lease-policy.js';
import { AlertsStep } from '../alerts/step.js';
import type { DayResult } from '../run-results.js';

export { OUTPUT_REVISION, labelsThroughFor } from './run-plan.js';

/** The four dataset stores of a run. */
export interface Stores {
  predictions: ObjectStore;
  labels: ObjectStore;
  curated: ObjectStore;
  metrics: ObjectStore;
  /** The alerts dataset (SPEC §8); without it no alerts are computed. */
  alerts?: ObjectStore;
}

/** What a day's run needs besides the request. */
export interface RunContext {
  config: JobConfig;
  stores: Stores;
  logger: Logger;
  progress?: Progress;
  jobVersion: string;
  /** Aborted on SIGTERM/SIGINT: the run stops at the next block, cleans up and commits nothing. */
  signal?: AbortSignal;
  /** Timing of the run lease (default DEFAULT_LEASE_TIMING: 60 s, renewed every 15 s). */
  leaseTiming?: LeaseTiming;
  /** Backfill: resolves once the earlier days of the range that a day's alert baseline needs are committed (SPEC §8). */
  baselineReady?: (date: string) => Promise<void>;
}

/** One day and stage to compute. */
export interface DayRequest {
  date: string;
  stage: Stage;
  /** The run's as-of instant (default: now, chosen by the caller). */
  asOfMicros: number;
}

export type { DayResult } from '../run-results.js';

/** The commit phase of a sharded day (SPEC §9): the join shards' states and curated parts stand in for reading and joining. */
export interface ShardedCommit {
  shards: number;
}

/**
 * Runs one day and stage. Throws NotReadyError (exit 3) for a final whose window is open. With
 * `sharded`, the commit phase of `run --shards K` (sharded.ts): the same plan, lease, alerts and
 * commit, from the merged states of the join shards instead of a join.
 */
export async function runDay(ctx: RunContext, request: DayRequest, sharded?: ShardedCommit): Promise<DayResult> {
  const startedAt = new Date();
  const { config, stores, logger } = ctx;
  const log = logger.child({ date: request.date, stage: request.stage });
  const dayPlan = await planDay(stores, config, request, ctx.jobVersion);
  const { day, labelsThrough, predictionInputs, labelInputs, params, fingerprint } = dayPlan;
  // A final result does not depend on when it runs, only on the window: its as-of is the window's close.
  const asOf = labelsThrough;
  const partition = outputPartition(request.stage, request.date);
  // The same key in both output datasets: each partition's commit point.
  const successKey = `${partition}${SUCCESS_FILE}`;


  const summary = (status: DayResult['status'], figures: Partial<DayResult>): DayResult => ({
    date: request.date,
    stage: request.stage,
    status,
    as_of: formatMicros(asOf),
    labels_through: formatMicros(labelsThrough),
    prediction_objects: predictionInputs.objects.length,
    label_objects: labelInputs.objects.length,
    skipped_objects: 0,
    predictions_read: 0,
    predictions_kept: 0,
    labeled: 0,
    label_coverage: null,
    curated_files: 0,
    metrics_records: 0,
    curated_manifest: stores.curated.uriOf(successKey),
    metrics_manifest: stores.metrics.uriOf(successKey),
    duration_s: (Date.now() - startedAt.getTime()) / 1000,
    ...figures,
  });

  /** The committed result, when it has this run's fingerprint and every file it lists is still there. */
  const committedResult = async (): Promise<DayResult | undefined> => {
    if (config.force) return undefined;
    const committed = await committedWith(stores, successKey, fingerprint);
    if (committed === undefined) return undefined;
    const { curated: oldCurated, metrics: oldMetrics } = committed;
    // alerts (SPEC §8): committed for the same fingerprint and from the baseline committed now.
    const committedAlerts = await alertsStep?.committed(fingerprint);
    if (alertsStep !== undefined && committedAlerts === undefined) return undefined;
    log.info({ event: 'already_done', fingerprint }, 'outputs already committed for the same inputs and options; nothing to do (--force recomputes)');
    const stats = oldCurated.stats ?? {};
    return summary('already_done', {
      predictions_read: stats.predictions_read ?? 0,
      predictions_kept: stats.predictions_kept ?? 0,
      labeled: stats.labeled ?? 0,
      label_coverage: stats.predictions_valid ? (stats.labeled ?? 0) / stats.predictions_valid : null,
      curated_files: oldCurated.outputs.length,
      metrics_records: oldMetrics.outputs.reduce((n, o) => n + o.records, 0),
      skipped_objects: oldCurated.skipped?.length ?? 0,
      ...(committedAlerts === undefined ? {} : { alerts: committedAlerts }),
    });
  };

  const metadata = outputMetadata(config, request, dayPlan);
  const runId = randomUUID();
  // A sharded commit keeps the shard folder (the join shards' outputs) until it is published.
  const shardFolderKept = sharded === undefined ? undefined : shardFolder(request.stage, request.date, fingerprint, sharded.shards);
  const staging: StagingArea = { stores: [stores.curated, stores.metrics, ...(stores.alerts === undefined ? [] : [stores.alerts])], stage: request.stage, date: request.date, runId, keep: shardFolderKept === undefined ? [] : [shardFolderKept] };
  /** alerts (SPEC §8): the run's alerts step, once per run (staged under the run's staging prefix), or undefined without an alerts store. */
  const alertsStep =
    stores.alerts === undefined || config.alerting === undefined
      ? undefined
      : new AlertsStep({ alerts: stores.alerts, metrics: stores.metrics, config: config.alerting, stage: request.stage, date: request.date, asOfMicros: asOf, codec: config.codec, metadata, stagingPrefix: runStagingPrefix(request.stage, request.date, runId), logger: log, baselineReady: ctx.baselineReady });
  const leaseOptions: LeaseOptions = {
    stores: staging.stores,
    key: leaseKey(request.stage, request.date),
    claim: { runId, stage: request.stage, date: request.date, jobVersion: ctx.jobVersion, holder: thisProcess(), startedAtMs: startedAt.getTime() },
    timing: ctx.leaseTiming ?? DEFAULT_LEASE_TIMING,
    logger: log,
  };
  const done = await committedResult();
  if (done !== undefined) {
    await sweepStaging(staging, leaseOptions, log);
    return done;
  }
  // One run per stage and date at a time (issue 5): a second one leaves here with RunInProgressError.
  const lease = await RunLease.acquire(leaseOptions);
  try {
    await removeStaleStaging(staging, lease, log);
    // Another run may have committed the same result between the first look and the lease.
    const doneMeanwhile = await committedResult();
    if (doneMeanwhile !== undefined) return doneMeanwhile;
    return await computeAndCommit(lease);
  } finally {
    await lease.release();
  }

  /**
   * Decides in memory or spilled (SPEC §9 --memory-budget) from the listed sizes, opens the spill
   * folder before any input is read (an unusable --spill-dir is exit 2 with nothing done), and
   * removes it however the run ends.
   */
  async function computeAndCommit(lease: RunLease): Promise<DayResult> {
    const plan = planSpill(estimateRecords(labelInputs.objects), estimateRecords(predictionInputs.objects), config.memoryBudget);
    // A sharded commit reads no input: the join shards did (under their own pods' budgets).
    const spill = plan.buckets > 1 && sharded === undefined ? await SpillArea.open(config.spillDir, runId, log) : undefined;
    try {
      return await joinAndCommit(lease, plan, spill);
    } catch (error) {
      throw spill === undefined ? error : explainSpillFailure(spill, error);
    } finally {
      await spill?.remove().catch((error: unknown) => log.warn({ event: 'spill_cleanup_failed', path: spill.path, error: sanitizeForLog(String(error)) }, 'could not remove the spill folder; the next spilling run removes it'));
    }
  }

  /** Reads, joins, stages and commits, under the lease. */
  async function joinAndCommit(lease: RunLease, plan: SpillPlan, spill: SpillArea | undefined): Promise<DayResult> {
    log.info({ event: 'run_started', lease_run_id: runId, prediction_objects: predictionInputs.objects.length, label_objects: labelInputs.objects.length, as_of: formatMicros(asOf), labels_through: formatMicros(labelsThrough) }, 'run started');
    // A sharded commit: the partition shards checked their shares; their markers hold the manifest's inputs.
    const checked = sharded === undefined ? await Promise.all([preflight(predictionInputs, config.onCorrupt, log), preflight(labelInputs, config.onCorrupt, log)]) : undefined;
    const noInputs = { usable: [], skipped: [], inputs: [] };
    const [predictionCheck, labelCheck] = checked ?? [noInputs, noInputs];
    let skipped = [...predictionCheck.skipped, ...labelCheck.skipped];
    let inputs = [...predictionCheck.inputs, ...labelCheck.inputs];

    // Data files are written under the run's own hidden staging prefix and moved into place only at
    // commit, so a run that fails before then leaves the published partition exactly as it was.
    const stagingPrefix = runStagingPrefix(request.stage, request.date, runId);
    const curatedKey = (index: number): string => {
      // A part opens once the one before it is staged: progress for people, kill points for the crash tests.
      log.info({ event: 'curated_part_started', part: index }, `writing curated part ${index}`);
      return curatedPartKey(request.stage, request.date, index);
    };
    // --workers N: decoding, curated encoding and compression on N threads; 0: all on this one.
    const pool = config.workers > 0 ? new WorkerPool(config.workers) : undefined;
    // The null codec has nothing to compress: no round trip to a worker for the same bytes.
    const compress = pool === undefined || config.codec === 'null' ? undefined : (codec: string, data: Buffer) => pool.compress(codec, data);
    const curatedWriter = new AvroFilesWriter(stores.curated, { type: enrichedType, codec: config.codec, keyOf: curatedKey, metadata, maxPartBytes: config.partBytes, stagingPrefix, compress });
    // One small block: compressed on libuv's threads (the same bytes as on a worker), after the pool is stopped.
    const metricsWriter = new AvroFilesWriter(stores.metrics, { type: metricsType, codec: config.codec, keyOf: () => `${partition}${METRICS_FILE}`, metadata, maxPartBytes: Number.POSITIVE_INFINITY, stagingPrefix });
    let unpublished = false;
    const promoted: { curated: string[]; metrics: string[] } = { curated: [], metrics: [] };

    const progress = ctx.progress;
    const hooks = {
      limits: config.decodeLimits,
      onBytes: (delta: number) => {
        if (progress) {
          progress.state.bytesDone += delta;
          progress.tick();
        }
      },
      onObjectDone: () => {
        if (progress) progress.state.objectsDone++;
      },
    };
    // Per day: a backfill or scheduled run draws one day after another on the same line.
    progress?.begin(predictionCheck.usable.length + labelCheck.usable.length, [...predictionCheck.usable, ...labelCheck.usable].reduce((n, o) => n + o.size, 0));

    try {
      const setup = (store: ObjectStore, objects: readonly ObjectInfo[]): ReadSetup => ({
        store,
        objects,
        readAhead: config.readAhead,
        hooks,
        pool,
        signal: ctx.signal,
        onRecords: (count) => {
          if (progress) progress.state.records += count;
        },
      });
      const settings = joinSettingsOf(config, request, dayPlan);
      let joined: { stats: JoinStats; labelsRead: number; labelsIndexed: number; metrics: DayMetrics };
      let curatedOutputs: ManifestOutput[] | undefined;
      const spillStats: Record<string, number> = {};
      let shardedDay: ShardedDay | undefined;
      if (sharded !== undefined) {
        shardedDay = await loadShardedDay(ctx, request, dayPlan, sharded.shards, (index) => curatedPartKey(request.stage, request.date, index));
        log.info({ event: 'predictions_joined', ...shardedDay.stats, shards: sharded.shards }, `join shards merged (${sharded.shards})`);
        joined = shardedDay;
        inputs = shardedDay.inputs;
        skipped = shardedDay.skipped;
      } else if (spill === undefined) {
        if (progress) progress.state.phase = `${request.date} ${request.stage}: labels`;
        const labels = await buildLabelIndex(setup(stores.labels, labelCheck.usable), estimateRecords(labelCheck.usable), labelsThrough);
        log.info({ event: 'labels_indexed', labels_read: labels.read, labels_indexed: labels.indexed, distinct_ids: labels.distinctIds, index_bytes: labels.byteSize }, 'label index built');

        const join = new DayJoin(settings, labels.labels, estimateRecords(predictionCheck.usable));
        if (progress) progress.state.phase = `${request.date} ${request.stage}: predictions`;
        await probePredictions(setup(stores.predictions, predictionCheck.usable), join, curatedWriter);
        progress?.clearLine();
        log.info({ event: 'predictions_joined', ...join.stats, join_bytes: join.byteSize }, 'predictions joined');
        curatedOutputs = await curatedWriter.finish();
        // The threads are done: stopping them now frees their heaps and their hold on the shared
        // label index before the metric phase (the run's peak memory otherwise, README Performance).
        await pool?.close();
        joined = { stats: join.stats, labelsRead: labels.read, labelsIndexed: labels.indexed, metrics: DayMetrics.of(join) };
      } else {
        log.info({ event: 'spill_started', buckets: plan.buckets, estimate_bytes: plan.estimateBytes, budget: plan.budget, path: spill.path }, `the day's join state (about ${plan.estimateBytes} bytes) exceeds --memory-budget ${plan.budget}: joining in ${plan.buckets} buckets under ${spill.path}`);
        if (progress) progress.state.phase = `${request.date} ${request.stage}: partitioning`;
        // Bucket files are read back without progress accounting: the line counts the inputs once.
        const bucketSetup = (store: ObjectStore, objects: readonly ObjectInfo[]): ReadSetup => ({ ...setup(store, objects), hooks: { limits: config.decodeLimits }, onRecords: () => undefined });
        const day = await joinSpilledDay({ store: spill.store, plan, settings, labelsThrough, labels: setup(stores.labels, labelCheck.usable), predictions: setup(stores.predictions, predictionCheck.usable), setupFor: bucketSetup, curated: curatedWriter, logger: log });
        progress?.clearLine();
        log.info({ event: 'predictions_joined', ...day.stats, spill_buckets: day.buckets, spill_bytes: day.bytes }, `predictions joined in ${day.buckets} buckets`);
        joined = day;
        spillStats.spill_buckets = day.buckets;
        spillStats.spill_bytes = day.bytes;
      }
      curatedOutputs ??= shardedDay?.curated ?? (await curatedWriter.finish());

      const metricRecords = computeSlices(joined.metrics, { stage: request.stage, day, labelsThroughMicros: labelsThrough, maxSliceValues: config.maxSliceValues });
      for (const record of metricRecords) await metricsWriter.append(record);
      const metricsOutputs = await metricsWriter.finish();
      // alerts (SPEC §8): evaluated against the committed baseline and staged beside the metrics.
      const alerts = alertsStep;
      await alerts?.stage(metricRecords);

      ctx.signal?.throwIfAborted();
      // Commit (SPEC §1), in an order that keeps the data files of a partition from one run at every
      // instant, so even a reader that lists files without checking _SUCCESS never sees a mix:
      //  1. unpublish: metrics/_SUCCESS, then curated/_SUCCESS (a metrics _SUCCESS always implies
      //     a committed curated partition of the same run);
      //  2. delete every data file of both partitions (the old result, leftovers of a crashed commit);
      //  3. move the staged files into place;
      //  4. write curated/_SUCCESS, then metrics/_SUCCESS.
      // Stopped anywhere in 1–4, the partitions have no _SUCCESS ("not there") and a subset of the
      // old or of the new files; the next run converges. Before each step the lease must still be
      // ours with time to spare: a run that was paused past its lease stops here untouched.
      await lease.renew();
      lease.assertHeld();
      log.info({ event: 'commit_started', curated_files: curatedOutputs.length, metrics_files: metricsOutputs.length }, 'commit started');
      unpublished = true;
      await alerts?.unpublish();
      await stores.metrics.delete([successKey]);
      await stores.curated.delete([successKey]);
      log.info({ event: 'commit_unpublished' }, 'previous _SUCCESS removed; the partitions are not there until the new _SUCCESS');
      await lease.ensureHeld();
      const removed = (await removeData(stores.curated, partition)) + (await removeData(stores.metrics, partition)) + ((await alerts?.removeOld()) ?? 0);
      log.info({ event: 'old_outputs_removed', objects: removed }, 'previous data files removed');
      await promote(stores.curated, shardedDay ?? curatedWriter, curatedOutputs, promoted.curated, lease);
      await promote(stores.metrics, metricsWriter, metricsOutputs, promoted.metrics, lease);
      await alerts?.promote(() => lease.ensureHeld());
      log.info({ event: 'outputs_moved', curated_files: curatedOutputs.length, metrics_files: metricsOutputs.length }, 'new data files in place; writing _SUCCESS');

      const { stats: joinStats } = joined;
      const stats = {
        predictions_read: joinStats.predictionsRead,
        predictions_kept: joinStats.kept,
        predictions_valid: joinStats.kept - joinStats.invalid,
        duplicate_predictions: joinStats.duplicatesDropped,
        invalid_predictions: joinStats.invalid,
        labeled: joinStats.labeled,
        labeled_from_labels: joinStats.labeledFromLabels,
        labeled_inline: joinStats.labeledInline,
        labels_read: joined.labelsRead,
        labels_indexed: joined.labelsIndexed,
        metrics_records: metricRecords.length,
        ...spillStats,
      };
      const manifest = (dataset: Manifest['dataset'], outputs: ManifestOutput[]): Manifest => ({
        format: MANIFEST_FORMAT,
        dataset,
        stage: request.stage,
        date: request.date,
        as_of: formatMicros(asOf),
        labels_through: formatMicros(labelsThrough),
        label_window: config.labelWindow.iso,
        job_version: ctx.jobVersion,
        params,
        fingerprint,
        started_at: startedAt.toISOString(),
        ended_at: new Date().toISOString(),
        inputs,
        skipped,
        writer_schemas: writerSchemaCounts(inputs),
        outputs,
        stats,
      });
      // The commit points, written last (SPEC §1).
      await lease.ensureHeld();
      await stores.curated.write(successKey, serializeManifest(manifest('curated', curatedOutputs)), 'application/json');
      await lease.ensureHeld();
      await stores.metrics.write(successKey, serializeManifest(manifest('metrics', metricsOutputs)), 'application/json');
      // alerts (SPEC §8): its commit point last, so committed alerts imply the committed metrics.
      await lease.ensureHeld();
      const dayAlerts = await alerts?.publish(manifest('alerts', []));

      const result = summary('done', {
        skipped_objects: skipped.length,
        predictions_read: stats.predictions_read,
        predictions_kept: stats.predictions_kept,
        labeled: stats.labeled,
        label_coverage: stats.predictions_valid > 0 ? stats.labeled / stats.predictions_valid : null,
        curated_files: curatedOutputs.length,
        metrics_records: metricRecords.length,
        ...(dayAlerts === undefined ? {} : { alerts: dayAlerts }),
      });
      const { alerts: _alertList, ...logged } = result;
      log.info({ event: 'run_committed', ...logged, ...(dayAlerts === undefined ? {} : { alerts_fired: dayAlerts.fired }) }, 'run committed');
      if (shardedDay !== undefined) await removeShardFolder(stores.curated, shardedDay.folder, log);
      return result;
    } catch (error) {
      progress?.clearLine();
      // A run that lost its lease leaves the published partitions to the run that took it over:
      // only its own staged files are its to remove.
      const owner = lease.isHeld();
      if (unpublished && owner) {
        // Failed during the commit: uncommit both (a failure between the two _SUCCESS writes must
        // not leave one behind) and drop the new files already moved into place.
        await (alertsStep?.unpublish() ?? Promise.resolve())
          .then(() => stores.metrics.delete([successKey]))
          .then(() => stores.curated.delete([successKey]))
          .catch(() => undefined);
      }
      await Promise.all([curatedWriter.abort(error), metricsWriter.abort(error), alertsStep?.abort(error, owner, unpublished).catch(() => undefined)]);
      // The run's own staging folder whole, not only the keys the writers started: it also takes
      // the multipart uploads whose abort failed (a lost connection, a store without Abort), and on
      // local files leaves no empty folder behind.
      const leftovers = { curated: owner ? promoted.curated : [], metrics: owner ? promoted.metrics : [] };
      await Promise.all([
        stores.curated.delete(leftovers.curated),
        stores.metrics.delete(leftovers.metrics),
        ...distinctStores(staging.stores).map((store) => store.deleteUnder(stagingPrefix)),
      ]).catch((cleanupError: unknown) => {
        log.warn({ event: 'cleanup_failed', error: sanitizeForLog(String(cleanupError)) }, 'could not remove partial outputs; they are not committed and the next run replaces them');
      });
      throw error;
    } finally {
      await pool?.close();
    }
  }
}
