/**
 * The alerts output of a day's run (SPEC §8): reads the baseline (the same stage-final partitions of
 * the previous `--baseline-days` days from the metrics dataset), evaluates the policy on the day's
 * metrics records, stages `alerts/stage=S/dt=D/alerts.avro` (header-only when none fired), and
 * takes part in the run's commit exactly like curated and metrics: unpublished first, data moved
 * into place under the lease, `_SUCCESS` written last (after metrics/_SUCCESS, so committed alerts
 * imply committed metrics). The daily pipeline only calls the methods below at its commit steps.
 */
import { alertType, metricsType } from '../avro/schemas.js';
import { addDays } from '../calendar.js';
import { AvroFilesWriter } from '../dataset/avro-writer.js';
import { ALERTS_FILE, METRICS_FILE, SUCCESS_FILE, outputPartition } from '../dataset/layout.js';
import { type Manifest, type ManifestOutput, parseManifest, serializeManifest } from '../dataset/manifest.js';
import { dayWindow } from '../join/policy.js';
import type { Stage } from '../join/records.js';
import type { ModelMetricsRecord } from '../join/slices.js';
import type { Logger } from '../observability/log.js';
import { readInOrder } from '../pipeline/ordered-reader.js';
import type { ObjectStore } from '../storage/types.js';
import { type AlertEvaluation, type AlertInputRecord, type AlertRecord, type AlertRun, type BaselineDay, type SkipReason, alertInputOf, evaluateAlerts, isDayLabelAgeRecord, usableInBaseline } from './policy.js';
import { type AlertConfig, checkConfiguredModels } from './settings.js';

/** The alerts part of a day's summary (stdout, --json, --summary-file, Pushgateway). */
export interface DayAlerts {
  /** URI of the partition's `_SUCCESS`. */
  manifest: string;
  fired: number;
  compared: number;
  skipped: Record<SkipReason, number>;
  baseline_days_found: number;
  /** Preliminary runs: baseline days found whose finals hold no label-age record (metrics v1, or written before label ages), counted for no slice. */
  baseline_days_without_label_ages: string[];
  alerts: AlertRecord[];
}

/** One baseline day's committed final metrics: its date and manifest fingerprint (the baseline's identity). */
interface BaselineSource {
  date: string;
  fingerprint: string;
  key: string;
}

/** The settings that shape the alerts file, for the run's fingerprint (--fail-on-alert does not). */
export function alertParams(config: AlertConfig): Record<string, unknown> {
  const { failOnAlert: _ignored, ...settings } = config;
  return settings;
}

/** What the step needs from the run. */
export interface AlertsStepOptions {
  alerts: ObjectStore;
  metrics: ObjectStore;
  config: AlertConfig;
  stage: Stage;
  date: string;
  asOfMicros: number;
  codec: string;
  metadata: Record<string, string>;
  stagingPrefix: string;
  logger: Logger;
  /** Resolves once the earlier days the baseline needs are committed (backfill); absent: already are. */
  baselineReady?: ((date: string) => Promise<void>) | undefined;
}

/** The alerts output of one run; one instance per run. */
export class AlertsStep {
  private readonly partition: string;
  private readonly successKey: string;
  private readonly fileKey: string;
  private readonly writer: AvroFilesWriter;
  private evaluation: AlertEvaluation | undefined;
  private baseline: BaselineSource[] = [];
  private outputs: ManifestOutput[] = [];
  private moved: string[] = [];

  constructor(private readonly options: AlertsStepOptions) {
    this.partition = outputPartition(options.stage, options.date);
    this.successKey = `${this.partition}${SUCCESS_FILE}`;
    this.fileKey = `${this.partition}${ALERTS_FILE}`;
    this.writer = new AvroFilesWriter(options.alerts, { type: alertType, codec: options.codec, keyOf: () => this.fileKey, metadata: options.metadata, maxPartBytes: Number.POSITIVE_INFINITY, stagingPrefix: options.stagingPrefix });
  }

  /** The baseline days, newest first: D−1 … D−baselineDays, each with a committed final metrics partition. */
  private async findBaseline(): Promise<BaselineSource[]> {
    await this.options.baselineReady?.(this.options.date);
    const found: BaselineSource[] = [];
    for (let back = 1; back <= this.options.config.baselineDays; back++) {
      const date = addDays(this.options.date, -back);
      const partition = outputPartition('final', date);
      const bytes = await this.options.metrics.readSmall(`${partition}${SUCCESS_FILE}`);
      const manifest = bytes === undefined ? undefined : parseManifest(bytes);
      const file = manifest?.outputs.find((o) => o.key === `${partition}${METRICS_FILE}`);
      if (manifest !== undefined && file !== undefined) found.push({ date, fingerprint: manifest.fingerprint, key: file.key });
    }
    return found;
  }

