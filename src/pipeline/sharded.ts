/**
 * One day across pods (SPEC §9): the partition and join phases of `run --shards K --phase …`, and
 * what the commit phase hands to runDay (daily.ts) to publish exactly as an unsharded run does.
 * Layout, markers and the pure rules are in sharded-layout.ts; the local runner of all three
 * phases as child processes in sharded-runner.ts.
 *
 * Every phase starts like an unsharded run (planDay: readiness, the same listing, the same
 * fingerprint) and is a no-op ("already_done") when the day is committed with that fingerprint.
 * Only the commit publishes. A phase writes only under its own shard folder, to keys that depend
 * only on the run, with deterministic bytes, and its marker last: a retried (or doubled) pod
 * rewrites the same files and the run converges.
 */
import { createHash } from 'node:crypto';
import { enrichedType } from '../avro/schemas.js';
import { AvroFilesWriter } from '../dataset/avro-writer.js';
import { SUCCESS_FILE, outputPartition } from '../dataset/layout.js';
import type { ManifestInput, ManifestOutput, ManifestSkipped } from '../dataset/manifest.js';
import { CorruptObjectError } from '../errors.js';
import { comboSettingsOf } from '../join/day-join.js';
import { DayMetrics } from '../join/day-metrics.js';
import { sanitizeForLog } from '../observability/log.js';
import { collectGarbage } from '../scale/collect-garbage.js';
import { joinBucket } from '../scale/join-bucket.js';
import { partitionInputs } from '../scale/partition.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';
import { WorkerPool } from '../workers/pool.js';
import { committedWith } from './commit.js';
import type { DayRequest, RunContext } from './daily.js';
import { preflight } from './inputs.js';
import type { ReadSetup } from './join-steps.js';
import { type DayPlan, estimateRecords, joinSettingsOf, outputMetadata, planDay } from './run-plan.js';
import {
  DONE_FILE,
  type JoinMarker,
  type MarkerIdentity,
  type PartitionMarker,
  SHARD_MARKER_FORMAT,
  STATE_FILE,
  type ShardPhase,
  bucketsOfShard,
  joinFolder,
  partitionFolder,
  readMarkers,
  serializeMarker,
  shardBucketCount,
  shardFolder,
  shareOf,
} from './sharded-layout.js';

/** Which shard of how many. */
export interface ShardSpec {
  shards: number;
  index: number;
}

/** The summary of a partition or join phase (stdout, --json). */
export interface PhaseResult {
  date: string;
  stage: DayRequest['stage'];
  phase: Exclude<ShardPhase, 'commit'>;
  shard: number;
  shards: number;
  status: 'done' | 'already_done';
  fingerprint: string;
  buckets: number;
  /** partition: records read from its share; join: predictions joined. */
  records: number;
  /** The shard's marker. */
  marker: string;
  duration_s: number;
}

/** The identity every marker of this run carries. */
function identityOf(request: DayRequest, plan: DayPlan, shards: number, buckets: number | undefined): MarkerIdentity {
  return { stage: request.stage, date: request.date, fingerprint: plan.fingerprint, shards, buckets };
}

/** The fields every marker starts with: its format and phase, the run it belongs to, its shard. */
function markerHead<P extends PhaseResult['phase']>(phase: P, request: DayRequest, plan: DayPlan, shard: ShardSpec, buckets: number) {
  return { format: SHARD_MARKER_FORMAT, phase, stage: request.stage, date: request.date, fingerprint: plan.fingerprint, shards: shard.shards, shard: shard.index, buckets } as const;
}

/** The bucket count of this run (every pod computes the same from the same listing). */
function bucketCountOf(ctx: RunContext, plan: DayPlan, shards: number): number {
  return shardBucketCount(estimateRecords(plan.labelInputs.objects), estimateRecords(plan.predictionInputs.objects), ctx.config.memoryBudget, shards);
}

/** A reader setup without progress accounting (a phase is one pod's share; its log lines tell the progress). */
function readSetup(ctx: RunContext, pool: WorkerPool | undefined, store: ObjectStore, objects: readonly ObjectInfo[]): ReadSetup {
  return { store, objects, readAhead: ctx.config.readAhead, hooks: { limits: ctx.config.decodeLimits }, pool, signal: ctx.signal, onRecords: () => undefined };
}

