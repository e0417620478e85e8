/**
 * The plan of a day's run before anything is read: the stage's readiness (SPEC §3), the inputs
 * listed (a missing predictions partition is not ready), and the parameters that, with the
 * inputs, make the run's "already done" fingerprint.
 */
import { enrichedType, labelType, metricsType, predictionType, schemaFingerprint } from '../avro/schemas.js';
import { alertParams } from '../alerts/step.js';
import type { JobConfig } from '../config/resolve.js';
import { inputPartition } from '../dataset/layout.js';
import { NotFoundError, NotReadyError, UsageError } from '../errors.js';
import { type ManifestInput, runFingerprint } from '../dataset/manifest.js';
import { type DayWindow, dayWindow, finalReadyAtMicros, formatMicros, labelPartitionDates } from '../join/policy.js';
import type { DayRequest, Stores } from './daily.js';
import type { JoinSettings } from '../join/day-join.js';
import { type DatasetInputs, listInputs } from './inputs.js';

/**
 * Revision of the output semantics, part of the "already done" fingerprint: bump it whenever the
 * same inputs and options would give different output bytes, so deployed code recomputes rather
 * than keep outputs made by older rules. 1: first release. 2: ModelMetrics v2 (SPEC §5.1).
 * 3: the losing labels of an invalid prediction count in duplicate_label_count (README, Contract notes).
 */
export const OUTPUT_REVISION = 3;

/** Checks the request against the stage's readiness rules (SPEC §3); returns the labels-through instant. */
export function labelsThroughFor(request: DayRequest, windowMicros: number): number {
  const day = dayWindow(request.date);
  if (request.stage === 'final') {
    const readyAt = finalReadyAtMicros(day, windowMicros);
    if (request.asOfMicros < readyAt) {
      throw new NotReadyError(
        `final metrics for ${request.date} are not ready: the label window closes at ${formatMicros(readyAt)} and --as-of is ${formatMicros(request.asOfMicros)}; run the preliminary stage, or retry after the window closes`,
        { option: '--as-of', date: request.date },
      );
    }
    return readyAt;
  }
  if (request.asOfMicros < day.startMicros) {
    throw new UsageError(`--as-of ${formatMicros(request.asOfMicros)} is before ${request.date} began; a preliminary run needs an as-of inside or after the day`, { option: '--as-of' });
  }
  return request.asOfMicros;
}

/** Lists the day's predictions and the label partitions up to `labelDates`; refuses a wrong root and a day not landed yet. */
export async function listDayInputs(stores: Stores, config: JobConfig, date: string, labelDates: readonly string[]): Promise<{ predictionInputs: DatasetInputs; labelInputs: DatasetInputs }> {
  const predictionInputs = await listInputs('predictions', stores.predictions, predictionType, [date], config.decodeLimits);
  if (predictionInputs.objects.length === 0 && !(await stores.predictions.hasAny(''))) {
    // A day without predictions is a real (empty) day; a dataset without any is a wrong --root.
    throw new NotFoundError(`no prediction objects at all under ${stores.predictions.uri}; check --root or --predictions`, { uri: stores.predictions.uri, option: '--predictions' });
  }
  if (predictionInputs.objects.length === 0 && !(await stores.predictions.hasAny(inputPartition(date)))) {
    // SPEC §3: a partition that does not exist is not landed yet (not ready); one that exists with no records is an empty day.
    throw new NotReadyError(`${date} is not ready: its predictions partition ${stores.predictions.uriOf(inputPartition(date))} does not exist (the producers may not have landed it yet); nothing written, retry once it exists`, { uri: stores.predictions.uriOf(inputPartition(date)), date, reason: 'no_predictions_partition' });
  }
  const labelInputs = await listInputs('labels', stores.labels, labelType, labelDates, config.decodeLimits);
  return { predictionInputs, labelInputs };
}

