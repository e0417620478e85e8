/**
 * The real CLI (`node bin/model-metrics.js`) as a child process against s3rver and a local folder:
 * exit codes, `--json` summaries, JSON log lines on stderr, and the outputs read back with the
 * project's own decoder. This file covers bad usage, the join semantics of SPEC §3–§5 on a small
 * hand-made day, not-ready finals, idempotent reruns, and corrupt or incompatible inputs.
 */
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAvroType } from '../../src/avro/avro-types.js';
import { enrichedType, labelType, metricsType, predictionType } from '../../src/avro/schemas.js';
import { generateSample } from '../../src/demo/generate.js';
import type { EnrichedRecord, LabelRecord, PredictionRecord } from '../../src/join/records.js';
import type { ModelMetricsRecord } from '../../src/join/slices.js';
import type { DayResult } from '../../src/pipeline/daily.js';
import { S3ObjectStore } from '../../src/storage/s3.js';
import type { ObjectStore } from '../../src/storage/types.js';
import {
  type CliResult,
  type DatasetRoot,
  RecordingProxy,
  avroFile,
  cliEnv,
  describeRun,
  localRoot,
  micros,
  putAll,
  readBytes,
  readHeader,
  readManifest,
  readRecords,
  runCli,
  s3Root,
  tempDirectory,
  testClient,
} from '../helpers/cli.js';
import { createTestBucket } from '../helpers/s3rver.js';

const DAY = '2026-03-02';
const PARTITION = (stage: 'preliminary' | 'final'): string => `stage=${stage}/dt=${DAY}/`;
const SUCCESS = (stage: 'preliminary' | 'final'): string => `${PARTITION(stage)}_SUCCESS`;
/** The morning after DAY, as the CronJob would run the preliminary stage. */
const PRELIMINARY_AS_OF = '2026-03-03T06:00:00Z';
/** Long after DAY + P7D. */
const FINAL_AS_OF = '2026-03-20T00:00:00Z';

let endpoint: string;
let bucket: string;
let client: S3Client;
let proxy: RecordingProxy;

beforeAll(async () => {
  endpoint = inject('s3Endpoint');
  bucket = await createTestBucket(endpoint);
  client = testClient(endpoint);
  proxy = await RecordingProxy.start(endpoint);
});

afterAll(async () => {
  await proxy?.close();
  client?.destroy();
});

/** A fresh root under the test bucket; the CLI goes through the recording proxy. */
function freshS3Root(name: string): DatasetRoot {
  return s3Root(client, bucket, `${name}-${Math.random().toString(36).slice(2, 8)}`, proxy.endpoint);
}

/** Runs the CLI with the S3 test environment (its default endpoint is the proxy too). */
function cli(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, cliEnv(proxy.endpoint, extraEnv));
}

function expectExit(result: CliResult, code: number): void {
  expect(result.code, describeRun(result)).toBe(code);
  // SPEC §6: logs are JSON lines on stderr, whatever happened.
  expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
}

/** Every key under a dataset (any partition, temp files and all). */
async function allKeys(store: ObjectStore): Promise<string[]> {
  return (await store.list('')).map((o) => o.key);
}

function prediction(id: string, fields: Partial<PredictionRecord> & { y_pred: number; inference_ts: number }): PredictionRecord {
  return { prediction_id: id, model_name: 'eta', model_version: 'v1', feature_set_version: 'fs-1', y_true: null, residual: null, segment_keys: {}, ...fields };
}

function label(id: string, yTrue: number, at: string): LabelRecord {
  return { prediction_id: id, y_true: yTrue, label_ts: micros(at) };
}

/** An older producer's schema: another record name, float y_pred, plain long timestamp, an extra field, no y_true/residual/segment_keys. */
const legacyPredictionType = parseAvroType({
  type: 'record',
  name: 'LegacyPrediction',
  namespace: 'old.producer',
  fields: [
    { name: 'prediction_id', type: 'string' },
    { name: 'model_name', type: 'string' },
    { name: 'model_version', type: 'string' },
    { name: 'featureset_version', type: 'string' },
    { name: 'y_pred', type: 'float' },
    { name: 'inference_ts', type: 'long' },
    { name: 'debug', type: 'string' },
  ],
});

/** A producer that writes y_pred as a string: incompatible, never skippable (SPEC §2, §6). */
const stringPredictionType = parseAvroType({
  type: 'record',
  name: 'PredictionEvent',
  namespace: 'ml.monitoring',
  fields: [
    { name: 'prediction_id', type: 'string' },
    { name: 'model_name', type: 'string' },
    { name: 'model_version', type: 'string' },
    { name: 'featureset_version', type: 'string' },
    { name: 'y_pred', type: 'string' },
    { name: 'inference_ts', type: 'long' },
  ],
});

/**
 * The hand-made day of SPEC §3 cases, every one named:
 * p1 plain label (and a correction past its final cutoff); p2 three labels, two tied on label_ts;
 * p3 inline y_true only; p4 inline y_true beaten by a dataset label; p5 NaN y_pred with a label;
 * p6 a label two days later (final only); p7 a label stamped before the prediction; p9 misplaced
 * (inference_ts the evening before); p10 a NaN label only; p11 from an older producer, y_true 0;
 * p1 again in a later object (dropped); q1 another model version.
 */