async function withPool<T>(ctx: RunContext, work: (pool: WorkerPool | undefined) => Promise<T>): Promise<T> {
  const pool = ctx.config.workers > 0 ? new WorkerPool(ctx.config.workers) : undefined;
  try {
    return await work(pool);
  } finally {
    await pool?.close();
  }
}

/** What every partition or join phase starts from. */
interface PhaseStart {
  plan: DayPlan;
  log: RunContext['logger'];
  /** The run's shard folder, and this shard's own folder of this phase in it. */
  folder: string;
  own: string;
  /** The bucket count this pod computes from the listing and its options (the partition's; a join takes the markers'). */
  buckets: number;
  /** The phase's summary (`used`: the bucket count of the markers, for a join). */
  result: (status: PhaseResult['status'], records: number, used?: number) => PhaseResult;
  /** The day is committed with this fingerprint: the phase has nothing to do. */
  committed: boolean;
}

/** The start of a phase: the unsharded run's plan, its folders and bucket count, and whether the day is already committed with its fingerprint. */
async function startPhase(ctx: RunContext, request: DayRequest, shard: ShardSpec, phase: PhaseResult['phase']): Promise<PhaseStart> {
  const started = Date.now();
  const log = ctx.logger.child({ date: request.date, stage: request.stage, phase, shard: shard.index, shards: shard.shards });
  const plan = await planDay(ctx.stores, ctx.config, request, ctx.jobVersion);
  const committed = !ctx.config.force && (await committedWith(ctx.stores, `${outputPartition(request.stage, request.date)}${SUCCESS_FILE}`, plan.fingerprint)) !== undefined;
  const folder = shardFolder(request.stage, request.date, plan.fingerprint, shard.shards);
  const own = phase === 'partition' ? partitionFolder(folder, shard.index) : joinFolder(folder, shard.index);
  const buckets = bucketCountOf(ctx, plan, shard.shards);
  const marker = ctx.stores.curated.uriOf(`${own}${DONE_FILE}`);
  const result = (status: PhaseResult['status'], records: number, used = buckets): PhaseResult => ({ date: request.date, stage: request.stage, phase, shard: shard.index, shards: shard.shards, status, fingerprint: plan.fingerprint, buckets: used, records, marker, duration_s: (Date.now() - started) / 1000 });
  if (committed) log.info({ event: 'already_done', fingerprint: plan.fingerprint }, `day already committed with the same inputs and options; nothing to ${phase}`);
  return { plan, log, folder, own, buckets, result, committed };
}

/**
 * Partition phase of shard I: its contiguous share of the day's prediction objects and of its label
 * objects (key order), checked as an unsharded run checks them, hash-partitioned into the run's
 * bucket count under `p<I>/`, then the marker.
 */
export async function runPartitionPhase(ctx: RunContext, request: DayRequest, shard: ShardSpec): Promise<PhaseResult> {
  const { stores, config } = ctx;
  const { plan, log, own, buckets, result, committed } = await startPhase(ctx, request, shard, 'partition');
  if (committed) return result('already_done', 0);
  const share = <T extends { objects: ObjectInfo[] }>(inputs: T): T => {
    const { start, end } = shareOf(inputs.objects.length, shard.index, shard.shards);
    return { ...inputs, objects: inputs.objects.slice(start, end) };
  };
  const predictions = share(plan.predictionInputs);
  const labels = share(plan.labelInputs);
  log.info({ event: 'shard_partition_started', buckets, prediction_objects: predictions.objects.length, label_objects: labels.objects.length, folder: stores.curated.uriOf(own) }, `partitioning shard ${shard.index} of ${shard.shards} into ${buckets} buckets`);
  const [predictionCheck, labelCheck] = await Promise.all([preflight(predictions, config.onCorrupt, log), preflight(labels, config.onCorrupt, log)]);
  const written = await withPool(ctx, (pool) =>
    partitionInputs(
      { labels: readSetup(ctx, pool, stores.labels, labelCheck.usable), predictions: readSetup(ctx, pool, stores.predictions, predictionCheck.usable) },
      { store: stores.curated, prefix: own, buckets, level: 0, labelsThrough: plan.labelsThrough },
    ),
  );
  const marker: PartitionMarker = {
    ...markerHead('partition', request, plan, shard, buckets),
    labels_read: written.labelsRead,
    predictions_read: written.predictionsRead,
    bytes: written.bytes,
    prediction_inputs: predictionCheck.inputs as PartitionMarker['prediction_inputs'],
    label_inputs: labelCheck.inputs as PartitionMarker['label_inputs'],
    skipped: [...predictionCheck.skipped, ...labelCheck.skipped],
    bucket_files: written.buckets.map((b) => ({ labels: b.labels, predictions: b.predictions })),
  };
  ctx.signal?.throwIfAborted();
  await stores.curated.write(`${own}${DONE_FILE}`, serializeMarker(marker), 'application/json');
  log.info({ event: 'shard_partition_done', buckets, labels_read: written.labelsRead, predictions_read: written.predictionsRead, bytes: written.bytes }, `shard ${shard.index} partitioned`);
  return result('done', written.labelsRead + written.predictionsRead);
}

