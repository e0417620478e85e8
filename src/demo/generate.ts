/**
 * Realistic, reproducible sample data for `demo`, tests and benchmarks: several models and
 * versions, segments, hourly prediction files, labels that arrive from minutes to beyond the
 * window, corrected (duplicate) labels, re-sent predictions, inline truth, y_true = 0, a few NaNs
 * and a record or two in the wrong day partition. The same seed gives the same bytes.
 */
import { DateTime } from 'luxon';
import { labelType, predictionType } from '../avro/schemas.js';
import { defaultOf } from '../config/options.js';
import { AvroFilesWriter } from '../dataset/avro-writer.js';
import type { LabelRecord, PredictionRecord } from '../join/records.js';
import type { ObjectStore } from '../storage/types.js';

/** A small deterministic PRNG (mulberry32): tests and benchmarks must be reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What to generate. */
export interface SampleOptions {
  /** First day, YYYY-MM-DD. */
  from: string;
  days: number;
  predictionsPerDay: number;
  seed?: number;
  /** Prediction files per day (hourly partitions). Default 24. */
  filesPerDay?: number;
  /** Avro codec of the sample files. Default: the job's output codec default (`--codec` in the option table). */
  codec?: string;
  /** Share of predictions that never get a label. Default 0.1. */
  unlabeledShare?: number;
  /** Add duplicates, NaNs, zeros, misplaced records. Default true. */
  dirty?: boolean;
  /** A degradation to detect (SPEC §8 alerts): from day `fromDay` on, one segment of one model predicts worse. */
  drift?: SampleDrift;
}

/** A seeded drift: the model's error noise in one segment value is multiplied by `noiseFactor` from day index `fromDay`. */
export interface SampleDrift {
  model: string;
  segmentKey: 'region' | 'device';
  segmentValue: string;
  fromDay: number;
  noiseFactor: number;
}

/** Totals of what was written. */
export interface SampleSummary {
  predictions: number;
  labels: number;
  predictionFiles: number;
  labelFiles: number;
}

const MODELS = [
  { name: 'delivery-eta', version: 'v41', bias: 0.4, noise: 3.0, base: 32, spread: 12 },
  { name: 'delivery-eta', version: 'v42', bias: -0.1, noise: 2.4, base: 32, spread: 12 },
  { name: 'basket-value', version: '2026.02.1', bias: 1.5, noise: 9.0, base: 58, spread: 30 },
];
const REGIONS = ['eu-west', 'us-east', 'ap-south', 'sa-east'];
const DEVICES = ['ios', 'android', 'web'];
const CHANNELS = ['organic', 'paid', 'referral'];

const MICROS_PER_SECOND = 1_000_000;

function uuid(random: () => number): string {
  const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join('');
  return `${hex(8)}-${hex(4)}-4${hex(3)}-${(8 + Math.floor(random() * 4)).toString(16)}${hex(3)}-${hex(12)}`;
}

function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

async function writeFile(store: ObjectStore, key: string, type: typeof predictionType, records: readonly unknown[], codec: string): Promise<void> {
  const writer = new AvroFilesWriter(store, { type, codec, keyOf: () => key, metadata: {}, maxPartBytes: Number.POSITIVE_INFINITY });
  for (const record of records) await writer.append(record);
  await writer.finish();
}

