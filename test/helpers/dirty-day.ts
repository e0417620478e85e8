/** A generated day of predictions and labels with every case of SPEC §3, for the join and metrics unit tests. */
import { seededRandom } from '../../src/demo/generate.js';
import { dayWindow } from '../../src/join/policy.js';
import type { LabelRecord, PredictionRecord } from '../../src/join/records.js';

/** The day every generated record belongs to. */
export const DAY = dayWindow('2026-03-02');
const S = 1_000_000;
const H = 3600 * S;

/**
 * A dirty day: duplicates, NaN predictions and labels, inline truth (alone, and beside dataset labels),
 * corrections, label_ts ties, negative delays, misplaced predictions on both sides of D, and two
 * high-cardinality keys so that the overflow rows can be forced. `hours`: the hours of D to draw
 * inference times from (default all, plus misplaced ones); `models`: model names to draw from.
 */
export function dirtyDay(seed: number, count: number, hours?: readonly number[], models: readonly string[] = ['eta']): { predictions: PredictionRecord[]; labels: LabelRecord[] } {
  const random = seededRandom(seed);
  const predictions: PredictionRecord[] = [];
  const labels: LabelRecord[] = [];
  for (let i = 0; i < count; i++) {
    const hour = hours === undefined ? Math.floor(random() * 24) : hours[Math.floor(random() * hours.length)]!;
    let inference = DAY.startMicros + hour * H + Math.floor(random() * H);
    const roll = random();
    if (hours === undefined && roll < 0.01) inference = DAY.startMicros - Math.floor(random() * 3 * H);
    else if (hours === undefined && roll < 0.02) inference = DAY.endMicros + Math.floor(random() * 3 * H);
    const yTrue = 1e3 + Math.round(random() * 1e5) / 64;
    const inline = random() < 0.08 ? (random() < 0.1 ? NaN : yTrue + 0.5) : null;
    const segment_keys: Record<string, string> = { region: `r${Math.floor(random() * 6)}` };
    if (random() < 0.7) segment_keys.device = `d${Math.floor(random() * 3)}`;
    if (random() < 0.4) segment_keys.user = `u${Math.floor(random() * 50)}`;
    const p: PredictionRecord = {
      prediction_id: `p${i}`,
      model_name: models.length === 1 ? models[0]! : models[Math.floor(random() * models.length)]!,
      model_version: random() < 0.6 ? 'v1' : 'v2',
      feature_set_version: 'fs',
      y_pred: random() < 0.005 ? NaN : yTrue + Math.round((random() - 0.4) * 4096) / 16,
      y_true: inline,
      residual: null,
      inference_ts: inference,
      segment_keys,
    };
    predictions.push(p);
    if (random() < 0.01 && i > 0) predictions.push({ ...predictions[Math.floor(random() * i)]!, y_pred: 7 });
    if (random() < 0.15) continue;
    const delay = Math.floor(Math.exp(Math.log(10) + random() * Math.log(1e6)) * S);
    const ts = random() < 0.01 ? inference - 20 * S : inference + delay;
    labels.push({ prediction_id: p.prediction_id, y_true: random() < 0.01 ? NaN : yTrue, label_ts: ts });
    const extra = random();
    if (extra < 0.1) labels.push({ prediction_id: p.prediction_id, y_true: yTrue + 1, label_ts: ts + Math.floor(random() * 4 * 86_400) * S });
    else if (extra < 0.13) labels.push({ prediction_id: p.prediction_id, y_true: yTrue - 1, label_ts: ts });
    else if (extra < 0.15) labels.push({ prediction_id: p.prediction_id, y_true: NaN, label_ts: ts + 3 * H });
  }
  // Labels arrive in label_ts order across their partitions, as the generator and producers write them.
  labels.sort((a, b) => a.label_ts - b.label_ts);
  return { predictions, labels };
}

