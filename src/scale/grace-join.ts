/**
 * A day joined under a memory budget (SPEC §9, `--memory-budget`): when the day's join state would
 * not fit, both sides are hash-partitioned by prediction_id into buckets (partition.ts) and each
 * bucket is joined in memory with the code of an unspilled run (join-bucket.ts), bucket after
 * bucket, in bucket order. A bucket whose exact counts (known once it is written) still exceed the
 * budget (skew, or an estimate that was low) is re-partitioned with the next hash level,
 * recursively; one prediction id with more labels than fit cannot be split, and fails the run
 * with a UsageError naming it and --memory-budget.
 */
import type { AvroFilesWriter } from '../dataset/avro-writer.js';
import { UsageError } from '../errors.js';
import { type JoinSettings, type JoinStats, comboSettingsOf } from '../join/day-join.js';
import { DayMetrics } from '../join/day-metrics.js';
import type { Logger } from '../observability/log.js';
import type { ReadSetup } from '../pipeline/join-steps.js';
import { readInOrder } from '../pipeline/ordered-reader.js';
import { labelType, predictionType } from '../avro/schemas.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';
import { type BucketJoin, joinBucket } from './join-bucket.js';
import { collectGarbage } from './collect-garbage.js';
import { BUCKET_FILL, bucketsFor, joinStateBytes } from './memory-budget.js';
import { type BucketFiles, MAX_FANOUT, type PartitionResult, partitionInputs } from './partition.js';

/** A finished bucket whose tables held at least budget / GC_SHARE bytes is collected at once. */
const GC_SHARE = 16;

/** Hash levels at most: each re-partitions a bucket at least in two, so only a single id (or a budget far too small) gets this deep. */
export const MAX_LEVELS = 8;

/** How a day is joined: in memory (buckets 1) or spilled into `buckets` buckets. */
export interface SpillPlan {
  buckets: number;
  /** Estimated join-state bytes of the day. */
  estimateBytes: number;
  budget: number;
}

/** The plan of a day whose inputs are estimated at these record counts. */
export function planSpill(labelRecords: number, predictionRecords: number, budget: number): SpillPlan {
  const estimateBytes = joinStateBytes(labelRecords, predictionRecords);
  return { buckets: Math.min(MAX_FANOUT, bucketsFor(estimateBytes, budget)), estimateBytes, budget };
}

/** What a spilled day needs. */
export interface GraceJoinOptions {
  /** Where the bucket files go (the spill area's local store). */
  store: ObjectStore;
  plan: SpillPlan;
  settings: JoinSettings;
  labelsThrough: number;
  /** The read settings of the day's inputs; `setupFor` gives the same for bucket files on `store`. */
  labels: ReadSetup;
  predictions: ReadSetup;
  setupFor: (store: ObjectStore, objects: readonly ObjectInfo[]) => ReadSetup;
  curated: AvroFilesWriter;
  logger: Logger;
  /** Called with each joined bucket, in bucket order: take its metric state and stats, then drop it. */
  onJoined: (joined: BucketJoin) => void;
}

/** What a spilled day did, for logs and the manifest. */
export interface GraceJoinResult {
  /** Buckets joined (leaves, after re-partitioning). */
  buckets: number;
  /** Bytes of every bucket file written, re-partitionings included. */
  bytes: number;
  labelsRead: number;
  /** Labels at or before labelsThrough, over every bucket (the unspilled run's LabelIndex size). */
  labelsIndexed: number;
  predictionsRead: number;
}

/** Partitions the day into buckets and joins them one by one (see the module doc). */
export async function graceJoin(options: GraceJoinOptions): Promise<GraceJoinResult> {
  const { store, plan, logger } = options;
  const day = await partitionInputs({ labels: options.labels, predictions: options.predictions }, { store, prefix: '', buckets: plan.buckets, level: 0, labelsThrough: options.labelsThrough });
  logger.info({ event: 'spill_partitioned', rss_bytes: process.memoryUsage.rss(), buckets: plan.buckets, spill_bytes: day.bytes, labels_read: day.labelsRead, predictions_read: day.predictionsRead }, `day partitioned into ${plan.buckets} buckets`);
  const totals: Totals = { buckets: 0, bytes: day.bytes, labelsIndexed: 0 };
  await joinAll(options, day, 0, totals);
  return { ...totals, labelsRead: day.labelsRead, predictionsRead: day.predictionsRead };
}

type Totals = Pick<GraceJoinResult, 'buckets' | 'bytes' | 'labelsIndexed'>;