function handMadeDay(): { predictions: Array<[string, Buffer]>; labels: Array<[string, Buffer]> } {
  const at = (time: string): number => micros(`${DAY}T${time}Z`);
  const fileA = [
    prediction('p1', { y_pred: 10, inference_ts: at('01:00:00'), segment_keys: { region: 'eu', device: 'ios' } }),
    prediction('p2', { y_pred: 20, inference_ts: at('02:00:00'), segment_keys: { region: 'eu' } }),
    prediction('p3', { y_pred: 30, y_true: 33, residual: 3, inference_ts: at('03:00:00'), segment_keys: { region: 'us' } }),
    prediction('p4', { y_pred: 40, y_true: 41, residual: 1, inference_ts: at('03:30:00'), segment_keys: { region: 'us' } }),
    prediction('p5', { y_pred: Number.NaN, inference_ts: at('04:00:00'), segment_keys: { region: 'eu' } }),
    prediction('p6', { y_pred: 60, inference_ts: at('05:00:00'), segment_keys: { region: 'eu' } }),
    prediction('p7', { y_pred: 70, inference_ts: at('06:00:00') }),
    prediction('p9', { y_pred: 90, inference_ts: micros('2026-03-01T23:00:00Z'), segment_keys: { region: 'eu' } }),
    prediction('p10', { y_pred: 100, inference_ts: at('07:00:00'), segment_keys: { region: 'us' } }),
  ];
  const fileB = [{ prediction_id: 'p11', model_name: 'eta', model_version: 'v1', featureset_version: 'fs-legacy', y_pred: 5, inference_ts: at('05:30:00'), debug: 'x' }];
  const fileC = [
    prediction('p1', { y_pred: 999, inference_ts: at('09:00:00'), segment_keys: { region: 'ap' } }),
    prediction('q1', { model_version: 'v2', y_pred: 8, inference_ts: at('09:30:00'), segment_keys: { region: 'eu' } }),
  ];
  const labelsA = [
    label('p1', 12, `${DAY}T02:00:00Z`),
    label('p2', 18, `${DAY}T03:00:00Z`),
    label('p2', 17, `${DAY}T05:00:00Z`),
    label('p4', 44, `${DAY}T04:00:00Z`),
    label('p5', 55, `${DAY}T05:00:00Z`),
    label('p7', 77, `${DAY}T05:59:00Z`),
    label('p10', Number.NaN, `${DAY}T08:00:00Z`),
    label('p11', 0, `${DAY}T06:00:00Z`),
    label('q1', 10, `${DAY}T10:00:00Z`),
  ];
  return {
    predictions: [
      [`dt=${DAY}/hour=00/a.avro`, avroFile(predictionType, fileA)],
      [`dt=${DAY}/hour=00/b.avro`, avroFile(legacyPredictionType, fileB, { codec: 'null' })],
      [`dt=${DAY}/hour=01/c.avro`, avroFile(predictionType, fileC)],
      // Not inputs (SPEC §1 and the hidden-file convention): never read, never listed in the manifest.
      [`dt=${DAY}/hour=01/notes.txt`, Buffer.from('not avro')],
      [`dt=${DAY}/hour=01/.in-flight.avro`, Buffer.from('garbage')],
      [`dt=${DAY}/hour=01/_SUCCESS`, Buffer.from('{}')],
    ],
    labels: [
      [`dt=${DAY}/l-a.avro`, avroFile(labelType, labelsA)],
      // Ties p2's 17 on label_ts and comes later in (object key, record) order: it wins.
      [`dt=${DAY}/l-b.avro`, avroFile(labelType, [label('p2', 19, `${DAY}T05:00:00Z`)])],
      [`dt=2026-03-04/l.avro`, avroFile(labelType, [label('p6', 66, '2026-03-04T12:00:00Z')])],
      // Inside the final label partitions (D .. D+8) but past p1's cutoff (inference + 7 days): changes nothing.
      [`dt=2026-03-10/l.avro`, avroFile(labelType, [label('p1', 999, '2026-03-10T12:00:00Z')])],
    ],
  };
}

async function seed(root: DatasetRoot, data: { predictions: Array<[string, Buffer]>; labels: Array<[string, Buffer]> }): Promise<void> {
  await Promise.all([putAll(root.store('predictions'), data.predictions), putAll(root.store('labels'), data.labels)]);
}

/** A small realistic day (generateSample) for the tests that need volume rather than hand-made cases. */
async function seedSample(root: DatasetRoot, predictionsPerDay = 1500, filesPerDay = 4): Promise<void> {
  await generateSample(root.store('predictions'), root.store('labels'), { from: DAY, days: 1, predictionsPerDay, filesPerDay, seed: 7 });
}

function byKeys(records: ModelMetricsRecord[]): Map<string, ModelMetricsRecord> {
  return new Map(records.map((r) => [`${r.model_name}/${r.model_version}/${JSON.stringify(r.slice_keys)}`, r]));
}