  /**
   * The committed alerts of this run's fingerprint, when the baseline they were computed from is
   * still the committed one and the file is intact; undefined means recompute.
   */
  async committed(fingerprint: string): Promise<DayAlerts | undefined> {
    const bytes = await this.options.alerts.readSmall(this.successKey);
    const manifest = bytes === undefined ? undefined : (parseManifest(bytes) as (Manifest & { baseline?: BaselineSource[]; alerts?: Omit<DayAlerts, 'manifest' | 'alerts' | 'baseline_days_without_label_ages'> & Partial<Pick<DayAlerts, 'baseline_days_without_label_ages'>> }) | undefined);
    if (manifest?.fingerprint !== fingerprint || manifest.baseline === undefined || manifest.alerts === undefined) return undefined;
    const baseline = await this.findBaseline();
    if (JSON.stringify(baseline) !== JSON.stringify(manifest.baseline)) return undefined;
    const file = manifest.outputs[0];
    const info = file === undefined ? undefined : await this.options.alerts.head(file.key);
    if (file === undefined || info?.size !== file.size) return undefined;
    const alerts: AlertRecord[] = [];
    for await (const block of readInOrder<AlertRecord>(this.options.alerts, [info], alertType, 1)) alerts.push(...block.records);
    // Manifests committed before the field existed do not carry it.
    const summary = { ...manifest.alerts, baseline_days_without_label_ages: manifest.alerts.baseline_days_without_label_ages ?? [], manifest: this.options.alerts.uriOf(this.successKey), alerts };
    logAlerts(this.options.logger, summary);
    return summary;
  }

  /** Reads the baseline, evaluates the day's records and stages the alerts file. */
  async stage(records: readonly ModelMetricsRecord[]): Promise<void> {
    this.baseline = await this.findBaseline();
    const window = dayWindow(this.options.date);
    const run: AlertRun = { stage: this.options.stage, window, labelAgeS: Math.floor((this.options.asOfMicros - window.endMicros) / 1_000_000) };
    const days: BaselineDay[] = [];
    const models = new Set(records.map((r) => r.model_name));
    for (const source of this.baseline) {
      const info = await this.options.metrics.head(source.key);
      if (info === undefined) continue;
      // v1 files resolve with label_age_s null (no label-age records); only usable records are kept, as their alert fields.
      const day: AlertInputRecord[] = [];
      let holdsLabelAges = false;
      const baselineWindow = dayWindow(source.date);
      for await (const block of readInOrder<AlertInputRecord>(this.options.metrics, [info], metricsType, 1)) {
        for (const r of block.records) {
          models.add(r.model_name);
          holdsLabelAges ||= isDayLabelAgeRecord(r, baselineWindow);
          if (usableInBaseline(r, baselineWindow, run)) day.push(alertInputOf(r));
        }
      }
      days.push({ date: source.date, records: day, holdsLabelAges });
    }
    checkConfiguredModels(this.options.config, models);
    this.evaluation = evaluateAlerts(records, days, run, this.options.config);
    for (const alert of this.evaluation.alerts) await this.writer.append(alert);
    this.outputs = await this.writer.finish();
  }

  /** Commit step 1: the alerts partition stops existing (before metrics/_SUCCESS goes). */
  async unpublish(): Promise<void> {
    await this.options.alerts.delete([this.successKey]);
  }

  /** Commit step 2: the partition's old data files go; returns how many. */
  async removeOld(): Promise<number> {
    const data = (await this.options.alerts.list(this.partition)).map((o) => o.key).filter((key) => !key.endsWith(SUCCESS_FILE));
    if (data.length > 0) await this.options.alerts.delete(data);
    return data.length;
  }

  /** Commit step 3: the staged file moves into place; `ensureHeld` is checked before the move. */
  async promote(ensureHeld: () => Promise<void>): Promise<void> {
    for (const output of this.outputs) {
      await ensureHeld();
      await this.options.alerts.move(this.writer.stagedKey(output.key), output.key);
      this.moved.push(output.key);
    }
  }

  /** The day's alerts for the summary. */
  summary(): DayAlerts {
    const evaluation = this.evaluation!;
    return {
      manifest: this.options.alerts.uriOf(this.successKey),
      fired: evaluation.alerts.length,
      compared: evaluation.compared,
      skipped: evaluation.skipped,
      baseline_days_found: this.baseline.length,
      baseline_days_without_label_ages: evaluation.baselineDaysWithoutLabelAges,
      alerts: evaluation.alerts,
    };
  }

  /** Commit step 4, after metrics/_SUCCESS: the alerts manifest (the run's, plus the baseline it read), then one `event: alert` line per alert. */
  async publish(manifest: Manifest): Promise<DayAlerts> {
    const summary = this.summary();
    const { manifest: _uri, alerts: _list, ...figures } = summary;
    const document = { ...manifest, dataset: 'alerts' as const, outputs: this.outputs, baseline: this.baseline, alerts: figures };
    await this.options.alerts.write(this.successKey, serializeManifest(document), 'application/json');
    logAlerts(this.options.logger, summary);
    return summary;
  }

  /** After a failure: the commit point goes (when the run still owns the partition), and every file this run moved or started. */
  async abort(error: unknown, owner: boolean, unpublished: boolean): Promise<void> {
    await this.writer.abort(error);
    if (!owner) return;
    if (unpublished) await this.options.alerts.delete([this.successKey]).catch(() => undefined);
    await this.options.alerts.delete(this.moved);
  }
}

/** One `event: alert` warn line per alert, and one line with the skip counts. */
export function logAlerts(logger: Logger, summary: DayAlerts): void {
  for (const alert of summary.alerts) {
    const { message, ...fields } = alert;
    logger.warn({ event: 'alert', ...fields }, message);
  }
  logger.info({ event: 'alerts_evaluated', fired: summary.fired, compared: summary.compared, skipped: summary.skipped, baseline_days_found: summary.baseline_days_found, baseline_days_without_label_ages: summary.baseline_days_without_label_ages }, `${summary.fired} alert(s); ${summary.compared} slice(s) compared, ${Object.values(summary.skipped).reduce((a, b) => a + b, 0)} skipped`);
}