/** The output-shaping parameters of a run, part of its fingerprint and of its manifests. */
export function runParams(config: JobConfig, request: DayRequest, labelsThrough: number, jobVersion: string, withAlerts: boolean) {
  return {
    stage: request.stage,
    date: request.date,
    // A final result does not depend on when it runs, only on the window: its as-of is the window's close.
    as_of: formatMicros(labelsThrough),
    labels_through: formatMicros(labelsThrough),
    label_window: config.labelWindow.iso,
    slice_keys: config.sliceKeys ?? null,
    max_slice_values: config.maxSliceValues,
    windows: config.hourly ? 'P1D,PT1H' : 'P1D',
    label_ages_s: config.labelAgesSeconds,
    codec: config.codec,
    part_bytes: config.partBytes,
    on_corrupt: config.onCorrupt,
    // Under skip the limits decide which objects are left out, so they are part of what was computed.
    ...(config.onCorrupt === 'skip' ? { decode_limits: config.decodeLimits } : {}),
    job_version: jobVersion,
    output_revision: OUTPUT_REVISION,
    reader_schemas: [predictionType, labelType, enrichedType, metricsType].map(schemaFingerprint),
    // alerts (SPEC §8): the settings that shape the alerts file.
    ...(withAlerts && config.alerting !== undefined ? { alerts: alertParams(config.alerting) } : {}),
  };
}

/** What a run of a day decides before reading any record: its window, inputs, parameters and fingerprint. */
export interface DayPlan {
  day: DayWindow;
  labelsThrough: number;
  predictionInputs: DatasetInputs;
  labelInputs: DatasetInputs;
  params: ReturnType<typeof runParams>;
  /** Over params and every listed input: equal fingerprints mean an identical result (manifest.ts). */
  fingerprint: string;
}

/** Checks readiness, lists the day's inputs and fingerprints the run (SPEC §1, §3); the same for every mode of a run. */
export async function planDay(stores: Stores, config: JobConfig, request: DayRequest, jobVersion: string): Promise<DayPlan> {
  const day = dayWindow(request.date);
  const labelsThrough = labelsThroughFor(request, config.labelWindow.micros);
  const { predictionInputs, labelInputs } = await listDayInputs(stores, config, request.date, labelPartitionDates(day, labelsThrough));
  const params = runParams(config, request, labelsThrough, jobVersion, stores.alerts !== undefined);
  const listed: ManifestInput[] = [...predictionInputs.objects.map((o) => ({ dataset: 'predictions' as const, ...o })), ...labelInputs.objects.map((o) => ({ dataset: 'labels' as const, ...o }))];
  const fingerprint = runFingerprint(params, listed.map(({ dataset, key, size, etag }) => ({ dataset, key, size, etag })));
  return { day, labelsThrough, predictionInputs, labelInputs, params, fingerprint };
}

/** The settings of a day's join, the same for an unsharded run, a spilled one and every join shard. */
export function joinSettingsOf(config: JobConfig, request: DayRequest, plan: DayPlan): JoinSettings {
  return { stage: request.stage, day: plan.day, asOfMicros: request.asOfMicros, windowMicros: config.labelWindow.micros, sliceKeys: config.sliceKeys, labelAgesSeconds: config.labelAgesSeconds, hourly: config.hourly };
}

/** The output files' header metadata (SPEC §4): a final's as-of is its window's close, so as-of = labels-through. */
export function outputMetadata(config: JobConfig, request: DayRequest, plan: DayPlan): Record<string, string> {
  return { 'model_metrics.stage': request.stage, 'model_metrics.as_of': formatMicros(plan.labelsThrough), 'model_metrics.label_window': config.labelWindow.iso };
}

/**
 * A record-count estimate from object sizes, to presize hash tables and plan buckets: a compressed
 * event with a UUID id takes 30-40 bytes, so bytes / 32 errs on the generous side.
 */
export function estimateRecords(objects: readonly { size: number }[]): number {
  return Math.ceil(objects.reduce((n, o) => n + o.size, 0) / 32);
}