describe('bad usage: exit 2 naming the option, before any S3 call', () => {
  let configDir: { path: string; remove: () => Promise<void> };

  beforeAll(async () => {
    configDir = await tempDirectory('config');
    await writeFile(join(configDir.path, 'unknown-key.yaml'), 'label-window: P7D\nlabel_windw: P3D\n');
    await writeFile(join(configDir.path, 'broken.yaml'), 'codec: [deflate\n');
    await writeFile(join(configDir.path, 'bad-value.json'), '{"max-slice-values": "many"}');
  });

  afterAll(async () => {
    await configDir.remove();
  });

  // Every test here must leave the proxy untouched, so they can run side by side.
  beforeAll(() => proxy.clear());

  it.concurrent.each([
    { name: 'unknown stage', args: ['run', '--date', DAY, '--stage', 'prelim'], option: '--stage' },
    { name: 'missing stage', args: ['run', '--date', DAY], option: '--stage' },
    { name: 'malformed date', args: ['run', '--date', '2025-02-30', '--stage', 'final'], option: '--date' },
    { name: 'date not YYYY-MM-DD', args: ['run', '--date', '20260302', '--stage', 'final'], option: '--date' },
    { name: '--from after --to', args: ['backfill', '--from', '2026-03-05', '--to', '2026-03-01', '--stage', 'final'], option: '--from' },
    { name: 'unknown option', args: ['run', '--date', DAY, '--stage', 'final', '--bogus'], option: '--bogus' },
    { name: 'option without its value', args: ['run', '--stage', 'final', '--date'], option: '--date' },
    { name: 'bad --label-window (months)', args: ['run', '--date', DAY, '--stage', 'final', '--label-window', 'P1M'], option: '--label-window' },
    { name: 'bad --codec', args: ['run', '--date', DAY, '--stage', 'final', '--codec', 'lz4'], option: '--codec' },
    { name: 'bad --s3-conditional-writes', args: ['run', '--date', DAY, '--stage', 'final', '--s3-conditional-writes', 'maybe'], option: '--s3-conditional-writes' },
    { name: 'bad --s3-multipart-listing', args: ['run', '--date', DAY, '--stage', 'final', '--s3-multipart-listing', 'yes'], option: '--s3-multipart-listing' },
    { name: 'bad --codec from the environment', args: ['run', '--date', DAY, '--stage', 'final'], env: { MODEL_METRICS_CODEC: 'lz4' }, option: '--codec' },
    { name: 'zoneless --as-of', args: ['run', '--date', DAY, '--stage', 'preliminary', '--as-of', '2026-03-03T06:00:00'], option: '--as-of' },
    { name: 'preliminary --as-of before the day', args: ['run', '--date', DAY, '--stage', 'preliminary', '--as-of', '2026-03-01T06:00:00Z'], option: '--as-of' },
    { name: 'bad --max-slice-values', args: ['run', '--date', DAY, '--stage', 'final', '--max-slice-values', '0'], option: '--max-slice-values' },
    { name: 'bad --concurrency', args: ['backfill', '--from', DAY, '--to', DAY, '--stage', 'final', '--concurrency', '0'], option: '--concurrency' },
    { name: 'bad --lookback', args: ['scheduled', '--lookback', 'P1M'], option: '--lookback' },
    { name: 'bad report --format', args: ['report', '--from', DAY, '--to', DAY, '--format', 'xml'], option: '--format' },
    { name: 'curated inside predictions', args: ['run', '--date', DAY, '--stage', 'final', '--curated', 's3://usage-bucket/root/predictions/out'], option: '--curated' },
  ])('$name', async ({ args, option, env }) => {
    // The command first, then the root, then the case's options (so an option missing its value is last).
    const root = ['--root', 's3://usage-bucket/root', '--s3-endpoint', proxy.endpoint, '--s3-force-path-style'];
    const result = await cli([args[0]!, ...root, ...args.slice(1)], env);
    expectExit(result, 2);
    expect(result.stdout).toBe('');
    const error = result.lastError();
    expect(error, describeRun(result)).toMatchObject({ event: 'command_failed', exit_code: 2, code: 'E_USAGE', option });
    expect(String(error?.message)).toContain(option);
    expect(proxy.requests, 'no S3 request before a usage error').toEqual([]);
  });

  it.concurrent.each([
    { name: 'missing --root', args: ['run', '--date', DAY, '--stage', 'final'], option: '--root', code: 'E_USAGE' },
    { name: 'unsupported --root scheme', args: ['run', '--date', DAY, '--stage', 'final', '--root', 'ftp://host/ml'], option: '--root', code: 'E_USAGE' },
    { name: 'nonexistent --config', args: ['run', '--date', DAY, '--stage', 'final', '--root', 's3://usage-bucket/root', '--config', '/nonexistent/mm.yaml'], option: '--config', code: 'E_CONFIG' },
    { name: '--config with an unknown key', args: ['run', '--date', DAY, '--stage', 'final', '--root', 's3://usage-bucket/root', '--config', 'unknown-key.yaml'], option: '--config', code: 'E_CONFIG', mention: 'label_windw' },
    { name: '--config that is not YAML', args: ['run', '--date', DAY, '--stage', 'final', '--root', 's3://usage-bucket/root', '--config', 'broken.yaml'], option: '--config', code: 'E_CONFIG' },
    { name: '--config with a bad value', args: ['run', '--date', DAY, '--stage', 'final', '--root', 's3://usage-bucket/root', '--config', 'bad-value.json'], option: '--max-slice-values', code: 'E_USAGE' },
  ])('$name', async ({ args, option, code, mention }) => {
    const withConfigPath = args.map((arg) => (arg.endsWith('.yaml') || arg.endsWith('.json')) && !arg.startsWith('/') ? join(configDir.path, arg) : arg);
    const result = await cli([...withConfigPath, '--json', '--s3-endpoint', proxy.endpoint, '--s3-force-path-style']);
    expectExit(result, 2);
    // With --json the failure is a JSON document on stdout too.
    expect(result.json()).toMatchObject({ status: 'failed', exit_code: 2, code, option });
    expect(result.lastError()).toMatchObject({ event: 'command_failed', exit_code: 2, code, option });
    if (mention !== undefined) expect(String(result.lastError()?.message)).toContain(mention);
    expect(proxy.requests).toEqual([]);
  });

  it('--help and --version exit 0 on stdout', async () => {
    const help = await cli(['run', '--help']);
    expectExit(help, 0);
    expect(help.stdout).toContain('--label-window');
    expect(help.stdout).toContain('--on-corrupt');
    const version = await cli(['--version']);
    expectExit(version, 0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

});

describe('a root that cannot be listed', () => {
  it('a bucket that does not exist fails with exit 1 naming it', async () => {
    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, '--root', 's3://no-such-bucket-mm/ml', '--s3-endpoint', proxy.endpoint, '--s3-force-path-style']);
    expectExit(result, 1);
    expect(result.lastError()).toMatchObject({ event: 'command_failed', code: 'E_NOT_FOUND' });
    expect(String(result.lastError()?.message)).toContain('no-such-bucket-mm');
  });

  it('a local root without any predictions (a mistyped path) fails with exit 1 and creates nothing', async () => {
    const parent = await tempDirectory('missing-root');
    const root = join(parent.path, 'no-such-root');
    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, '--root', root]);
    expectExit(result, 1);
    expect(result.lastError()).toMatchObject({ event: 'command_failed', code: 'E_NOT_FOUND', option: '--predictions' });
    expect(String(result.lastError()?.message)).toContain('no prediction objects at all');
    expect(await readdir(parent.path)).toEqual([]);
    await parent.remove();
  });
});

describe('final not ready: exit 3, nothing written', () => {
  it.each([
    { name: 'inside the window', asOf: '2026-03-09T23:59:59Z', window: 'P7D' },
    { name: 'a custom window', asOf: '2026-03-04T12:00:00Z', window: 'P3D' },
  ])('$name', async ({ asOf, window }) => {
    const root = freshS3Root('not-ready');
    await seed(root, handMadeDay());
    proxy.clear();
    const result = await cli(['run', '--date', DAY, '--stage', 'final', '--as-of', asOf, '--label-window', window, '--json', ...root.args]);
    expectExit(result, 3);
    expect(result.json()).toMatchObject({ status: 'not_ready', exit_code: 3, code: 'E_NOT_READY' });
    expect(result.logs.at(-1)).toMatchObject({ event: 'not_ready', exit_code: 3, code: 'E_NOT_READY' });
    expect(proxy.writes()).toEqual([]);
    expect(await allKeys(root.store('curated'))).toEqual([]);
    expect(await allKeys(root.store('metrics'))).toEqual([]);
  });
});

