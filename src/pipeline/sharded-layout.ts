/**
 * One day across pods (SPEC §9, `run --shards K --phase partition|join|commit`): the layout of a
 * sharded run in the curated store's staging area, its `_DONE.json` markers, and the pure rules of
 * who does what — each shard's contiguous share of the input objects, the bucket count every pod
 * agrees on, and which buckets a join shard owns.
 *
 * Layout, under `_staging/stage=S/dt=D/shards-<fingerprint 16>-of<K>/` of the curated store:
 * - `p<I>/b<5 digits>/labels.avro`, `…/predictions.avro`: partition shard I's hash buckets
 *   (scale/partition.ts), then `p<I>/_DONE.json`, last;
 * - `j<I>/part-<5 digits>.avro`: join shard I's curated parts (one or more per bucket, in bucket
 *   order), `j<I>/metrics.state`: its merged DayMetrics (toBytes), then `j<I>/_DONE.json`, last.
 * The folder names the run's fingerprint (inputs and options) and K, so a change of either starts
 * a fresh folder and never mixes with the old one; the commit removes the folder once published.
 *
 * Markers hold no clock time, host or run id: a phase run twice (a retried pod, or two pods of one
 * index at once) writes the same bytes to the same keys, so the last writer wins with the result
 * of the first (see README "One day across pods").
 */
import { z } from 'zod';
import { stagingPartition } from '../dataset/layout.js';
import type { ManifestInput, ManifestOutput, ManifestSkipped } from '../dataset/manifest.js';
import { CorruptObjectError, NotReadyError } from '../errors.js';
import type { JoinStats } from '../join/day-join.js';
import type { Stage } from '../join/records.js';
import { bucketsFor, joinStateBytes } from '../scale/memory-budget.js';
import { MAX_FANOUT } from '../scale/partition.js';
import type { ObjectStore } from '../storage/types.js';

export { MAX_SHARDS, SHARD_PHASES, type ShardPhase } from './sharded-options.js';

/** The marker's format tag; bump on an incompatible change (a marker of another format is refused). */
export const SHARD_MARKER_FORMAT = 'model-metrics/shard@1';
export const DONE_FILE = '_DONE.json';
export const STATE_FILE = 'metrics.state';

/** The staging folder of a sharded run of (stage, date) with this fingerprint and shard count. */
export function shardFolder(stage: Stage, date: string, fingerprint: string, shards: number): string {
  return `${stagingPartition(stage, date)}shards-${fingerprint.slice(0, 16)}-of${shards}/`;
}

/** Partition shard I's folder (its bucket files and marker). */
export function partitionFolder(folder: string, shard: number): string {
  return `${folder}p${shard}/`;
}

/** Join shard I's folder (its curated parts, metric state and marker). */
export function joinFolder(folder: string, shard: number): string {
  return `${folder}j${shard}/`;
}

/** Shard `index`'s contiguous share [start, end) of `count` objects in key order: concatenated in shard order they are all of them, in order. */
export function shareOf(count: number, index: number, shards: number): { start: number; end: number } {
  return { start: Math.floor((count * index) / shards), end: Math.floor((count * (index + 1)) / shards) };
}

/**
 * The bucket count of a sharded day, from what every pod lists alike: the day's estimated join
 * state (object sizes) over the memory budget of one join pod, rounded up to a multiple of K so
 * every join shard owns as many buckets; at most MAX_FANOUT (the files one partition pod writes at
 * once), rounded down to a multiple of K, and at least K.
 */
export function shardBucketCount(labelRecords: number, predictionRecords: number, budget: number, shards: number): number {
  const wanted = Math.max(1, bucketsFor(joinStateBytes(labelRecords, predictionRecords), budget));
  const rounded = Math.ceil(wanted / shards) * shards;
  const most = Math.max(shards, Math.floor(MAX_FANOUT / shards) * shards);
  return Math.min(rounded, most);
}

/** The buckets join shard I owns: b mod K = I, ascending. */
export function bucketsOfShard(buckets: number, shard: number, shards: number): number[] {
  const owned: number[] = [];
  for (let b = shard; b < buckets; b += shards) owned.push(b);
  return owned;
}

const objectSchema = z.object({ key: z.string(), size: z.number(), etag: z.string() });
const sideSchema = z.object({ objects: z.array(objectSchema), records: z.number() });
const markerBase = {
  format: z.literal(SHARD_MARKER_FORMAT),
  stage: z.enum(['preliminary', 'final']),
  date: z.string(),
  fingerprint: z.string(),
  shards: z.number(),
  shard: z.number(),
  buckets: z.number(),
};

const partitionMarkerSchema = z.object({
  ...markerBase,
  phase: z.literal('partition'),
  labels_read: z.number(),
  predictions_read: z.number(),
  bytes: z.number(),
  /** The manifest's inputs and skipped objects of this shard's share (preflight), predictions then labels. */
  prediction_inputs: z.array(z.object({ dataset: z.literal('predictions'), key: z.string(), size: z.number(), etag: z.string(), schema_fingerprint: z.string().optional() })),
  label_inputs: z.array(z.object({ dataset: z.literal('labels'), key: z.string(), size: z.number(), etag: z.string(), schema_fingerprint: z.string().optional() })),
  skipped: z.array(z.object({ dataset: z.enum(['predictions', 'labels']), key: z.string(), reason: z.string() })),
  /** Per bucket (index = bucket): this shard's files of it. */
  bucket_files: z.array(z.object({ labels: sideSchema, predictions: sideSchema })),
});

