/**
 * The record shapes of SPEC §2, §4 and §5 as they come out of (and go into) the Avro layer, after
 * schema resolution against our reader schemas in `schemas/`.
 */

/**
 * A PredictionEvent (SPEC §2) as read with the latest reader schema (`schemas/prediction/v2.avsc`),
 * whatever version wrote it. Timestamps are microseconds since the epoch.
 */
export interface PredictionRecord {
  prediction_id: string;
  model_name: string;
  model_version: string;
  /** `featureset_version` in v1 files: the v2 reader matches it through its alias. */
  feature_set_version: string;
  y_pred: number;
  y_true: number | null;
  residual: number | null;
  inference_ts: number;
  segment_keys: Record<string, string>;
  /** New in v2; decoding always sets it (null for v1 files), records built in code may leave it out (written as null). */
  request_id?: string | null;
}

/** A LabelEvent (SPEC §2). */
export interface LabelRecord {
  prediction_id: string;
  y_true: number;
  label_ts: number;
}

/** Where the truth of an enriched record came from. */
export type LabelSource = 'labels' | 'inline';

/**
 * An EnrichedPrediction (SPEC §4): the prediction with its joined label. The curated schema keeps
 * the v1 field name `featureset_version`: renaming an input field must not rename an output column.
 */
export interface EnrichedRecord extends Omit<PredictionRecord, 'feature_set_version' | 'request_id'> {
  featureset_version: string;
  label_ts: number | null;
  label_delay_seconds: number | null;
  label_source: LabelSource | null;
}

/** The two stages of SPEC §3. */
export type Stage = 'preliminary' | 'final';

/** The Avro enum symbol of a stage. */
export function stageSymbol(stage: Stage): 'PRELIMINARY' | 'FINAL' {
  return stage === 'final' ? 'FINAL' : 'PRELIMINARY';
}

/** Per-row outcome of the join of one prediction (a columnar batch's results carry it per row). */
export const RowKind = { dropped: 0, unlabeled: 1, invalid: 2, fromLabels: 3, inline: 4 } as const;
export type RowKind = (typeof RowKind)[keyof typeof RowKind];