describe('join semantics end to end on a hand-made day (s3rver)', () => {
  let root: DatasetRoot;
  let preliminary: CliResult;
  let final: CliResult;

  beforeAll(async () => {
    root = freshS3Root('join');
    await seed(root, handMadeDay());
    preliminary = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, '--json', ...root.args]);
    final = await cli(['run', '--date', DAY, '--stage', 'final', '--as-of', FINAL_AS_OF, '--json', ...root.args]);
  });

  it('summarises both runs on stdout and logs the stable events', () => {
    expectExit(preliminary, 0);
    expectExit(final, 0);
    expect(preliminary.json<DayResult>()).toMatchObject({
      date: DAY,
      stage: 'preliminary',
      status: 'done',
      as_of: PRELIMINARY_AS_OF,
      labels_through: PRELIMINARY_AS_OF,
      prediction_objects: 3,
      // D and D+1 only: the preliminary cutoff is the morning of D+1.
      label_objects: 2,
      predictions_read: 12,
      predictions_kept: 11,
      labeled: 7,
      curated_files: 1,
      // 6 slices, each with its label-age records PT1H and PT6H (SPEC §5.1: ages up to the as-of).
      metrics_records: 18,
      curated_manifest: `${root.uri}/curated/${SUCCESS('preliminary')}`,
    });
    expect(final.json<DayResult>()).toMatchObject({ stage: 'final', status: 'done', as_of: '2026-03-10T00:00:00Z', labels_through: '2026-03-10T00:00:00Z', label_objects: 4, labeled: 8 });
    const events = preliminary.logs.map((line) => line.event);
    for (const event of ['run_started', 'labels_indexed', 'predictions_joined', 'run_committed']) expect(events).toContain(event);
  });

  it('writes every kept prediction once, in input order, with the winning label (preliminary)', async () => {
    const curated = root.store('curated');
    const records = await readRecords<EnrichedRecord>(curated, `${PARTITION('preliminary')}part-00000.avro`, enrichedType);
    const at = (time: string): number => micros(`${DAY}T${time}Z`);
    const unlabeled = { y_true: null, residual: null, label_ts: null, label_delay_seconds: null, label_source: null };
    const base = { model_name: 'eta', model_version: 'v1', featureset_version: 'fs-1' };
    expect(records).toEqual([
      { ...base, prediction_id: 'p1', y_pred: 10, inference_ts: at('01:00:00'), segment_keys: { region: 'eu', device: 'ios' }, y_true: 12, residual: 2, label_ts: at('02:00:00'), label_delay_seconds: 3600, label_source: 'labels' },
      { ...base, prediction_id: 'p2', y_pred: 20, inference_ts: at('02:00:00'), segment_keys: { region: 'eu' }, y_true: 19, residual: -1, label_ts: at('05:00:00'), label_delay_seconds: 10_800, label_source: 'labels' },
      { ...base, prediction_id: 'p3', y_pred: 30, inference_ts: at('03:00:00'), segment_keys: { region: 'us' }, y_true: 33, residual: 3, label_ts: at('03:00:00'), label_delay_seconds: 0, label_source: 'inline' },
      { ...base, prediction_id: 'p4', y_pred: 40, inference_ts: at('03:30:00'), segment_keys: { region: 'us' }, y_true: 44, residual: 4, label_ts: at('04:00:00'), label_delay_seconds: 1800, label_source: 'labels' },
      // Invalid: kept as written, no label joined although p5 has one.
      { ...base, prediction_id: 'p5', y_pred: Number.NaN, inference_ts: at('04:00:00'), segment_keys: { region: 'eu' }, ...unlabeled },
      // Its label arrives on D+2, after the preliminary as-of.
      { ...base, prediction_id: 'p6', y_pred: 60, inference_ts: at('05:00:00'), segment_keys: { region: 'eu' }, ...unlabeled },
      // label_ts before inference_ts: used, with delay 0.
      { ...base, prediction_id: 'p7', y_pred: 70, inference_ts: at('06:00:00'), segment_keys: {}, y_true: 77, residual: 7, label_ts: at('05:59:00'), label_delay_seconds: 0, label_source: 'labels' },
      { ...base, prediction_id: 'p9', y_pred: 90, inference_ts: micros('2026-03-01T23:00:00Z'), segment_keys: { region: 'eu' }, ...unlabeled },
      // Its only label has a NaN y_true.
      { ...base, prediction_id: 'p10', y_pred: 100, inference_ts: at('07:00:00'), segment_keys: { region: 'us' }, ...unlabeled },
      // Read through schema resolution from the older producer's file: float promoted, defaults filled.
      { ...base, featureset_version: 'fs-legacy', prediction_id: 'p11', y_pred: 5, inference_ts: at('05:30:00'), segment_keys: {}, y_true: 0, residual: -5, label_ts: at('06:00:00'), label_delay_seconds: 1800, label_source: 'labels' },
      { ...base, model_version: 'v2', prediction_id: 'q1', y_pred: 8, inference_ts: at('09:30:00'), segment_keys: { region: 'eu' }, y_true: 10, residual: 2, label_ts: at('10:00:00'), label_delay_seconds: 1800, label_source: 'labels' },
    ]);
    const header = await readHeader(curated, `${PARTITION('preliminary')}part-00000.avro`);
    expect(header.metadata.get('model_metrics.stage')?.toString()).toBe('preliminary');
    expect(header.metadata.get('model_metrics.as_of')?.toString()).toBe(PRELIMINARY_AS_OF);
    expect(header.metadata.get('model_metrics.label_window')?.toString()).toBe('P7D');
  });

  it('computes the metrics of the whole version and its slices as worked out by hand (preliminary)', async () => {
    const metrics = byKeys(await readRecords<ModelMetricsRecord>(root.store('metrics'), `${PARTITION('preliminary')}metrics.avro`, metricsType));
    expect([...metrics.keys()]).toEqual(['eta/v1/{}', 'eta/v1/{"device":"ios"}', 'eta/v1/{"region":"eu"}', 'eta/v1/{"region":"us"}', 'eta/v2/{}', 'eta/v2/{"region":"eu"}']);
    // Labeled valid predictions of eta/v1: (y_true, y_pred) = p1 (12,10) p2 (19,20) p3 (33,30) p4 (44,40) p7 (77,70) p11 (0,5).
    const errors = [2, -1, 3, 4, 7, -5];
    const truths = [12, 19, 33, 44, 77, 0];
    const n = errors.length;
    const meanTruth = truths.reduce((a, b) => a + b, 0) / n;
    const ssTot = truths.reduce((sum, y) => sum + (y - meanTruth) ** 2, 0);
    const squares = errors.map((e) => e * e);
    const mse = 104 / 6;
    const sdSquares = Math.sqrt(squares.reduce((sum, s) => sum + (s - mse) ** 2, 0) / (n - 1));
    const whole = metrics.get('eta/v1/{}')!;
    expect(whole).toMatchObject({
      stage: 'PRELIMINARY',
      window_start_ts: micros(`${DAY}T00:00:00Z`),
      window_end_ts: micros('2026-03-03T00:00:00Z'),
      labels_through_ts: micros(PRELIMINARY_AS_OF),
      // p1 p2 p3 p4 p6 p7 p9 p10 p11 (p5 is invalid, p1's second copy dropped).
      count: 9,
      labeled_count: 6,
      mape_count: 5,
      // p5's NaN y_pred and p10's NaN label.
      invalid_count: 2,
      duplicate_prediction_count: 1,
      // p2: three usable labels, one winner.
      duplicate_label_count: 2,
      negative_delay_count: 1,
      misplaced_count: 1,
    });
    expect(whole.missing_label_rate).toBeCloseTo(1 - 6 / 9, 12);
    expect(whole.mse).toBeCloseTo(mse, 12);
    expect(whole.rmse).toBeCloseTo(Math.sqrt(mse), 12);
    expect(whole.mae).toBeCloseTo(22 / 6, 12);
    expect(whole.mean_error).toBeCloseTo(10 / 6, 12);
    expect(whole.mape).toBeCloseTo((2 / 12 + 1 / 19 + 3 / 33 + 4 / 44 + 7 / 77) / 5, 12);
    expect(whole.r2).toBeCloseTo(1 - 104 / ssTot, 12);
    expect(whole.mse_ci_high).toBeCloseTo(mse + (1.959964 * sdSquares) / Math.sqrt(n), 9);
    expect(whole.mse_ci_low).toBeCloseTo(Math.max(0, mse - (1.959964 * sdSquares) / Math.sqrt(n)), 9);
    expect(whole.label_delay_max_s!).toBeGreaterThanOrEqual(10_800 * 0.99);
    expect(whole.label_delay_max_s!).toBeLessThanOrEqual(10_800 * 1.01);
    expect(whole).toMatchObject({ sum_error: 10, sum_sq_error: 104, sum_abs_error: 22, sum_y_true: 185, sum_sq_y_true: 9459 });

    // region=eu: p1 p2 p6 p9 valid, p5 invalid; p1's dropped copy counts here (and for device=ios).
    expect(metrics.get('eta/v1/{"region":"eu"}')).toMatchObject({ count: 4, labeled_count: 2, invalid_count: 1, duplicate_prediction_count: 1, duplicate_label_count: 2, misplaced_count: 1, sum_error: 1 });
    // region=us: p3 p4 p10 valid; p10's NaN label is invalid.
    expect(metrics.get('eta/v1/{"region":"us"}')).toMatchObject({ count: 3, labeled_count: 2, invalid_count: 1, duplicate_prediction_count: 0, sum_error: 7 });
    expect(metrics.get('eta/v1/{"device":"ios"}')).toMatchObject({ count: 1, labeled_count: 1, duplicate_prediction_count: 1, mse: 4 });
    expect(metrics.get('eta/v2/{}')).toMatchObject({ count: 1, labeled_count: 1, mse: 4, mae: 2, r2: null, mse_ci_low: null });
  });

  it('uses labels within each prediction’s window in the final stage', async () => {
    const curated = await readRecords<EnrichedRecord>(root.store('curated'), `${PARTITION('final')}part-00000.avro`, enrichedType);
    const byId = new Map(curated.map((r) => [r.prediction_id, r]));
    // p6's label two days later now counts; p1's correction past inference + P7D still does not.
    expect(byId.get('p6')).toMatchObject({ y_true: 66, residual: 6, label_ts: micros('2026-03-04T12:00:00Z'), label_delay_seconds: 55 * 3600, label_source: 'labels' });
    expect(byId.get('p1')).toMatchObject({ y_true: 12, residual: 2 });
    const header = await readHeader(root.store('curated'), `${PARTITION('final')}part-00000.avro`);
    expect(header.metadata.get('model_metrics.stage')?.toString()).toBe('final');
    expect(header.metadata.get('model_metrics.as_of')?.toString()).toBe('2026-03-10T00:00:00Z');

    const metrics = byKeys(await readRecords<ModelMetricsRecord>(root.store('metrics'), `${PARTITION('final')}metrics.avro`, metricsType));
    const whole = metrics.get('eta/v1/{}')!;
    expect(whole).toMatchObject({ stage: 'FINAL', count: 9, labeled_count: 7, labels_through_ts: micros('2026-03-10T00:00:00Z'), sum_error: 16, sum_sq_error: 140 });
    expect(whole.mse).toBeCloseTo(20, 12);
    expect(whole.mae).toBeCloseTo(4, 12);
  });

  it('writes _SUCCESS manifests that list inputs, outputs, schemas and the run', async () => {
    const manifest = (await readManifest(root.store('curated'), SUCCESS('preliminary')))!;
    const predictions = await root.store('predictions').list('');
    const labels = await root.store('labels').list(`dt=${DAY}/`);
    expect(manifest).toMatchObject({ dataset: 'curated', stage: 'preliminary', date: DAY, as_of: PRELIMINARY_AS_OF, label_window: 'P7D', job_version: expect.any(String) });
    expect(manifest.inputs.map(({ dataset, key, size, etag }) => ({ dataset, key, size, etag }))).toEqual([
      ...predictions.filter((o) => o.key.endsWith('.avro') && !o.key.includes('/.')).map((o) => ({ dataset: 'predictions', ...o })),
      ...labels.map((o) => ({ dataset: 'labels', ...o })),
    ]);
    // Three writer schemas: PredictionEvent, the legacy producer and LabelEvent.
    expect(manifest.writer_schemas.map((w) => w.objects).sort()).toEqual([1, 2, 2]);
    expect(manifest.skipped).toEqual([]);
    const part = await root.store('curated').head(`${PARTITION('preliminary')}part-00000.avro`);
    expect(manifest.outputs).toEqual([{ key: `${PARTITION('preliminary')}part-00000.avro`, size: part!.size, records: 11 }]);
    expect(Date.parse(manifest.started_at)).toBeLessThanOrEqual(Date.parse(manifest.ended_at));
    const metricsManifest = (await readManifest(root.store('metrics'), SUCCESS('preliminary')))!;
    expect(metricsManifest.outputs).toEqual([{ key: `${PARTITION('preliminary')}metrics.avro`, size: expect.any(Number), records: 18 }]);
    expect(metricsManifest.fingerprint).toBe(manifest.fingerprint);
  });
});

