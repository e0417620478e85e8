/**
 * The values of `run --shards K --phase P` (SPEC §9), in a module without imports so that the
 * option table and its resolution load nothing of the pipeline.
 */

/** The three phases of a sharded day, in the order they run. */
export const SHARD_PHASES = ['partition', 'join', 'commit'] as const;
export type ShardPhase = (typeof SHARD_PHASES)[number];

/** Most shards of one day: each partition pod writes every bucket, and buckets are a multiple of K. */
export const MAX_SHARDS = 256;