/**
 * Join phase of shard I: needs every partition marker (else exit 3); joins its buckets (b mod K =
 * I) with joinBucket, bucket b's files read from p0 … pK-1 in order, into curated parts under
 * `j<I>/` and one merged DayMetrics; writes the state, then the marker.
 */
export async function runJoinPhase(ctx: RunContext, request: DayRequest, shard: ShardSpec): Promise<PhaseResult> {
  const { stores, config } = ctx;
  const { plan, log, folder, own, result, committed } = await startPhase(ctx, request, shard, 'join');
  if (committed) return result('already_done', 0);
  // The bucket count is the partition pods' (from their --memory-budget), which every marker must agree on.
  const partitions = await readMarkers(stores.curated, folder, 'partition', identityOf(request, plan, shard.shards, undefined));
  const buckets = partitions[0]!.buckets;
  const settings = joinSettingsOf(config, request, plan);
  const metrics = DayMetrics.empty(comboSettingsOf(settings));
  const joined: number[] = [];
  let labelsIndexed = 0;
  const curated = await withPool(ctx, async (pool) => {
    const compress = pool === undefined || config.codec === 'null' ? undefined : (codec: string, data: Buffer) => pool.compress(codec, data);
    const writer = new AvroFilesWriter(stores.curated, { type: enrichedType, codec: config.codec, keyOf: (n) => `${own}part-${String(n).padStart(5, '0')}.avro`, metadata: outputMetadata(config, request, plan), maxPartBytes: config.partBytes, compress });
    try {
      for (const b of bucketsOfShard(buckets, shard.index, shard.shards)) {
        ctx.signal?.throwIfAborted();
        const side = (name: 'labels' | 'predictions') => ({ objects: partitions.flatMap((m) => m.bucket_files[b]![name].objects), records: partitions.reduce((n, m) => n + m.bucket_files[b]![name].records, 0) });
        const labels = side('labels');
        const predictions = side('predictions');
        if (predictions.records === 0) {
          // Labels of no prediction of the day: indexed (labels_indexed counts them), joined to nothing.
          labelsIndexed += labels.records;
          continue;
        }
        // The bucket's join lives only inside this call, so the collection after it frees its tables
        // (ArrayBuffers, outside the JS heap) before the next bucket allocates its own (collect-garbage.ts).
        const joinOne = async (): Promise<void> => {
          const bucket = await joinBucket(
            { labels: readSetup(ctx, pool, stores.curated, labels.objects), predictions: readSetup(ctx, pool, stores.curated, predictions.objects), labelRecords: labels.records, predictionRecords: predictions.records },
            settings,
            plan.labelsThrough,
            writer,
          );
          labelsIndexed += bucket.labelsIndexed;
          metrics.merge(DayMetrics.of(bucket.join));
          log.info({ event: 'shard_bucket_joined', rss_bytes: process.memoryUsage.rss(), bucket: b, labels: labels.records, predictions: predictions.records, kept: bucket.join.stats.kept, state_bytes: bucket.stateBytes }, `bucket ${b} joined`);
        };
        await joinOne();
        joined.push(b);
        collectGarbage();
      }
      return await writer.finish();
    } catch (error) {
      await writer.abort(error);
      throw error;
    }
  });
  const state = metrics.toBytes();
  const stateKey = `${own}${STATE_FILE}`;
  await stores.curated.write(stateKey, state, 'application/octet-stream');
  const marker: JoinMarker = {
    ...markerHead('join', request, plan, shard, buckets),
    buckets_joined: joined,
    labels_indexed: labelsIndexed,
    stats: metrics.stats,
    curated,
    state: { key: stateKey, size: state.length, sha256: createHash('sha256').update(state).digest('hex') },
  };
  ctx.signal?.throwIfAborted();
  await stores.curated.write(`${own}${DONE_FILE}`, serializeMarker(marker), 'application/json');
  log.info({ event: 'shard_join_done', buckets_joined: joined.length, curated_files: curated.length, ...metrics.stats }, `shard ${shard.index} joined`);
  return result('done', metrics.stats.predictionsRead, buckets);
}