describe('idempotent reruns (s3rver)', () => {
  let root: DatasetRoot;
  const args = (): string[] => ['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, '--json', ...root.args];

  async function snapshot(): Promise<{ success: Buffer[]; objects: Map<string, { etag: string; bytes: Buffer }> }> {
    const success = await Promise.all([readBytes(root.store('curated'), SUCCESS('preliminary')), readBytes(root.store('metrics'), SUCCESS('preliminary'))]);
    const objects = new Map<string, { etag: string; bytes: Buffer }>();
    for (const dataset of ['curated', 'metrics'] as const) {
      for (const info of await root.store(dataset).list('')) {
        if (info.key.endsWith('.avro')) objects.set(`${dataset}/${info.key}`, { etag: info.etag, bytes: await readBytes(root.store(dataset), info.key) });
      }
    }
    return { success, objects };
  }

  beforeAll(async () => {
    root = freshS3Root('idempotent');
    await seedSample(root);
  });

  it('a rerun with the same inputs is already done and writes nothing; --force rewrites the same bytes; a new object recomputes', async () => {
    const first = await cli(args());
    expectExit(first, 0);
    expect(first.json<DayResult>()).toMatchObject({ status: 'done', prediction_objects: 4 });
    const before = await snapshot();

    proxy.clear();
    const again = await cli(args());
    expectExit(again, 0);
    expect(again.json<DayResult>()).toMatchObject({ status: 'already_done', predictions_read: first.json<DayResult>().predictions_read, labeled: first.json<DayResult>().labeled });
    expect(again.logs.map((l) => l.event)).toContain('already_done');
    expect(proxy.writes(), 'an already-done rerun sends no PUT, POST or DELETE').toEqual([]);
    const unchanged = await snapshot();
    expect(unchanged.success).toEqual(before.success);
    expect(new Map([...unchanged.objects].map(([k, v]) => [k, v.etag]))).toEqual(new Map([...before.objects].map(([k, v]) => [k, v.etag])));

    proxy.clear();
    const forced = await cli([...args(), '--force']);
    expectExit(forced, 0);
    expect(forced.json<DayResult>()).toMatchObject({ status: 'done' });
    expect(proxy.writes().some((r) => r.method === 'PUT' && r.path.endsWith('/part-00000.avro'))).toBe(true);
    const rewritten = await snapshot();
    expect([...rewritten.objects.keys()]).toEqual([...before.objects.keys()]);
    for (const [key, object] of before.objects) expect(rewritten.objects.get(key)!.bytes.equals(object.bytes), key).toBe(true);
    // Only the run's own times differ in the manifests.
    const withoutTimes = (bytes: Buffer): unknown => ({ ...JSON.parse(bytes.toString()), started_at: null, ended_at: null });
    expect(rewritten.success.map(withoutTimes)).toEqual(before.success.map(withoutTimes));
    expect(rewritten.success[0]!.equals(before.success[0]!)).toBe(false);

    const late = [prediction('late-1', { y_pred: 1, inference_ts: micros(`${DAY}T23:00:00Z`) }), prediction('late-2', { y_pred: 2, inference_ts: micros(`${DAY}T23:30:00Z`) })];
    await putAll(root.store('predictions'), [[`dt=${DAY}/hour=23/late.avro`, avroFile(predictionType, late)]]);
    const recomputed = await cli(args());
    expectExit(recomputed, 0);
    expect(recomputed.json<DayResult>()).toMatchObject({ status: 'done', prediction_objects: 5, predictions_read: first.json<DayResult>().predictions_read + 2 });
    const manifest = (await readManifest(root.store('curated'), SUCCESS('preliminary')))!;
    expect(manifest.inputs.map((i) => i.key)).toContain(`dt=${DAY}/hour=23/late.avro`);
    const curated = await readRecords<EnrichedRecord>(root.store('curated'), `${PARTITION('preliminary')}part-00000.avro`, enrichedType);
    expect(curated.slice(-2).map((r) => r.prediction_id)).toEqual(['late-1', 'late-2']);
  });
});

describe('--s3-conditional-writes (issue 10)', () => {
  /** The HEADs of one run on the run leases (`_lease.json` of curated, metrics and alerts), through the proxy. */
  async function leaseHeads(mode: string[]): Promise<number> {
    const root = freshS3Root('conditional');
    await seedSample(root, 300, 2);
    proxy.clear();
    expectExit(await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, ...root.args, ...mode]), 0);
    return proxy.requests.filter((r) => r.method === 'HEAD' && r.path.endsWith('/_lease.json')).length;
  }

  it('on: the lease sends its conditional writes alone (one HEAD per acquire); auto on a custom endpoint still brackets them', async () => {
    // Three leases (curated, metrics, alerts), each acquired once after a HEAD for a holder.
    expect(await leaseHeads(['--s3-conditional-writes', 'on'])).toBe(3);
    // auto = off on s3rver: every conditional PUT also has a HEAD before and after it.
    expect(await leaseHeads([])).toBeGreaterThan(3 * 3);
  });
});

