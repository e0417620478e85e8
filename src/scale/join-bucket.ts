/**
 * The join step of the grace hash join (SPEC §9): one bucket's label files, then its prediction
 * files, in order, through the in-memory join of a day (buildLabelIndex, DayJoin and
 * probePredictions: the very code of an unspilled run, a LabelIndex on the main thread or with a
 * pool a SharedLabelIndex the workers join against), each kept prediction appended to the
 * curated writer in input order, and a curated part cut at the end so that every part holds one
 * bucket. The caller takes the bucket's metric state from the finished join and drops the rest.
 */
import type { AvroFilesWriter } from '../dataset/avro-writer.js';
import { DayJoin, type JoinSettings } from '../join/day-join.js';
import { buildLabelIndex, probePredictions, type ReadSetup } from '../pipeline/join-steps.js';

/** A bucket's two sides to read (its objects and read settings) and their exact record counts (to presize the tables). */
export interface BucketJoinInput {
  labels: ReadSetup;
  predictions: ReadSetup;
  labelRecords: number;
  predictionRecords: number;
}

/** A joined bucket. */
export interface BucketJoin {
  /** The finished join: its stats, and its metric side for DayMetrics.of. */
  join: DayJoin;
  labelsIndexed: number;
  /** Bytes of the bucket's label index and join structures at their peak (for the budget's log lines). */
  stateBytes: number;
}

/** Joins one bucket into `curated` (then cuts a part); see the module doc. */
export async function joinBucket(input: BucketJoinInput, settings: JoinSettings, labelsThrough: number, curated: AvroFilesWriter): Promise<BucketJoin> {
  const labels = await buildLabelIndex(input.labels, Math.max(16, input.labelRecords), labelsThrough);
  const join = new DayJoin(settings, labels.labels, Math.max(16, input.predictionRecords));
  await probePredictions(input.predictions, join, curated);
  await curated.cutPart();
  return { join, labelsIndexed: labels.indexed, stateBytes: labels.byteSize + join.byteSize };
}