/** What the commit phase hands to runDay: the merged day, its curated parts staged in the shard folder, and the manifest's inputs. */
export interface ShardedDay {
  /** The shard folder: kept by runDay's staging sweep until the commit is done, then removed. */
  folder: string;
  metrics: DayMetrics;
  stats: DayMetrics['stats'];
  labelsRead: number;
  labelsIndexed: number;
  /** Curated outputs under their final keys (renumbered part-00000… in shard, bucket order) … */
  curated: ManifestOutput[];
  /** … and where each is staged. */
  stagedKey: (finalKey: string) => string;
  inputs: ManifestInput[];
  skipped: ManifestSkipped[];
}

/**
 * Reads what the join shards left (every join marker, else exit 3; every state, checked against
 * its marker's sha256 and size) and merges the states in shard order.
 */
export async function loadShardedDay(ctx: RunContext, request: DayRequest, plan: DayPlan, shards: number, finalKey: (index: number) => string): Promise<ShardedDay> {
  const { stores } = ctx;
  const folder = shardFolder(request.stage, request.date, plan.fingerprint, shards);
  const joins = await readMarkers(stores.curated, folder, 'join', identityOf(request, plan, shards, undefined));
  const partitions = await readMarkers(stores.curated, folder, 'partition', identityOf(request, plan, shards, joins[0]!.buckets));
  let metrics: DayMetrics | undefined;
  for (const marker of joins) {
    const uri = stores.curated.uriOf(marker.state.key);
    const bytes = await stores.curated.readSmall(marker.state.key);
    if (bytes === undefined) throw new CorruptObjectError(`${uri} is missing although its join marker lists it; rerun --phase join for shard ${marker.shard}`, { uri });
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== marker.state.sha256 || bytes.length !== marker.state.size) {
      throw new CorruptObjectError(`${uri}: ${bytes.length} bytes with sha256 ${digest}, its join marker says ${marker.state.size} bytes with ${marker.state.sha256}; rerun --phase join for shard ${marker.shard}`, { uri });
    }
    const part = DayMetrics.fromBytes(bytes, uri);
    if (metrics === undefined) metrics = part;
    else metrics.merge(part);
  }
  // Parts in shard, bucket order; header-only parts (a shard without predictions) only when the day has none.
  const staged = joins.flatMap((m) => m.curated);
  const withRecords = staged.filter((o) => o.records > 0);
  const parts = withRecords.length > 0 ? withRecords : staged.slice(0, 1);
  const stagedOf = new Map<string, string>();
  const curated = parts.map((o, index) => {
    const key = finalKey(index);
    stagedOf.set(key, o.key);
    return { key, size: o.size, records: o.records };
  });
  return {
    folder,
    metrics: metrics!,
    stats: metrics!.stats,
    labelsRead: partitions.reduce((n, m) => n + m.labels_read, 0),
    labelsIndexed: joins.reduce((n, m) => n + m.labels_indexed, 0),
    curated,
    stagedKey: (key) => stagedOf.get(key)!,
    inputs: [...partitions.flatMap((m) => m.prediction_inputs), ...partitions.flatMap((m) => m.label_inputs)],
    skipped: [...partitions.flatMap((m) => m.skipped.filter((s) => s.dataset === 'predictions')), ...partitions.flatMap((m) => m.skipped.filter((s) => s.dataset === 'labels'))],
  };
}

/** Removes a committed day's shard folder; a failure is only logged (the next run of the day sweeps the staging area). */
export async function removeShardFolder(store: ObjectStore, folder: string, log: RunContext['logger']): Promise<void> {
  try {
    const removed = await store.deleteUnder(folder);
    log.info({ event: 'shard_staging_removed', uri: store.uriOf(folder), objects: removed.objects }, 'shard staging removed');
  } catch (error) {
    log.warn({ event: 'shard_staging_cleanup_failed', uri: store.uriOf(folder), error: sanitizeForLog(String(error)) }, 'could not remove the shard staging; it is hidden, and the next run of the day removes it');
  }
}