describe('--s3-multipart-listing (issue 10)', () => {
  /** One preliminary run over a staging folder a dead run left; its ListMultipartUploads requests and the cleanup's log line. */
  async function sweep(mode: string[]): Promise<{ listings: number; removed: Record<string, unknown> | undefined }> {
    const root = freshS3Root('uploads');
    await seedSample(root, 300, 2);
    await root.store('curated').write(`_staging/${PARTITION('preliminary')}0badc0de-dead-4bad-8bad-000000000001/${PARTITION('preliminary')}part-00000.avro`, Buffer.from('x'));
    proxy.clear();
    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, ...root.args, ...mode]);
    expectExit(result, 0);
    return { listings: proxy.requests.filter((r) => r.method === 'GET' && r.query.has('uploads')).length, removed: result.logs.find((l) => l.event === 'stale_staging_removed') };
  }

  it('auto on a custom endpoint asks for no uploads and says why; on asks, and reports the refusal with the way out', async () => {
    const auto = await sweep([]);
    expect(auto.listings).toBe(0);
    expect(auto.removed).toMatchObject({ objects: 1, partial_uploads_aborted: 0, partial_uploads_unlisted: expect.stringMatching(/not declared to list multipart uploads.*--s3-multipart-listing/) });
    // s3rver 3.7.1 does not implement ListMultipartUploads: declared on, the store is asked and refuses.
    const on = await sweep(['--s3-multipart-listing', 'on']);
    expect(on.listings).toBeGreaterThan(0);
    expect(on.removed).toMatchObject({ objects: 1, partial_uploads_unlisted: expect.stringMatching(/^ListMultipartUploads answered NotImplemented \(HTTP 501\): grant s3:ListBucketMultipartUploads .* --s3-multipart-listing off$/) });
  });
});

