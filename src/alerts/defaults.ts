/**
 * The alert names, rule types and SPEC §8 defaults, without dependencies: the option table
 * (src/config/options.ts) states its defaults from here, so `--help` and `--version` do not load
 * the policy (and luxon through it).
 */
/** The metrics alerts watch, named as in records, logs and config (SPEC §8). */
export const ALERT_METRICS = ['mse', 'mae', 'coverage'] as const;
export type AlertMetric = (typeof ALERT_METRICS)[number];

/** The rules, named as in records, logs and config. */
export const ALERT_RULES = ['sigma', 'pct'] as const;
export type AlertRuleName = (typeof ALERT_RULES)[number];

/** The rules of one model: `sigma` k (value beyond mean ± k·sd), `pct` p (beyond mean·(1 ± p)); null is off. */
export interface AlertRules {
  sigma: number | null;
  pct: number | null;
  /** The metrics compared (default all three). */
  metrics: readonly AlertMetric[];
}

/** The validated alert settings of a run. */
export interface AlertSettings {
  /** Previous days whose finals form the baseline (default 14). */
  baselineDays: number;
  /** Counted baseline days a slice needs to be compared (default 7). */
  baselineMinDays: number;
  /** labeled_count a record needs to count, as a baseline day or as the day compared (default 200). */
  minLabeled: number;
  /** The rules of models without their own entry. */
  defaults: AlertRules;
  /** Per model name, its rules (every field given or taken from the defaults). */
  models: Readonly<Record<string, AlertRules>>;
}

/** The rules when nothing is configured: sigma k = 3, pct off, all three metrics. */
export const DEFAULT_RULES: AlertRules = Object.freeze({ sigma: 3, pct: null, metrics: ALERT_METRICS });

/** The settings when nothing is configured (SPEC §8 defaults). */
export const DEFAULT_ALERT_SETTINGS: AlertSettings = Object.freeze({ baselineDays: 14, baselineMinDays: 7, minLabeled: 200, defaults: DEFAULT_RULES, models: {} });