const statsSchema = z.object({ predictionsRead: z.number(), kept: z.number(), duplicatesDropped: z.number(), invalid: z.number(), labeled: z.number(), labeledFromLabels: z.number(), labeledInline: z.number() });

const joinMarkerSchema = z.object({
  ...markerBase,
  phase: z.literal('join'),
  buckets_joined: z.array(z.number()),
  labels_indexed: z.number(),
  stats: statsSchema,
  /** Curated parts in bucket order (keys in the curated store). */
  curated: z.array(z.object({ key: z.string(), size: z.number(), records: z.number() })),
  state: z.object({ key: z.string(), size: z.number(), sha256: z.string() }),
});

/** What partition shard I wrote. */
export type PartitionMarker = z.infer<typeof partitionMarkerSchema> & { prediction_inputs: ManifestInput[]; label_inputs: ManifestInput[]; skipped: ManifestSkipped[] };
/** What join shard I wrote. */
export type JoinMarker = z.infer<typeof joinMarkerSchema> & { stats: JoinStats; curated: ManifestOutput[] };

/** Who a marker must come from: the run (fingerprint, K, bucket count) and its shard. */
export interface MarkerIdentity {
  stage: Stage;
  date: string;
  fingerprint: string;
  shards: number;
  /** Undefined: not known before the first partition marker (the join phase checks the others against it). */
  buckets: number | undefined;
}

/** A marker as bytes: deterministic JSON (no clock, host or run id), pretty-printed for people who `cat` it. */
export function serializeMarker(marker: PartitionMarker | JoinMarker): Buffer {
  return Buffer.from(`${JSON.stringify(marker, null, 2)}\n`, 'utf8');
}

/**
 * Reads the markers of `phase` of every shard, in shard order. Missing ones: NotReadyError (exit 3)
 * naming them; a marker that is not one of ours, or of another run: CorruptObjectError naming its URI.
 */
export async function readMarkers(store: ObjectStore, folder: string, phase: 'partition', identity: MarkerIdentity): Promise<PartitionMarker[]>;
export async function readMarkers(store: ObjectStore, folder: string, phase: 'join', identity: MarkerIdentity): Promise<JoinMarker[]>;
export async function readMarkers(store: ObjectStore, folder: string, phase: 'partition' | 'join', identity: MarkerIdentity): Promise<Array<PartitionMarker | JoinMarker>> {
  const keys = Array.from({ length: identity.shards }, (_, shard) => `${phase === 'partition' ? partitionFolder(folder, shard) : joinFolder(folder, shard)}${DONE_FILE}`);
  const bytes = await Promise.all(keys.map((key) => store.readSmall(key)));
  const missing = keys.filter((_, shard) => bytes[shard] === undefined);
  if (missing.length > 0) {
    const shards = keys.map((_, shard) => shard).filter((shard) => bytes[shard] === undefined);
    throw new NotReadyError(
      `the ${phase} phase of ${identity.date} ${identity.stage} is not done for shard(s) ${shards.join(', ')} of ${identity.shards}: missing ${missing.map((key) => store.uriOf(key)).join(', ')}; run --phase ${phase} for those shards first (same inputs and options), then retry`,
      { uri: store.uriOf(missing[0]!), date: identity.date, reason: `${phase}_not_done`, shards },
    );
  }
  let buckets = identity.buckets;
  return bytes.map((body, shard) => {
    const uri = store.uriOf(keys[shard]!);
    let json: unknown;
    try {
      json = JSON.parse(body!.toString('utf8'));
    } catch (error) {
      throw new CorruptObjectError(`${uri} is not a shard marker (not JSON); delete ${store.uriOf(folder)} and rerun the sharded day from --phase partition`, { uri }, { cause: error });
    }
    const parsed = (phase === 'partition' ? partitionMarkerSchema : joinMarkerSchema).safeParse(json);
    if (!parsed.success) {
      throw new CorruptObjectError(`${uri} is not a ${SHARD_MARKER_FORMAT} ${phase} marker (${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? 'invalid'}); delete ${store.uriOf(folder)} and rerun the sharded day from --phase partition`, { uri });
    }
    const marker = parsed.data;
    buckets ??= marker.buckets;
    const expected = { stage: identity.stage, date: identity.date, fingerprint: identity.fingerprint, shards: identity.shards, shard, buckets };
    for (const [field, value] of Object.entries(expected)) {
      const actual = (marker as Record<string, unknown>)[field];
      if (actual !== value) {
        const why = field === 'buckets' ? 'the partition pods disagree on the bucket count: give every pod the same --memory-budget (the join pods\')' : 'a marker of another run';
        throw new CorruptObjectError(`${uri}: ${field} is ${JSON.stringify(actual)}, expected ${JSON.stringify(value)} (${why}); delete ${store.uriOf(folder)} and rerun the sharded day from --phase partition`, { uri, field });
      }
    }
    return marker as PartitionMarker | JoinMarker;
  });
}