async function joinAll(options: GraceJoinOptions, partitioned: PartitionResult, level: number, totals: Totals): Promise<void> {
  const { store, plan, logger } = options;
  for (const [index, bucket] of partitioned.buckets.entries()) {
    const labelRecords = bucket.labels.records;
    const predictionRecords = bucket.predictions.records;
    const stateBytes = joinStateBytes(labelRecords, predictionRecords);
    if (predictionRecords === 0) {
      // Labels of no prediction of the day: indexed (the manifest's labels_indexed counts them) but joined to nothing.
      totals.labelsIndexed += labelRecords;
      if (labelRecords > 0) await store.deleteUnder(bucket.prefix);
      continue;
    }
    if (stateBytes > plan.budget) {
      const sub = await repartition(options, bucket, level + 1, stateBytes);
      totals.bytes += sub.bytes;
      await joinAll(options, sub, level + 1, totals);
      continue;
    }
    let joined: BucketJoin | undefined = await joinBucket(
      { labels: options.setupFor(store, bucket.labels.objects), predictions: options.setupFor(store, bucket.predictions.objects), labelRecords, predictionRecords },
      options.settings,
      options.labelsThrough,
      options.curated,
    );
    totals.buckets++;
    totals.labelsIndexed += joined.labelsIndexed;
    logger.info(
      { event: 'spill_bucket_joined', rss_bytes: process.memoryUsage.rss(), bucket: bucket.prefix, index, of: partitioned.buckets.length, level, labels: labelRecords, predictions: predictionRecords, kept: joined.join.stats.kept, state_bytes: joined.stateBytes },
      `bucket ${bucket.prefix} joined (${index + 1} of ${partitioned.buckets.length} at level ${level})`,
    );
    options.onJoined(joined);
    const freed = joined.stateBytes;
    // Dropped here, not at the end of the iteration: the collection below frees the bucket's tables
    // before the next bucket allocates its own. Small buckets (the sub-buckets of a re-partitioning)
    // are left to V8's own schedule: a full collection each would cost more than they hold.
    joined = undefined;
    await store.deleteUnder(bucket.prefix);
    if (freed >= plan.budget / GC_SHARE) collectGarbage();
  }
}

/** Splits a bucket that does not fit with the next hash level; its own files are removed once split. */
async function repartition(options: GraceJoinOptions, bucket: BucketFiles, level: number, stateBytes: number): Promise<PartitionResult> {
  const { store, plan, logger } = options;
  if (level >= MAX_LEVELS) throw await unsplittable(options, bucket, stateBytes);
  const buckets = Math.min(MAX_FANOUT, Math.max(2, bucketsFor(stateBytes, plan.budget)));
  const sub = await partitionInputs(
    { labels: options.setupFor(store, bucket.labels.objects), predictions: options.setupFor(store, bucket.predictions.objects) },
    { store, prefix: `${bucket.prefix}L${level}/`, buckets, level, labelsThrough: options.labelsThrough },
  );
  await store.delete([...bucket.labels.objects, ...bucket.predictions.objects].map((o) => o.key));
  logger.info(
    { event: 'spill_bucket_repartitioned', bucket: bucket.prefix, level, buckets, labels: bucket.labels.records, predictions: bucket.predictions.records, estimate_bytes: stateBytes, budget: plan.budget, spill_bytes: sub.bytes },
    `bucket ${bucket.prefix} does not fit the budget (${stateBytes} > ${plan.budget} bytes): re-partitioned into ${buckets} at level ${level}`,
  );
  return sub;
}

/** The error of a bucket that no hash level splits: in practice one prediction id with too many labels (or predictions). */
async function unsplittable(options: GraceJoinOptions, bucket: BucketFiles, stateBytes: number): Promise<UsageError> {
  const side = bucket.labels.records > 0 ? { objects: bucket.labels.objects, type: labelType } : { objects: bucket.predictions.objects, type: predictionType };
  let id = '?';
  for await (const block of readInOrder<{ prediction_id: string }>(options.store, side.objects, side.type, 1)) {
    id = block.records[0]?.prediction_id ?? id;
    break;
  }
  return new UsageError(
    `prediction_id ${JSON.stringify(id.slice(0, 200))} alone has ${bucket.labels.records} labels and ${bucket.predictions.records} predictions: about ${stateBytes} bytes of join state, more than --memory-budget ${options.plan.budget} bytes, and one id cannot be split into buckets (${MAX_LEVELS} hash levels tried). Raise --memory-budget to at least ${Math.ceil(stateBytes / BUCKET_FILL)} bytes`,
    { option: '--memory-budget', prediction_id: id.slice(0, 200) },
  );
}

/** A spilled day's join, in the terms of an unspilled one. */
export interface SpilledDay extends GraceJoinResult {
  /** The day's metric state: the buckets' DayMetrics merged (parts over disjoint prediction ids). */
  metrics: DayMetrics;
  /** The buckets' join stats, summed. */
  stats: JoinStats;
}

/**
 * graceJoin with the buckets' results folded as they come: each bucket's metric state copied out
 * of its join (DayMetrics.of) and merged into the day's, its stats summed (by merge), and its label index and
 * join dropped before the next bucket is read.
 */
export async function joinSpilledDay(options: Omit<GraceJoinOptions, 'onJoined'>): Promise<SpilledDay> {
  let metrics: DayMetrics | undefined;
  const result = await graceJoin({
    ...options,
    onJoined: (joined) => {
      const part = DayMetrics.of(joined.join);
      if (metrics === undefined) metrics = part;
      else metrics.merge(part);
    },
  });
  // A day without predictions: the metric state of an empty join, as an unspilled run has.
  metrics ??= DayMetrics.empty(comboSettingsOf(options.settings));
  // DayMetrics sums the buckets' stats as it merges them.
  return { ...result, metrics, stats: metrics.stats };
}
