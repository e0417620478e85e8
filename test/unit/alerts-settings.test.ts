import { describe, expect, it } from 'vitest';
import { checkConfiguredModels, resolveAlertConfig } from '../../src/alerts/settings.js';
import { ModelMetricsError } from '../../src/errors.js';
import { alertExitCode } from '../../src/alerts/report.js';
import { baselineGate } from '../../src/alerts/ordering.js';
import { defaultOf } from '../../src/config/options.js';

function usage(fn: () => unknown): ModelMetricsError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ModelMetricsError);
    expect((error as ModelMetricsError).code).toBe('E_USAGE');
    return error as ModelMetricsError;
  }
  throw new Error('expected a UsageError');
}

describe('alert settings (SPEC §8)', () => {
  it('defaults: 14 baseline days, 7 needed, 200 labels, sigma 3, pct off, every metric', () => {
    expect(resolveAlertConfig({})).toEqual({ baselineDays: 14, baselineMinDays: 7, minLabeled: 200, defaults: { sigma: 3, pct: null, metrics: ['mse', 'mae', 'coverage'] }, models: {}, failOnAlert: false });
  });

  it('states its defaults once: the option table (and so --help) shows the values the settings use', () => {
    // Against the SPEC §8 values, not against the settings (which read these same table entries).
    expect([defaultOf('baseline-days'), defaultOf('baseline-min-days'), defaultOf('alert-min-labeled')]).toEqual([14, 7, 200]);
    expect([defaultOf('alert-sigma'), defaultOf('alert-pct')]).toEqual([3, 'off']);
  });

  it('per-model rules over the defaults; flags set the default rules', () => {
    const config = resolveAlertConfig({
      alerts: { default: { sigma: 4, pct: 0.5 }, models: { 'delivery-eta': { pct: 0.2, metrics: ['mse'] }, basket: { sigma: 'off' } } },
      'alert-sigma': '2.5',
      'fail-on-alert': true,
    });
    expect(config.defaults).toEqual({ sigma: 2.5, pct: 0.5, metrics: ['mse', 'mae', 'coverage'] });
    expect(config.models['delivery-eta']).toEqual({ sigma: 2.5, pct: 0.2, metrics: ['mse'] });
    expect(config.models.basket).toEqual({ sigma: null, pct: 0.5, metrics: ['mse', 'mae', 'coverage'] });
    expect(config.failOnAlert).toBe(true);
  });

  it('the mapping also comes as JSON or YAML text (flag or variable)', () => {
    expect(resolveAlertConfig({ alerts: '{"models": {"m": {"sigma": 2}}}' }).models.m?.sigma).toBe(2);
    expect(resolveAlertConfig({ alerts: 'default: {pct: 0.1}' }).defaults.pct).toBe(0.1);
  });

  it('bad cases: each an exit-2 error naming the option or config path', () => {
    expect(usage(() => resolveAlertConfig({ alerts: { default: { sigma: -1 } } })).message).toMatch(/alerts\.default\.sigma: must not be negative, got -1/);
    expect(usage(() => resolveAlertConfig({ alerts: { models: { m: { sigma: -0.5 } } } })).message).toMatch(/alerts\.models\.m\.sigma: must not be negative/);
    expect(usage(() => resolveAlertConfig({ 'alert-sigma': '-3' })).context.option).toBe('--alert-sigma');
    expect(usage(() => resolveAlertConfig({ 'alert-sigma': 'three' })).message).toMatch(/--alert-sigma: expected a number or off, got "three"/);
    expect(usage(() => resolveAlertConfig({ 'alert-pct': '-0.1' })).context.option).toBe('--alert-pct');
    expect(usage(() => resolveAlertConfig({ alerts: { default: { zscore: 3 } } })).message).toMatch(/unknown rule "zscore"; the rules are sigma, pct, metrics/);
    expect(usage(() => resolveAlertConfig({ alerts: { defaults: {} } })).message).toMatch(/unknown key "defaults"/);
    expect(usage(() => resolveAlertConfig({ alerts: { models: { m: { metrics: ['rmse'] } } } })).message).toMatch(/alerts\.models\.m\.metrics: expected a non-empty list of mse, mae, coverage/);
    expect(usage(() => resolveAlertConfig({ alerts: { models: ['m'] } })).message).toMatch(/alerts\.models: expected a mapping/);
    expect(usage(() => resolveAlertConfig({ alerts: { models: { m: 3 } } })).message).toMatch(/alerts\.models\.m: expected a mapping of rules/);
    expect(usage(() => resolveAlertConfig({ alerts: '[1, 2' })).context.option).toBe('--alerts');
    expect(usage(() => resolveAlertConfig({ alerts: '- a' })).message).toMatch(/expected a mapping/);
    expect(usage(() => resolveAlertConfig({ 'baseline-days': 1 })).message).toMatch(/--baseline-days must be a whole number from 2 to 366, got 1/);
    expect(usage(() => resolveAlertConfig({ 'baseline-min-days': 0 })).context.option).toBe('--baseline-min-days');
    expect(usage(() => resolveAlertConfig({ 'baseline-days': 5 })).message).toMatch(/--baseline-min-days 7 exceeds --baseline-days 5/);
    expect(usage(() => resolveAlertConfig({ 'alert-min-labeled': 0 })).context.option).toBe('--alert-min-labeled');
  });

  it('a model in the rules but in neither the day nor its baseline is an error naming the known models', () => {
    const config = resolveAlertConfig({ alerts: { models: { 'delivery-etaa': { sigma: 2 } } } });
    const error = usage(() => checkConfiguredModels(config, new Set(['delivery-eta', 'basket-value'])));
    expect(error.message).toMatch(/alerts\.models names "delivery-etaa", not among the models of this day or its baseline \(basket-value, delivery-eta\)/);
    expect(() => checkConfiguredModels(config, new Set(['delivery-etaa']))).not.toThrow();
  });
});

describe('exit 4 (--fail-on-alert)', () => {
  const day = (fired: number) => ({ date: 'd', stage: 'final' as const, status: 'done' as const, result: { alerts: { fired } } as never });
  it('is 4 only when set, an alert fired and the command otherwise succeeded', () => {
    expect(alertExitCode(0, [day(0), day(2)], true)).toBe(4);
    expect(alertExitCode(0, [day(2)], false)).toBe(0);
    expect(alertExitCode(0, [day(0)], true)).toBe(0);
    expect(alertExitCode(1, [day(2)], true)).toBe(1);
    expect(alertExitCode(3, [day(2)], true)).toBe(3);
  });
});

describe('backfill baseline gate', () => {
  it('a final day waits for the earlier days of its baseline in the range, a preliminary for none', async () => {
    const dates = ['2026-03-01', '2026-03-02', '2026-03-03'];
    const gate = baselineGate(dates, 'final', 14);
    let ready = false;
    const waiting = gate.ready('2026-03-03').then(() => (ready = true));
    gate.finished('2026-03-02');
    await new Promise((r) => setTimeout(r, 5));
    expect(ready).toBe(false);
    gate.finished('2026-03-01');
    await waiting;
    expect(ready).toBe(true);
    await baselineGate(dates, 'preliminary', 14).ready('2026-03-03');
    // Days beyond the baseline are not waited for.
    const short = baselineGate(dates, 'final', 1);
    short.finished('2026-03-02');
    await short.ready('2026-03-03');
  });
});