/** Writes predictions and labels for `days` days into the two stores. */
export async function generateSample(predictions: ObjectStore, labels: ObjectStore, options: SampleOptions): Promise<SampleSummary> {
  const random = seededRandom(options.seed ?? 42);
  const filesPerDay = options.filesPerDay ?? 24;
  const codec = options.codec ?? defaultOf<string>('codec');
  const dirty = options.dirty ?? true;
  const unlabeledShare = options.unlabeledShare ?? 0.1;
  const labelsByDate = new Map<string, LabelRecord[]>();
  const summary: SampleSummary = { predictions: 0, labels: 0, predictionFiles: 0, labelFiles: 0 };
  const addLabel = (label: LabelRecord): void => {
    const date = DateTime.fromMillis(Math.floor(label.label_ts / 1000), { zone: 'utc' }).toISODate()!;
    const list = labelsByDate.get(date) ?? [];
    list.push(label);
    labelsByDate.set(date, list);
  };

  for (let d = 0; d < options.days; d++) {
    const day = DateTime.fromISO(options.from, { zone: 'utc' }).plus({ days: d });
    const date = day.toISODate()!;
    const dayStart = day.toMillis() * 1000;
    const perFile = Math.ceil(options.predictionsPerDay / filesPerDay);
    let previous: PredictionRecord | undefined;
    for (let f = 0; f < filesPerDay; f++) {
      const records: PredictionRecord[] = [];
      const count = Math.min(perFile, options.predictionsPerDay - f * perFile);
      for (let i = 0; i < count; i++) {
        const model = MODELS[Math.floor(random() * MODELS.length)]!;
        const slot = (f + random()) / filesPerDay;
        let inferenceTs = dayStart + Math.floor(slot * 86_400) * MICROS_PER_SECOND + Math.floor(random() * MICROS_PER_SECOND);
        // A producer with a skewed clock: a record stamped the previous evening lands in today's partition.
        if (dirty && random() < 0.0005) inferenceTs = dayStart - Math.floor(random() * 3600) * MICROS_PER_SECOND;
        const truth = Math.max(2, model.base + model.spread * gaussian(random));
        const yTrue = dirty && random() < 0.01 ? 0 : Math.round(truth * 100) / 100;
        const noise = model.noise * gaussian(random);
        const nanPrediction = dirty && random() < 0.001;
        const segments: Record<string, string> = {
          region: REGIONS[Math.floor(random() * random() * REGIONS.length)]!,
          device: DEVICES[Math.floor(random() * DEVICES.length)]!,
        };
        // The same draws with or without a drift: only the drifted segment's errors change.
        const drift = options.drift;
        const drifted = drift !== undefined && d >= drift.fromDay && model.name === drift.model && segments[drift.segmentKey] === drift.segmentValue;
        let yPred = Math.round((yTrue + model.bias + noise * (drifted ? drift.noiseFactor : 1)) * 1000) / 1000;
        if (nanPrediction) yPred = Number.NaN;
        if (random() < 0.8) segments.channel = CHANNELS[Math.floor(random() * CHANNELS.length)]!;
        const inline = model.name === 'basket-value' && random() < 0.05;
        const record: PredictionRecord = {
          prediction_id: uuid(random),
          model_name: model.name,
          model_version: model.version,
          feature_set_version: model.name === 'basket-value' ? 'fs-7' : 'fs-12',
          y_pred: yPred,
          y_true: inline ? yTrue : null,
          residual: inline ? yTrue - yPred : null,
          inference_ts: inferenceTs,
          segment_keys: segments,
        };
        // A retrying client re-sends a prediction it already sent.
        if (dirty && previous !== undefined && random() < 0.005) records.push({ ...previous, inference_ts: previous.inference_ts + MICROS_PER_SECOND });
        records.push(record);
        previous = record;
        if (inline || random() < unlabeledShare) continue;
        // Label delay: log-normal around ~6 h, from minutes to beyond a 7-day window.
        const delaySeconds = Math.min(Math.exp(Math.log(6 * 3600) + 1.6 * gaussian(random)), 20 * 86_400);
        let labelTs = inferenceTs + Math.floor(delaySeconds * MICROS_PER_SECOND);
        // Clock skew on the labelling side: a label stamped before its prediction.
        if (dirty && random() < 0.002) labelTs = inferenceTs - 30 * MICROS_PER_SECOND;
        addLabel({ prediction_id: record.prediction_id, y_true: dirty && random() < 0.001 ? Number.NaN : yTrue, label_ts: labelTs });
        // A correction arrives later and supersedes the first label.
        if (dirty && random() < 0.02) addLabel({ prediction_id: record.prediction_id, y_true: Math.round((yTrue + gaussian(random)) * 100) / 100, label_ts: labelTs + 3600 * MICROS_PER_SECOND });
      }
      const hour = String(Math.floor((f * 24) / filesPerDay)).padStart(2, '0');
      await writeFile(predictions, `dt=${date}/hour=${hour}/predictions-${String(f).padStart(3, '0')}.avro`, predictionType, records, codec);
      summary.predictions += records.length;
      summary.predictionFiles++;
    }
  }
  for (const [date, list] of [...labelsByDate].sort(([a], [b]) => (a < b ? -1 : 1))) {
    list.sort((a, b) => a.label_ts - b.label_ts);
    await writeFile(labels, `dt=${date}/labels-000.avro`, labelType, list, codec);
    summary.labels += list.length;
    summary.labelFiles++;
  }
  return summary;
}