describe('corrupt and incompatible inputs (s3rver)', () => {
  /** A valid predictions file of the sample, cut short after its header (a truncated upload). */
  async function truncatedCopy(root: DatasetRoot, hour = '05'): Promise<{ key: string }> {
    const store = root.store('predictions');
    const [first] = await store.list(`dt=${DAY}/`);
    const bytes = await readBytes(store, first!.key);
    const key = `dt=${DAY}/hour=${hour}/truncated.avro`;
    // Cut inside its blocks, after a valid header: only reading the blocks finds it.
    await store.write(key, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    return { key };
  }

  async function expectNothingPublished(root: DatasetRoot): Promise<void> {
    expect(await allKeys(root.store('curated')), 'no curated objects, part files or _SUCCESS').toEqual([]);
    expect(await allKeys(root.store('metrics')), 'no metrics objects or _SUCCESS').toEqual([]);
  }

  it('a truncated object fails the run (exit 1) naming the key; the part files already written are removed', async () => {
    const root = freshS3Root('truncated');
    await seedSample(root, 8000, 4);
    // Last in key order, so ~1.6 MB of curated output (null codec, 1 MiB parts) is written before it is read.
    const { key } = await truncatedCopy(root, '99');
    proxy.clear();
    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, '--codec', 'null', '--part-size-mb', '1', '--json', ...root.args]);
    expectExit(result, 1);
    const uri = root.store('predictions').uriOf(key);
    expect(result.lastError()).toMatchObject({ event: 'command_failed', exit_code: 1, code: 'E_CORRUPT_OBJECT', uri });
    expect(result.json()).toMatchObject({ status: 'failed', exit_code: 1, code: 'E_CORRUPT_OBJECT', uri });
    const curatedPath = `/${bucket}/${root.uri.slice(`s3://${bucket}/`.length)}/curated/`;
    // Parts go up under the run's staging prefix; they are moved into place only at commit.
    const stagedPrefix = `${curatedPath}_staging/${PARTITION('preliminary')}`;
    const firstPart = proxy.requests.findIndex((r) => r.method === 'PUT' && r.path.startsWith(stagedPrefix) && r.path.endsWith(`/${PARTITION('preliminary')}part-00000.avro`));
    expect(firstPart, 'a complete part file was uploaded before the corrupt object was reached').toBeGreaterThanOrEqual(0);
    // The cleanup: a DeleteObjects request (POST /bucket?delete) after the part went up.
    expect(proxy.requests.slice(firstPart).some((r) => r.method === 'POST' && r.query.has('delete') && r.path.replace(/\/$/, '') === `/${bucket}`)).toBe(true);
    await expectNothingPublished(root);
  });

  it('garbage bytes under an .avro name fail the run in preflight, publishing nothing', async () => {
    const root = freshS3Root('garbage');
    await seedSample(root);
    const key = `dt=${DAY}/hour=09/garbage.avro`;
    await root.store('predictions').write(key, Buffer.from('this is not an Avro container file at all'));
    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, ...root.args]);
    expectExit(result, 1);
    const uri = root.store('predictions').uriOf(key);
    expect(result.lastError()).toMatchObject({ event: 'command_failed', code: 'E_CORRUPT_OBJECT', uri });
    expect(String(result.lastError()?.message)).toContain(`"${uri}"`);
    await expectNothingPublished(root);
  });

  it('--on-corrupt skip leaves corrupt objects out whole and lists them with the reason', async () => {
    const root = freshS3Root('skip');
    await seedSample(root);
    const clean = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, '--json', '--curated', `${root.uri}/clean-curated`, '--metrics', `${root.uri}/clean-metrics`, ...root.args]);
    expectExit(clean, 0);
    const truncated = await truncatedCopy(root);
    const garbageKey = `dt=${DAY}/hour=09/garbage.avro`;
    const labelGarbageKey = `dt=${DAY}/zz-garbage.avro`;
    await root.store('predictions').write(garbageKey, Buffer.from('Obj\u0001 but then nothing sensible'));
    // A fresh id in the truncated file would show up if half of it were used: give it one.
    const freshIds = [prediction('only-in-corrupt', { y_pred: 1, inference_ts: micros(`${DAY}T12:00:00Z`) })];
    const withFresh = avroFile(predictionType, [...Array.from({ length: 3000 }, (_, i) => prediction(`pad-${i}`, { y_pred: i, inference_ts: micros(`${DAY}T12:00:00Z`) })), ...freshIds], { codec: 'null' });
    const halfKey = `dt=${DAY}/hour=10/half.avro`;
    await root.store('predictions').write(halfKey, withFresh.subarray(0, withFresh.length - 100));
    await root.store('labels').write(labelGarbageKey, Buffer.alloc(64, 0xff));

    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, '--on-corrupt', 'skip', '--json', ...root.args]);
    expectExit(result, 0);
    expect(result.json<DayResult>()).toMatchObject({ status: 'done', skipped_objects: 4, predictions_read: clean.json<DayResult>().predictions_read });
    const skippedLogs = result.logs.filter((l) => l.event === 'object_skipped').map((l) => l.uri);
    const predictionUri = (k: string): string => root.store('predictions').uriOf(k);
    expect(skippedLogs.sort()).toEqual([predictionUri(garbageKey), predictionUri(halfKey), predictionUri(truncated.key), root.store('labels').uriOf(labelGarbageKey)].sort());
    const manifest = (await readManifest(root.store('curated'), SUCCESS('preliminary')))!;
    expect(manifest.skipped.map((s) => [s.dataset, s.key]).sort()).toEqual(
      [
        ['labels', labelGarbageKey],
        ['predictions', garbageKey],
        ['predictions', halfKey],
        ['predictions', truncated.key],
      ].sort(),
    );
    for (const skipped of manifest.skipped) expect(skipped.reason.length).toBeGreaterThan(10);
    // Skipped objects are still inputs the run saw (so a fixed object changes the fingerprint), without a schema.
    expect(manifest.inputs.find((i) => i.key === halfKey)).toMatchObject({ dataset: 'predictions' });
    expect(manifest.inputs.find((i) => i.key === halfKey)?.schema_fingerprint).toBeUndefined();
    const curated = await readRecords<EnrichedRecord>(root.store('curated'), `${PARTITION('preliminary')}part-00000.avro`, enrichedType);
    const ids = new Set(curated.map((r) => r.prediction_id));
    expect(ids.has('only-in-corrupt')).toBe(false);
    expect(ids.has('pad-0')).toBe(false);
    // Byte-identical to the run that never saw the corrupt objects.
    const prefix = root.uri.slice(`s3://${bucket}/`.length);
    for (const dataset of ['curated', 'metrics'] as const) {
      const cleanStore = new S3ObjectStore(client, bucket, `${prefix}/clean-${dataset}`);
      const cleanManifest = (await readManifest(cleanStore, SUCCESS('preliminary')))!;
      const skipManifest = (await readManifest(root.store(dataset), SUCCESS('preliminary')))!;
      expect(skipManifest.outputs).toEqual(cleanManifest.outputs);
      for (const output of cleanManifest.outputs) {
        const [a, b] = await Promise.all([readBytes(root.store(dataset), output.key), readBytes(cleanStore, output.key)]);
        expect(a.equals(b), output.key).toBe(true);
      }
    }
  });

  it.each(['fail', 'skip'])('an incompatible writer schema (y_pred as string) fails with --on-corrupt %s, naming key and field', async (mode) => {
    const root = freshS3Root(`schema-${mode}`);
    await seedSample(root);
    const key = `dt=${DAY}/hour=11/stringly.avro`;
    const records = [{ prediction_id: 's1', model_name: 'eta', model_version: 'v1', featureset_version: 'fs', y_pred: '12.5', inference_ts: micros(`${DAY}T11:00:00Z`) }];
    await root.store('predictions').write(key, avroFile(stringPredictionType, records));
    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', PRELIMINARY_AS_OF, '--on-corrupt', mode, ...root.args]);
    expectExit(result, 1);
    const error = result.lastError();
    const uri = root.store('predictions').uriOf(key);
    expect(error).toMatchObject({ event: 'command_failed', exit_code: 1, code: 'E_SCHEMA_INCOMPATIBLE', uri, field: 'y_pred' });
    expect(String(error?.message)).toContain(`"${uri}"`);
    expect(String(error?.message)).toContain('y_pred');
    await expectNothingPublished(root);
  });
});

