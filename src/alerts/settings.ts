/**
 * Alert settings (SPEC §8) from raw options, validated once at the edge: `--baseline-days`,
 * `--baseline-min-days`, `--alert-min-labeled`, `--alert-sigma`, `--alert-pct`, `--fail-on-alert`
 * and the per-model rules of `--config` (`alerts: {default: …, models: {NAME: …}}`). Every mistake
 * is a UsageError (exit 2) naming the option or the config path and the way out.
 */
import { parse as parseYaml } from 'yaml';
import { defaultOf } from '../config/options.js';
import type { RawOptions } from '../config/resolve.js';
import { UsageError } from '../errors.js';
import { ALERT_METRICS, type AlertMetric, type AlertRules, type AlertSettings, DEFAULT_RULES } from './defaults.js';

/** The alert settings of a run and whether an alert fails the command (exit 4). */
export interface AlertConfig extends AlertSettings {
  failOnAlert: boolean;
}

const RULE_KEYS = ['sigma', 'pct', 'metrics'] as const;

function wholeNumber(raw: RawOptions, name: string, fallback: number, min: number, max: number): number {
  const value = raw[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`, { option: `--${name}` });
  }
  return value;
}

/** A rule parameter: a number ≥ 0, or off (null, "off", false). */
function ruleParameter(value: unknown, where: string, option: string): number | null {
  if (value === null || value === false || value === 'off') return null;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
  if (!Number.isFinite(n)) throw new UsageError(`${where}: expected a number or off, got ${JSON.stringify(value)}`, { option });
  if (n < 0) throw new UsageError(`${where}: must not be negative, got ${n}; a smaller value alerts sooner, 0 alerts on any change beyond the baseline`, { option });
  return n;
}

/** One rules mapping of the config (`default` or a model's), over `base`. */
function parseRules(value: unknown, where: string, base: AlertRules): AlertRules {
  const option = '--config';
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(`${where}: expected a mapping of rules (sigma, pct, metrics), got ${JSON.stringify(value)}`, { option, field: where });
  }
  const rules: { sigma: number | null; pct: number | null; metrics: readonly AlertMetric[] } = { ...base };
  for (const [key, v] of Object.entries(value)) {
    if (key === 'sigma' || key === 'pct') rules[key] = ruleParameter(v, `${where}.${key}`, option);
    else if (key === 'metrics') {
      const list = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',').map((s) => s.trim()) : undefined;
      const unknown = list?.filter((m) => !(ALERT_METRICS as readonly unknown[]).includes(m));
      if (list === undefined || list.length === 0 || unknown!.length > 0) {
        throw new UsageError(`${where}.metrics: expected a non-empty list of ${ALERT_METRICS.join(', ')}, got ${JSON.stringify(v)}`, { option, field: `${where}.metrics` });
      }
      rules.metrics = ALERT_METRICS.filter((m) => list.includes(m));
    } else {
      throw new UsageError(`${where}: unknown rule "${key}"; the rules are ${RULE_KEYS.join(', ')} (e.g. {sigma: 3, pct: 0.25})`, { option, field: `${where}.${key}` });
    }
  }
  return rules;
}

/** The `alerts` mapping: from a config file as a mapping, or from a flag or variable as JSON/YAML text. */
function alertsMapping(value: unknown): Record<string, unknown> {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = parseYaml(value);
    } catch (error) {
      throw new UsageError(`--alerts: not valid JSON or YAML: ${(error as Error).message}`, { option: '--alerts' }, { cause: error });
    }
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`--alerts (or "alerts" in --config): expected a mapping {default: {…}, models: {NAME: {…}}}, got ${JSON.stringify(parsed)}`, { option: '--alerts' });
  }
  for (const key of Object.keys(parsed)) {
    if (key !== 'default' && key !== 'models') throw new UsageError(`alerts: unknown key "${key}"; expected default and models`, { option: '--alerts', field: `alerts.${key}` });
  }
  return parsed as Record<string, unknown>;
}

/** Validates the alert options of a computing command. */
export function resolveAlertConfig(raw: RawOptions): AlertConfig {
  const baselineDays = wholeNumber(raw, 'baseline-days', defaultOf<number>('baseline-days'), 2, 366);
  const baselineMinDays = wholeNumber(raw, 'baseline-min-days', defaultOf<number>('baseline-min-days'), 2, 366);
  if (baselineMinDays > baselineDays) {
    throw new UsageError(`--baseline-min-days ${baselineMinDays} exceeds --baseline-days ${baselineDays}: no slice could ever be compared; lower it or widen the baseline`, { option: '--baseline-min-days' });
  }
  const minLabeled = wholeNumber(raw, 'alert-min-labeled', defaultOf<number>('alert-min-labeled'), 1, Number.MAX_SAFE_INTEGER);
  const mapping = raw.alerts === undefined ? {} : alertsMapping(raw.alerts);
  let defaults = mapping.default === undefined ? DEFAULT_RULES : parseRules(mapping.default, 'alerts.default', DEFAULT_RULES);
  // Flags and variables beat the file (SPEC §6): they set the default rules, not a model's own.
  if (raw['alert-sigma'] !== undefined) defaults = { ...defaults, sigma: ruleParameter(raw['alert-sigma'], '--alert-sigma', '--alert-sigma') };
  if (raw['alert-pct'] !== undefined) defaults = { ...defaults, pct: ruleParameter(raw['alert-pct'], '--alert-pct', '--alert-pct') };
  const models: Record<string, AlertRules> = {};
  if (mapping.models !== undefined) {
    if (mapping.models === null || typeof mapping.models !== 'object' || Array.isArray(mapping.models)) {
      throw new UsageError(`alerts.models: expected a mapping of model names to rules, got ${JSON.stringify(mapping.models)}`, { option: '--alerts', field: 'alerts.models' });
    }
    for (const [name, rules] of Object.entries(mapping.models)) models[name] = parseRules(rules, `alerts.models.${name}`, defaults);
  }
  return { baselineDays, baselineMinDays, minLabeled, defaults, models, failOnAlert: raw['fail-on-alert'] === true };
}

/**
 * A model named in the rules that is in neither the day's records nor its baseline is a typo or a
 * retired model: an error before anything is committed, naming the models that do exist.
 */
export function checkConfiguredModels(settings: AlertSettings, seen: ReadonlySet<string>): void {
  const unknown = Object.keys(settings.models).filter((name) => !seen.has(name));
  if (unknown.length === 0) return;
  throw new UsageError(
    `alerts.models names ${unknown.map((n) => `"${n}"`).join(', ')}, not among the models of this day or its baseline (${[...seen].sort().join(', ') || 'none'}); fix the name or remove the entry from --config`,
    { option: '--config', field: `alerts.models.${unknown[0]}` },
  );
}
