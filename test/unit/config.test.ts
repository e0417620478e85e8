import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultDecodeLimits } from '../../src/avro/container-reader.js';
import { closestName, commandNames, decodeLimitFlags, optionsOf } from '../../src/config/options.js';
import { coerceAll, resolveJobConfig } from '../../src/config/resolve.js';
import { mergeSources, readConfigFile, readEnvOptions } from '../../src/config/sources.js';
import { dateRange } from '../../src/calendar.js';
import { ModelMetricsError } from '../../src/errors.js';

function expectUsage(fn: () => unknown, option: string, code = 'E_USAGE'): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ModelMetricsError);
    expect((error as ModelMetricsError).code).toBe(code);
    expect((error as ModelMetricsError).context.option).toBe(option);
    return;
  }
  throw new Error(`expected a ${code} error naming ${option}`);
}

const resolve = (raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => resolveJobConfig(coerceAll(raw, optionsOf('run')), env);

describe('resolveJobConfig', () => {
  it('derives the four datasets from --root and applies defaults', () => {
    const config = resolve({ root: 's3://bucket/ml' });
    expect(config.predictions).toBe('s3://bucket/ml/predictions');
    expect(config.labels).toBe('s3://bucket/ml/labels');
    expect(config.curated).toBe('s3://bucket/ml/curated');
    expect(config.metrics).toBe('s3://bucket/ml/metrics');
    expect(config.labelWindow).toEqual({ iso: 'P7D', micros: 7 * 86_400 * 1e6 });
    expect(config.maxSliceValues).toBe(100);
    expect(config.codec).toBe('deflate');
    expect(config.onCorrupt).toBe('fail');
    expect(config.sliceKeys).toBeUndefined();
  });

  it('lets one dataset be overridden', () => {
    const config = resolve({ root: '/data/ml', labels: 's3://other/labels' });
    expect(config.labels).toBe('s3://other/labels');
    expect(config.curated).toBe('/data/ml/curated');
  });

  it('takes the S3 endpoint from AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, and the flag beats both', () => {
    expect(resolve({ root: 's3://bkt/p' }, { AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_S3: 'http://s3:2' }).s3.endpoint).toBe('http://s3:2');
    expect(resolve({ root: 's3://bkt/p' }, { AWS_ENDPOINT_URL: 'http://a:1' }).s3.endpoint).toBe('http://a:1');
    expect(resolve({ root: 's3://bkt/p', 's3-endpoint': 'http://flag:3' }, { AWS_ENDPOINT_URL: 'http://a:1' }).s3.endpoint).toBe('http://flag:3');
  });

  it('rejects every bad option with E_USAGE naming it', () => {
    expectUsage(() => resolve({}), '--root');
    expectUsage(() => resolve({ root: 'ftp://x/y' }), '--root');
    expectUsage(() => resolve({ root: '/d', 'label-window': 'P1M' }), '--label-window');
    expectUsage(() => resolve({ root: '/d', 'label-window': 'soon' }), '--label-window');
    expectUsage(() => resolve({ root: '/d', codec: 'lz4' }), '--codec');
    expectUsage(() => resolve({ root: '/d', 'max-slice-values': '0' }), '--max-slice-values');
    expectUsage(() => resolve({ root: '/d', 'max-slice-values': 'many' }), '--max-slice-values');
    expectUsage(() => resolve({ root: '/d', 'on-corrupt': 'ignore' }), '--on-corrupt');
    expectUsage(() => resolve({ root: '/d', 's3-endpoint': 'minio:9000' }), '--s3-endpoint');
    expectUsage(() => resolve({ root: '/d', 'slice-keys': 'region,,device' }), '--slice-keys');
    expectUsage(() => resolve({ root: '/d', 'slice-keys': 'region,region' }), '--slice-keys');
    expectUsage(() => resolve({ root: '/d', 'part-size-mb': '-1' }), '--part-size-mb');
    expectUsage(() => resolve({ root: '/d', 'part-size-mb': '5000' }), '--part-size-mb');
    expectUsage(() => resolve({ root: '/d', 'read-ahead': '1000' }), '--read-ahead');
    expectUsage(() => resolve({ root: '/d', 'log-level': 'loud' }), '--log-level');
    expectUsage(() => resolve({ root: '/d', force: 'perhaps' }), '--force');
    expectUsage(() => resolve({ root: '/d', 's3-max-attempts': '0' }), '--s3-max-attempts');
    expectUsage(() => resolve({ root: '/d', 'lease-ttl': '9' }), '--lease-ttl');
    expectUsage(() => resolve({ root: '/d', 'lease-ttl': '3601' }), '--lease-ttl');
    expectUsage(() => resolve({ root: '/d', 's3-max-attempts': '101' }), '--s3-max-attempts');
    expectUsage(() => resolve({ root: '/d', 's3-idle-timeout-seconds': 'soon' }), '--s3-idle-timeout-seconds');
    expectUsage(() => resolve({ root: '/d', 's3-idle-timeout-seconds': '0' }), '--s3-idle-timeout-seconds');
    expectUsage(() => resolve({ root: '/d', 's3-conditional-writes': 'yes' }), '--s3-conditional-writes');
    for (const { name } of decodeLimitFlags) {
      expectUsage(() => resolve({ root: '/d', [name]: '0' }), `--${name}`);
      expectUsage(() => resolve({ root: '/d', [name]: '1.5' }), `--${name}`);
    }
  });

  it('turns the retry and decoding-limit flags into settings, in bytes where the flag is in MiB', () => {
    const defaults = resolve({ root: '/d' });
    expect(defaults.s3.maxAttempts).toBe(5);
    expect(defaults.s3.idleTimeoutMs).toBe(60_000);
    expect(defaults.decodeLimits).toEqual(defaultDecodeLimits);
    expect(defaults.leaseTtlMs).toBe(60_000);
    expect(resolve({ root: '/d' }, { AWS_MAX_ATTEMPTS: '7' }).s3.maxAttempts).toBe(7);
    expect(resolve({ root: '/d', 's3-max-attempts': '2' }, { AWS_MAX_ATTEMPTS: '7' }).s3.maxAttempts).toBe(2);
    expect(resolve({ root: '/d', 'lease-ttl': '10' }).leaseTtlMs).toBe(10_000);
    const set = resolve({ root: '/d', 's3-max-attempts': '2', 's3-idle-timeout-seconds': '3', 'avro-max-block-mb': '8', 'avro-max-block-records': '1000' });
    expect(set.s3).toMatchObject({ maxAttempts: 2, idleTimeoutMs: 3000 });
    expect(set.decodeLimits.maxBlockBytes).toBe(8 * 1024 * 1024);
    expect(set.decodeLimits.maxBlockRecords).toBe(1000);
    expect(set.decodeLimits.maxHeaderBytes).toBe(defaultDecodeLimits.maxHeaderBytes);
  });

  it('--s3-conditional-writes: auto leaves the store its default (AWS on, custom endpoint off), on and off declare it', () => {
    expect(resolve({ root: 's3://bkt/p' }).s3.conditionalWrites).toBeUndefined();
    expect(resolve({ root: 's3://bkt/p', 's3-conditional-writes': 'on', 's3-endpoint': 'http://minio:9000' }).s3.conditionalWrites).toBe(true);
    expect(resolve({ root: 's3://bkt/p', 's3-conditional-writes': 'off' }).s3.conditionalWrites).toBe(false);
  });

  it('refuses outputs that overlap inputs', () => {
    expectUsage(() => resolve({ root: '/d', curated: '/d/predictions/curated' }), '--curated');
    expectUsage(() => resolve({ root: 's3://bkt/p', metrics: 's3://bkt/p/labels' }), '--metrics');
    expectUsage(() => resolve({ root: 's3://bkt/p', metrics: 's3://bkt/p' }), '--metrics');
  });
});

describe('option sources', () => {
  it('flags beat environment beat file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-config-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'root: /from-file\nlabel-window: P3D\nmax-slice-values: 7\ncodec: "null"\n');
    const fromFile = readConfigFile(file, 'run');
    const fromEnv = readEnvOptions({ MODEL_METRICS_LABEL_WINDOW: 'P5D', MODEL_METRICS_MAX_SLICE_VALUES: '9' }, 'run');
    const merged = mergeSources(fromFile, fromEnv, { values: { 'max-slice-values': '11' }, sources: { 'max-slice-values': '--max-slice-values' } });
    const config = resolveJobConfig(coerceAll(merged.values, optionsOf('run'), merged.sources), {});
    expect(config.predictions).toBe('/from-file/predictions');
    expect(config.labelWindow.iso).toBe('P5D');
    expect(config.maxSliceValues).toBe(11);
    expect(config.codec).toBe('null');
    expect(merged.sources).toMatchObject({ root: 'config.yaml line 1 ("root")', 'label-window': 'MODEL_METRICS_LABEL_WINDOW', 'max-slice-values': '--max-slice-values' });
  });

  it('reads JSON config files too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-config-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ root: 's3://bkt/p', 's3-force-path-style': true, 'slice-keys': ['region'] }));
    const config = resolveJobConfig(coerceAll(readConfigFile(file, 'run').values, optionsOf('run')), {});
    expect(config.s3.forcePathStyle).toBe(true);
    expect(config.sliceKeys).toEqual(['region']);
  });

  it('rejects a missing file, bad syntax, a non-mapping and unknown keys with E_CONFIG', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-config-'));
    expectUsage(() => readConfigFile(join(dir, 'absent.yaml'), 'run'), '--config', 'E_CONFIG');
    writeFileSync(join(dir, 'bad.yaml'), 'root: [unclosed\n');
    expectUsage(() => readConfigFile(join(dir, 'bad.yaml'), 'run'), '--config', 'E_CONFIG');
    writeFileSync(join(dir, 'list.yaml'), '- a\n- b\n');
    expectUsage(() => readConfigFile(join(dir, 'list.yaml'), 'run'), '--config', 'E_CONFIG');
    writeFileSync(join(dir, 'unknown.yaml'), 'roots: /x\n');
    expect(() => readConfigFile(join(dir, 'unknown.yaml'), 'run')).toThrow(/unknown option "roots"; did you mean "root"\?/);
  });

  it('shares top-level keys between commands and holds each command to its own section', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-config-'));
    const file = join(dir, 'shared.yaml');
    writeFileSync(file, 'root: /r\ncodec: snappy\nreport:\n  format: md\nrun:\n  codec: "null"\n');
    expect(readConfigFile(file, 'report').values).toEqual({ root: '/r', format: 'md' });
    expect(readConfigFile(file, 'run').values).toEqual({ root: '/r', codec: 'null' });
    expect(readConfigFile(file, 'backfill').values).toEqual({ root: '/r', codec: 'snappy' });
    writeFileSync(file, 'root: /r\nreport:\n  codec: snappy\n');
    // Wrong in a section is wrong whichever command reads the file.
    expect(() => readConfigFile(file, 'run')).toThrow(/line 3\): section "report" sets "codec", which report does not use; it is an option of run, backfill, scheduled/);
  });

  it('refuses the variable of another command\'s option and warns about unknown names with a did-you-mean', () => {
    expect(() => readEnvOptions({ MODEL_METRICS_CODEC: 'snappy' }, 'report')).toThrow(/MODEL_METRICS_CODEC is set, but report does not use --codec/);
    const read = readEnvOptions({ MODEL_METRICS_LABLE_WINDOW: 'P3D', MODEL_METRICS_CONFIG: '/x', MODEL_METRICS_REGISTRY_USER: 'u:p', OTHER: '1' }, 'run');
    expect(read.values).toEqual({});
    expect(read.warnings).toEqual(['environment variable MODEL_METRICS_LABLE_WINDOW is not an option of any command and is ignored; did you mean MODEL_METRICS_LABEL_WINDOW?']);
  });

  it('gives every command each option name once, and suggests only plausible names', () => {
    for (const command of commandNames) {
      const names = optionsOf(command).map((spec) => spec.name);
      expect(new Set(names).size, command).toBe(names.length);
    }
    expect(closestName('codex', ['codec', 'root'])).toBe('codec');
    expect(closestName('zzzzzz', ['codec', 'root'])).toBeUndefined();
  });
});

describe('dateRange', () => {
  it('lists every day inclusive, across a month end', () => {
    expect(dateRange('2026-02-27', '2026-03-02')).toEqual(['2026-02-27', '2026-02-28', '2026-03-01', '2026-03-02']);
    expect(dateRange('2026-01-01', '2026-01-01')).toEqual(['2026-01-01']);
  });
  it('rejects reversed, invalid and huge ranges naming the option', () => {
    expectUsage(() => dateRange('2026-03-02', '2026-03-01'), '--from');
    expectUsage(() => dateRange('2025-02-30', '2025-03-01'), '--from');
    expectUsage(() => dateRange('2025-01-01', '2025-13-01'), '--to');
    expectUsage(() => dateRange('2000-01-01', '2062-01-01'), '--to');
  });
});