describe('rerun after a failed run (local folder)', () => {
  let dirs: Array<{ remove: () => Promise<void> }> = [];

  afterAll(async () => {
    await Promise.all(dirs.map((d) => d.remove()));
    dirs = [];
  });

  it('completes once the object is fixed, byte-identical to a clean run, and is then a no-op', async () => {
    const [broken, clean] = await Promise.all([tempDirectory('broken'), tempDirectory('clean')]);
    dirs.push(broken, clean);
    const brokenRoot = localRoot(broken.path);
    const cleanRoot = localRoot(clean.path);
    await Promise.all([seedSample(brokenRoot, 3000, 6), seedSample(cleanRoot, 3000, 6)]);
    const predictions = brokenRoot.store('predictions');
    const [, second] = await predictions.list(`dt=${DAY}/`);
    const good = await readBytes(predictions, second!.key);
    await predictions.write(second!.key, good.subarray(0, good.length - 7));

    const args = (root: DatasetRoot): string[] => ['run', '--date', DAY, '--stage', 'final', '--as-of', FINAL_AS_OF, '--codec', 'null', '--json', ...root.args];
    const failed = await runCli(args(brokenRoot), cliEnv(endpoint));
    expectExit(failed, 1);
    expect(failed.lastError()).toMatchObject({ uri: predictions.uriOf(second!.key) });
    // Nothing at all is left in the output folders: no _SUCCESS, no part file, no temp file.
    for (const dataset of ['curated', 'metrics']) {
      const files = await readdir(join(broken.path, dataset), { recursive: true, withFileTypes: true }).catch(() => []);
      expect(files.filter((f) => f.isFile()).map((f) => f.name), dataset).toEqual([]);
    }

    await predictions.write(second!.key, good);
    const fixed = await runCli(args(brokenRoot), cliEnv(endpoint));
    expectExit(fixed, 0);
    const reference = await runCli(args(cleanRoot), cliEnv(endpoint));
    expectExit(reference, 0);
    expect(fixed.json<DayResult>()).toMatchObject({ status: 'done', predictions_read: reference.json<DayResult>().predictions_read });
    for (const dataset of ['curated', 'metrics'] as const) {
      const manifest = (await readManifest(brokenRoot.store(dataset), SUCCESS('final')))!;
      const referenceManifest = (await readManifest(cleanRoot.store(dataset), SUCCESS('final')))!;
      expect(manifest.outputs).toEqual(referenceManifest.outputs);
      for (const output of manifest.outputs) {
        const [a, b] = await Promise.all([readBytes(brokenRoot.store(dataset), output.key), readBytes(cleanRoot.store(dataset), output.key)]);
        expect(a.equals(b), output.key).toBe(true);
      }
    }

    // Already done: the files are not touched (a local rewrite would change their mtime).
    const outputs = [join(broken.path, 'curated', SUCCESS('final')), join(broken.path, 'curated', PARTITION('final'), 'part-00000.avro'), join(broken.path, 'metrics', PARTITION('final'), 'metrics.avro')];
    const mtimes = await Promise.all(outputs.map(async (path) => (await stat(path, { bigint: true })).mtimeNs));
    const again = await runCli(args(brokenRoot), cliEnv(endpoint));
    expectExit(again, 0);
    expect(again.json<DayResult>().status).toBe('already_done');
    expect(await Promise.all(outputs.map(async (path) => (await stat(path, { bigint: true })).mtimeNs))).toEqual(mtimes);
  });
});

