/**
 * The real CLI against both stores at a scale that exercises them: the same run on s3rver and on a
 * local folder gives byte-identical outputs (SPEC §1), a partition of more than 1,000 objects is
 * listed through every ListObjectsV2 page, and a curated file larger than one S3 part goes up as a
 * multipart upload that s3rver stores intact. A recording proxy between the CLI and s3rver shows
 * which requests the child process really made.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { enrichedType, labelType, metricsType, predictionType, schemaFingerprint } from '../../src/avro/schemas.js';
import { generateSample } from '../../src/demo/generate.js';
import type { EnrichedRecord, PredictionRecord } from '../../src/join/records.js';
import type { ModelMetricsRecord } from '../../src/join/slices.js';
import type { DayResult } from '../../src/pipeline/daily.js';
import { JOB_VERSION } from '../../src/package-root.js';
import {
  type CliResult,
  type DatasetRoot,
  type ManifestJson,
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
const MiB = 1024 * 1024;

let endpoint: string;
let bucket: string;
let client: S3Client;
let proxy: RecordingProxy;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  endpoint = inject('s3Endpoint');
  bucket = await createTestBucket(endpoint);
  client = testClient(endpoint);
  proxy = await RecordingProxy.start(endpoint);
});

afterAll(async () => {
  await Promise.all(cleanups.map((cleanup) => cleanup()));
  await proxy?.close();
  client?.destroy();
});

async function roots(name: string): Promise<{ s3: DatasetRoot; local: DatasetRoot }> {
  const directory = await tempDirectory(name);
  cleanups.push(directory.remove);
  return { s3: s3Root(client, bucket, name, proxy.endpoint), local: localRoot(directory.path) };
}

async function cli(args: readonly string[]): Promise<CliResult> {
  const result = await runCli(args, cliEnv(proxy.endpoint));
  expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
  return result;
}

function expectDone(result: CliResult): DayResult {
  expect(result.code, describeRun(result)).toBe(0);
  const summary = result.json<DayResult>();
  expect(summary.status).toBe('done');
  return summary;
}

describe('the same run on s3rver and on a local folder', () => {
  const runs = [
    { stage: 'preliminary', asOf: '2026-03-03T06:00:00Z', extra: ['--codec', 'null', '--part-size-mb', '1'] },
    { stage: 'final', asOf: '2026-03-20T00:00:00Z', extra: ['--slice-keys', 'region,device', '--max-slice-values', '2'] },
  ] as const;
  let pair: { s3: DatasetRoot; local: DatasetRoot };
  const results = new Map<string, DayResult>();

  beforeAll(async () => {
    pair = await roots('parity');
    const sample = { from: DAY, days: 2, predictionsPerDay: 9000, filesPerDay: 6, seed: 11 };
    await Promise.all([
      generateSample(pair.s3.store('predictions'), pair.s3.store('labels'), sample),
      generateSample(pair.local.store('predictions'), pair.local.store('labels'), sample),
    ]);
    for (const run of runs) {
      for (const root of [pair.s3, pair.local]) {
        const result = await cli(['run', '--date', DAY, '--stage', run.stage, '--as-of', run.asOf, '--json', ...run.extra, ...root.args]);
        results.set(`${root.kind}/${run.stage}`, expectDone(result));
      }
    }
  });

  it.each(runs)('gives byte-identical curated and metrics files ($stage)', async ({ stage }) => {
    const partition = `stage=${stage}/dt=${DAY}/`;
    for (const dataset of ['curated', 'metrics'] as const) {
      const [s3Manifest, localManifest] = await Promise.all([readManifest(pair.s3.store(dataset), `${partition}_SUCCESS`), readManifest(pair.local.store(dataset), `${partition}_SUCCESS`)]);
      expect(s3Manifest!.outputs).toEqual(localManifest!.outputs);
      expect(s3Manifest!.outputs.length).toBeGreaterThan(0);
      for (const output of s3Manifest!.outputs) {
        const [s3Bytes, localBytes] = await Promise.all([readBytes(pair.s3.store(dataset), output.key), readBytes(pair.local.store(dataset), output.key)]);
        expect(s3Bytes.length, output.key).toBe(output.size);
        expect(s3Bytes.equals(localBytes), `${dataset}/${output.key}`).toBe(true);
      }
    }
    const local = results.get(`local/${stage}`) as { alerts: object };
    // The manifest URIs differ by store; everything else, the alerts included (SPEC §8), is the same.
    expect(results.get(`s3/${stage}`)).toEqual({ ...local, curated_manifest: expect.any(String), metrics_manifest: expect.any(String), duration_s: expect.any(Number), alerts: { ...local.alerts, manifest: expect.any(String) } });
  });

  it('rolls the null-codec preliminary over several curated parts, in input order', async () => {
    const store = pair.s3.store('curated');
    const manifest = (await readManifest(store, `stage=preliminary/dt=${DAY}/_SUCCESS`))!;
    expect(manifest.outputs.map((o) => o.key)).toEqual(manifest.outputs.map((_, i) => `stage=preliminary/dt=${DAY}/part-${String(i).padStart(5, '0')}.avro`));
    expect(manifest.outputs.length).toBeGreaterThanOrEqual(2);
    let total = 0;
    for (const output of manifest.outputs) {
      const records = await readRecords<EnrichedRecord>(store, output.key, enrichedType);
      expect(records.length).toBe(output.records);
      total += records.length;
      expect((await readHeader(store, output.key)).codec).toBe('null');
    }
    expect(total).toBe(results.get('s3/preliminary')!.predictions_kept);
  });

  it.each(runs)('writes manifests that describe the run ($stage)', async ({ stage, asOf }) => {
    const partition = `stage=${stage}/dt=${DAY}/`;
    for (const root of [pair.s3, pair.local]) {
      const manifest = (await readManifest(root.store('metrics'), `${partition}_SUCCESS`)) as ManifestJson;
      const expectedAsOf = stage === 'final' ? '2026-03-10T00:00:00Z' : asOf;
      expect(manifest).toMatchObject({ format: 'model-metrics/success@1', dataset: 'metrics', stage, date: DAY, as_of: expectedAsOf, labels_through: expectedAsOf, label_window: 'P7D', job_version: JOB_VERSION });
      expect(manifest.params).toMatchObject({ stage, date: DAY, label_window: 'P7D' });
      expect(Date.parse(manifest.started_at)).toBeLessThanOrEqual(Date.parse(manifest.ended_at));
      // Inputs: every listed .avro object of the predictions partition and of the label partitions read, with the store's size and ETag.
      const predictions = await root.store('predictions').list(`dt=${DAY}/`);
      expect(manifest.inputs.filter((i) => i.dataset === 'predictions').map(({ key, size, etag }) => ({ key, size, etag }))).toEqual(predictions);
      const labelKeys = manifest.inputs.filter((i) => i.dataset === 'labels').map((i) => i.key);
      const lastLabelDate = stage === 'final' ? '2026-03-10' : '2026-03-03';
      const allLabels = await root.store('labels').list('');
      expect(labelKeys).toEqual(allLabels.filter((o) => o.key.slice(3, 13) >= DAY && o.key.slice(3, 13) <= lastLabelDate).map((o) => o.key));
      for (const input of manifest.inputs) expect(input.schema_fingerprint).toBe(schemaFingerprint(input.dataset === 'predictions' ? predictionType : labelType));
      expect(manifest.writer_schemas).toEqual(
        [
          { fingerprint: schemaFingerprint(predictionType), objects: predictions.length },
          { fingerprint: schemaFingerprint(labelType), objects: labelKeys.length },
        ].sort((a, b) => (a.fingerprint < b.fingerprint ? -1 : 1)),
      );
      const metrics = await readRecords<ModelMetricsRecord>(root.store('metrics'), `${partition}metrics.avro`, metricsType);
      expect(manifest.outputs).toEqual([{ key: `${partition}metrics.avro`, size: (await root.store('metrics').head(`${partition}metrics.avro`))!.size, records: metrics.length }]);
      if (stage === 'final') {
        // --slice-keys region,device --max-slice-values 2: no channel slices, at most two values plus __other__ per key.
        expect(metrics.some((m) => 'channel' in m.slice_keys)).toBe(false);
        const regions = metrics.filter((m) => m.model_version === 'v41' && 'region' in m.slice_keys && m.label_age_s === null).map((m) => m.slice_keys.region);
        expect(regions).toHaveLength(3);
        expect(regions.at(-1)).toBe('__other__');
      }
    }
  });
});

describe('a predictions partition of more than 1,000 objects (s3rver)', () => {
  const OBJECTS = 1010;
  let root: DatasetRoot;
  let result: CliResult;

  beforeAll(async () => {
    root = s3Root(client, bucket, 'many-objects', proxy.endpoint);
    const objects: Array<[string, Buffer]> = [];
    for (let i = 0; i < OBJECTS; i++) {
      const record: PredictionRecord = {
        prediction_id: `id-${i}`,
        model_name: 'eta',
        model_version: 'v1',
        feature_set_version: 'fs',
        y_pred: i,
        y_true: i + 1,
        residual: 1,
        inference_ts: micros(`${DAY}T12:00:00Z`) + i,
        segment_keys: {},
      };
      // Spread over sub-partitions; the zero-padded names keep key order equal to i.
      objects.push([`dt=${DAY}/hour=${String(Math.floor(i / 100)).padStart(2, '0')}/p-${String(i).padStart(5, '0')}.avro`, avroFile(predictionType, [record], { codec: 'null' })]);
    }
    await putAll(root.store('predictions'), objects);
    proxy.clear();
    result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', '2026-03-03T00:00:00Z', '--read-ahead', '16', '--json', ...root.args]);
  });

  it('reads every object, through every listing page', async () => {
    const summary = expectDone(result);
    expect(summary).toMatchObject({ prediction_objects: OBJECTS, predictions_read: OBJECTS, predictions_kept: OBJECTS, labeled: OBJECTS });
    const listings = proxy.requests.filter((r) => r.method === 'GET' && r.query.get('list-type') === '2' && (r.query.get('prefix') ?? '').endsWith(`many-objects/predictions/dt=${DAY}/`));
    expect(listings.length).toBeGreaterThanOrEqual(2);
    expect(listings.slice(1).every((r) => r.query.has('continuation-token'))).toBe(true);

    const records = await readRecords<EnrichedRecord>(root.store('curated'), `stage=preliminary/dt=${DAY}/part-00000.avro`, enrichedType);
    expect(records.map((r) => r.prediction_id)).toEqual(Array.from({ length: OBJECTS }, (_, i) => `id-${i}`));
    const manifest = (await readManifest(root.store('curated'), `stage=preliminary/dt=${DAY}/_SUCCESS`))!;
    expect(manifest.inputs.filter((i) => i.dataset === 'predictions')).toHaveLength(OBJECTS);
  });
});

describe('a curated file larger than one S3 part', () => {
  const RECORDS = 12_000;
  /** ~1.6 KB per record, so the null-codec curated file is ~19 MiB: three 8 MiB parts. */
  const FEATURESET = `fs-${'abcdefgh'.repeat(200)}`;
  let pair: { s3: DatasetRoot; local: DatasetRoot };
  let s3Result: CliResult;
  let localResult: CliResult;

  beforeAll(async () => {
    pair = await roots('multipart');
    const files: Array<[string, Buffer]> = [];
    for (let f = 0; f < 4; f++) {
      const records = Array.from({ length: RECORDS / 4 }, (_, i): PredictionRecord => {
        const n = f * (RECORDS / 4) + i;
        return { prediction_id: `big-${n}`, model_name: 'basket', model_version: 'v7', feature_set_version: FEATURESET, y_pred: n / 7, y_true: null, residual: null, inference_ts: micros(`${DAY}T00:00:00Z`) + n * 1_000_000, segment_keys: { region: n % 3 === 0 ? 'eu' : 'us' } };
      });
      files.push([`dt=${DAY}/hour=${String(f).padStart(2, '0')}/p.avro`, avroFile(predictionType, records)]);
    }
    await Promise.all([putAll(pair.s3.store('predictions'), files), putAll(pair.local.store('predictions'), files)]);
    proxy.clear();
    s3Result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', '2026-03-03T00:00:00Z', '--codec', 'null', '--json', ...pair.s3.args]);
    localResult = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', '2026-03-03T00:00:00Z', '--codec', 'null', '--json', ...pair.local.args]);
  });

  it('uploads it in parts and s3rver stores it intact', async () => {
    expect(expectDone(s3Result)).toMatchObject({ predictions_kept: RECORDS, curated_files: 1 });
    expectDone(localResult);
    const key = `stage=preliminary/dt=${DAY}/part-00000.avro`;
    const objectPath = `/${bucket}/multipart/curated/${key}`;
    // Written under the run's staging prefix, then moved into place at commit (CopyObject).
    const stagedPrefix = `/${bucket}/multipart/curated/_staging/stage=preliminary/dt=${DAY}/`;
    const calls = proxy.requests.filter((r) => r.path.startsWith(stagedPrefix) && r.path.endsWith(`/${key}`));
    expect(proxy.requests.some((r) => r.path === objectPath && r.method === 'PUT')).toBe(true);
    expect(calls.some((r) => r.method === 'POST' && r.query.has('uploads'))).toBe(true);
    const parts = calls.filter((r) => r.method === 'PUT' && r.query.has('partNumber')).map((r) => Number(r.query.get('partNumber')));
    expect(parts.sort()).toEqual([1, 2, 3]);
    expect(calls.some((r) => r.method === 'POST' && r.query.has('uploadId'))).toBe(true);

    const store = pair.s3.store('curated');
    const manifest = (await readManifest(store, `stage=preliminary/dt=${DAY}/_SUCCESS`))!;
    expect(manifest.outputs).toEqual([{ key, size: expect.any(Number), records: RECORDS }]);
    expect(manifest.outputs[0]!.size).toBeGreaterThan(2 * 8 * MiB);
    expect((await store.head(key))!.size).toBe(manifest.outputs[0]!.size);
    const records = await readRecords<EnrichedRecord>(store, key, enrichedType);
    expect(records).toHaveLength(RECORDS);
    records.forEach((record, n) => {
      if (record.prediction_id !== `big-${n}` || record.featureset_version !== FEATURESET || record.y_pred !== n / 7 || record.segment_keys.region !== (n % 3 === 0 ? 'eu' : 'us')) {
        expect.fail(`record ${n} came back as ${JSON.stringify({ ...record, featureset_version: record.featureset_version.slice(0, 20) })}`);
      }
    });
    const [s3Bytes, localBytes] = await Promise.all([readBytes(store, key), readBytes(pair.local.store('curated'), key)]);
    expect(s3Bytes.equals(localBytes)).toBe(true);
  });
});
