/**
 * The partition step of the spill (src/scale/partition.ts) on real Avro files in a local store:
 * every record reaches the bucket of its id, in input order, re-encoded with the reader schema;
 * labels past labels-through are dropped; the bucket files written by the worker pool and by the
 * main thread are byte-identical; a bucket re-partitioned at the next hash level splits into
 * sub-buckets that hold exactly its records. The pool runs the compiled worker (npm run build).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readContainerHeader } from '../../src/avro/container-reader.js';
import { labelType, predictionType } from '../../src/avro/schemas.js';
import type { ReadSetup } from '../../src/pipeline/join-steps.js';
import { StringBucketer } from '../../src/scale/bucket-hash.js';
import { type BucketSide, type PartitionResult, partitionInputs } from '../../src/scale/partition.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import type { ObjectInfo, ObjectStore } from '../../src/storage/types.js';
import { WorkerPool } from '../../src/workers/pool.js';
import { encodeFile, predictionV1Type, readAll, samplePrediction } from '../helpers/avro-helpers.js';

const BUCKETS = 7;
const LABELS_THROUGH = 1_767_400_000_000_000;
let folder: string;
let inputs: LocalObjectStore;
let pool: WorkerPool;
const predictionObjects: ObjectInfo[] = [];
const labelObjects: ObjectInfo[] = [];
const predictionRecords: Array<Record<string, unknown>> = [];
const labelRecords: Array<Record<string, unknown>> = [];

function label(i: number, ts: number): Record<string, unknown> {
  return { prediction_id: samplePrediction(i).prediction_id as string, y_true: i * 0.5, label_ts: ts };
}

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'mm-spill-partition-'));
  inputs = new LocalObjectStore(join(folder, 'inputs'));
  // Three prediction objects (v1 writer, read through the alias) with ids repeated across them.
  for (let part = 0; part < 3; part++) {
    const records = Array.from({ length: 700 }, (_, k) => samplePrediction(part * 500 + k));
    predictionRecords.push(...records);
    const key = `predictions/dt=2026-01-01/part-${part}.avro`;
    await inputs.write(key, encodeFile(records, { type: predictionV1Type, codec: 'deflate', blockBytes: 4096 }).bytes);
  }
  // Labels: several per id, ties on label_ts, some past labels-through.
  for (let part = 0; part < 2; part++) {
    const records = Array.from({ length: 900 }, (_, k) => label((k * 7 + part) % 1500, LABELS_THROUGH - 5_000_000 + (k % 11) * 1_000_000));
    labelRecords.push(...records);
    await inputs.write(`labels/dt=2026-01-01/part-${part}.avro`, encodeFile(records, { type: labelType, codec: 'snappy', blockBytes: 2048 }).bytes);
  }
  predictionObjects.push(...(await inputs.list('predictions/')));
  labelObjects.push(...(await inputs.list('labels/')));
  pool = new WorkerPool(2);
});

afterAll(async () => {
  await pool?.close();
  await rm(folder, { recursive: true, force: true });
});

function setup(store: ObjectStore, objects: readonly ObjectInfo[], withPool: boolean): ReadSetup {
  return { store, objects, readAhead: 2, hooks: { limits: {} }, pool: withPool ? pool : undefined, signal: undefined, onRecords: () => undefined };
}

async function sideRecords(store: ObjectStore, side: BucketSide, type: typeof labelType): Promise<unknown[]> {
  const records: unknown[] = [];
  for (const info of side.objects) {
    const stream = await store.read(info.key);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    records.push(...(await readAll(Buffer.concat(chunks), type)));
  }
  return records;
}

async function fileBytes(store: ObjectStore, result: PartitionResult): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const bucket of result.buckets) {
    for (const info of [...bucket.labels.objects, ...bucket.predictions.objects]) out.push((await store.readSmall(info.key))!);
  }
  return out;
}

describe('partitionInputs', () => {
  const results = new Map<string, { store: LocalObjectStore; result: PartitionResult }>();

  for (const withPool of [false, true]) {
    it(`puts every record in its id's bucket in input order (${withPool ? '--workers 2' : '--workers 0'})`, async () => {
      const store = new LocalObjectStore(join(folder, withPool ? 'pool' : 'main'));
      const result = await partitionInputs(
        { labels: setup(inputs, labelObjects, withPool), predictions: setup(inputs, predictionObjects, withPool) },
        { store, prefix: 'day/', buckets: BUCKETS, level: 0, labelsThrough: LABELS_THROUGH },
      );
      results.set(String(withPool), { store, result });
      expect(result.labelsRead).toBe(labelRecords.length);
      expect(result.predictionsRead).toBe(predictionRecords.length);
      const bucketer = new StringBucketer(BUCKETS, 0);
      const usableLabels = labelRecords.filter((l) => (l.label_ts as number) <= LABELS_THROUGH);
      expect(usableLabels.length).toBeLessThan(labelRecords.length);
      expect(result.buckets).toHaveLength(BUCKETS);
      let bytes = 0;
      for (const [b, bucket] of result.buckets.entries()) {
        expect(bucket.prefix).toBe(`day/b${String(b).padStart(5, '0')}/`);
        const wantLabels = usableLabels.filter((l) => bucketer.of(l.prediction_id as string) === b);
        const gotLabels = await sideRecords(store, bucket.labels, labelType);
        expect(bucket.labels.records).toBe(wantLabels.length);
        expect(gotLabels.map((l) => ({ ...(l as object) }))).toEqual(wantLabels);
        const wantPredictions = predictionRecords.filter((p) => bucketer.of(p.prediction_id as string) === b);
        const gotPredictions = (await sideRecords(store, bucket.predictions, predictionType)) as Array<Record<string, unknown>>;
        expect(bucket.predictions.records).toBe(wantPredictions.length);
        expect(gotPredictions.map((p) => [p.prediction_id, p.y_pred, p.feature_set_version, p.request_id])).toEqual(wantPredictions.map((p) => [p.prediction_id, p.y_pred, p.featureset_version, null]));
        for (const info of [...bucket.labels.objects, ...bucket.predictions.objects]) {
          const header = await readContainerHeader(await store.read(info.key), store.uriOf(info.key));
          expect(header.codec).toBe('snappy');
          bytes += info.size;
        }
      }
      expect(result.bytes).toBe(bytes);
    });
  }

  it('writes the same bucket files on the pool and on the main thread', async () => {
    const main = results.get('false')!;
    const pooled = results.get('true')!;
    expect(await fileBytes(pooled.store, pooled.result)).toEqual(await fileBytes(main.store, main.result));
  });

  it('re-partitions one bucket at the next level into sub-buckets that hold exactly its records', async () => {
    const { store, result } = results.get('false')!;
    const bucket = result.buckets[3]!;
    const sub = await partitionInputs(
      { labels: setup(store, bucket.labels.objects, true), predictions: setup(store, bucket.predictions.objects, true) },
      { store, prefix: `${bucket.prefix}L1/`, buckets: 5, level: 1, labelsThrough: LABELS_THROUGH },
    );
    expect(sub.buckets.reduce((n, s) => n + s.predictions.records, 0)).toBe(bucket.predictions.records);
    expect(sub.buckets.reduce((n, s) => n + s.labels.records, 0)).toBe(bucket.labels.records);
    // A new hash: the bucket's ids spread over several sub-buckets, each id in one.
    expect(sub.buckets.filter((s) => s.predictions.records > 0).length).toBeGreaterThan(2);
    const all = (await sideRecords(store, bucket.predictions, predictionType)) as Array<Record<string, unknown>>;
    const level1 = new StringBucketer(5, 1);
    for (const [s, part] of sub.buckets.entries()) {
      const got = (await sideRecords(store, part.predictions, predictionType)) as Array<Record<string, unknown>>;
      expect(got).toEqual(all.filter((p) => level1.of(p.prediction_id as string) === s));
    }
  });
});
