/**
 * Schema resolution of input files against the job's reader types (SPEC §2, issue 3): files written
 * with any PredictionEvent version, or by producers with schemas of their own, resolve into the
 * latest reader schema; incompatible ones are refused naming the key, the field and both types.
 */
import { describe, expect, it } from 'vitest';
import { parseAvroType } from '../../src/avro/avro-types.js';
import { decodeContainer, readContainerHeader, resolveWriter } from '../../src/avro/container-reader.js';
import { labelType, loadSchemaVersion, predictionType, schemaVersions } from '../../src/avro/schemas.js';
import { chunksOf, encodeFile, failure, rawHeader, readAll, writeWithAvsc } from '../helpers/avro-helpers.js';

const KEY = 'predictions/dt=2026-01-01/hour=07/a.avro';
const timestampMicros = { type: 'long', logicalType: 'timestamp-micros' };
const predictionV1 = loadSchemaVersion('prediction', 1);
const predictionV2 = loadSchemaVersion('prediction', 2);

/** A PredictionEvent as a v1 producer writes it. */
function v1Record(i: number): Record<string, unknown> {
  return {
    prediction_id: `pred-${i}`,
    model_name: i % 2 === 0 ? 'churn' : 'ltv',
    model_version: `v${i % 3}`,
    featureset_version: `fs-${i % 4}`,
    y_pred: i * 1.25 - 3,
    y_true: i % 2 === 0 ? i * 1.5 : null,
    residual: i % 2 === 0 ? i * 0.25 + 3 : null,
    inference_ts: 1_767_225_600_000_000 + i * 1_000_003,
    segment_keys: { region: i % 2 === 0 ? 'eu' : 'us', device: 'ios' },
  };
}

/** What a v1 record reads as with the job's reader (v2): the renamed field under its new name, request_id null. */
function readFromV1(record: Record<string, unknown>): Record<string, unknown> {
  const { featureset_version: featureSetVersion, ...rest } = record;
  return { ...rest, feature_set_version: featureSetVersion, request_id: null };
}

/** A PredictionEvent as a v2 producer writes it. */
function v2Record(i: number): Record<string, unknown> {
  return { ...readFromV1(v1Record(i)), request_id: i % 3 === 0 ? null : `req-${i}` };
}

const base = v1Record(7);

/** A writer record schema with the given fields, named like an older producer might. */
function writerSchema(fields: unknown[], name = 'PredictionEvent', namespace = 'ml.monitoring'): unknown {
  return { type: 'record', name, namespace, fields };
}

/** The PredictionEvent v1 fields, with some replaced or dropped. */
function predictionFields(overrides: Record<string, unknown> = {}, drop: string[] = []): unknown[] {
  const fields: Record<string, unknown> = {
    prediction_id: 'string',
    model_name: 'string',
    model_version: 'string',
    featureset_version: 'string',
    y_pred: 'double',
    y_true: ['null', 'double'],
    residual: ['null', 'double'],
    inference_ts: timestampMicros,
    segment_keys: { type: 'map', values: 'string' },
    ...overrides,
  };
  return Object.entries(fields)
    .filter(([name]) => !drop.includes(name))
    .map(([name, type]) => ({ name, type }));
}

/** Writes records under `schema` with avsc's encoder and reads them back as PredictionEvents. */
async function roundTrip(schema: unknown, records: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
  const bytes = await writeWithAvsc(parseAvroType(schema), records);
  return (await readAll(bytes, predictionType, { uri: KEY })) as Record<string, unknown>[];
}

describe('PredictionEvent versions', () => {
  it('reads with the latest version, v2', () => {
    expect(schemaVersions.prediction.map((v) => v.version)).toEqual([1, 2]);
    expect(predictionType.schema()).toEqual(predictionV2.schema());
  });

  it('reads v1 files: featureset_version through its alias, request_id as its default', async () => {
    const records = Array.from({ length: 20 }, (_, i) => v1Record(i));
    const bytes = encodeFile(records, { type: predictionV1, blockBytes: 512 }).bytes;
    expect(await readAll(bytes, predictionType, { uri: KEY })).toEqual(records.map(readFromV1));
  });

  it('reads v2 files as written', async () => {
    const records = Array.from({ length: 20 }, (_, i) => v2Record(i));
    expect(await readAll(encodeFile(records, { type: predictionV2 }).bytes, predictionType, { uri: KEY })).toEqual(records);
  });

  it('reads a day mixing v1 and v2 files into one record shape', async () => {
    const fromV1 = await readAll(encodeFile([v1Record(1)], { type: predictionV1 }).bytes, predictionType);
    const fromV2 = await readAll(encodeFile([v2Record(2)], { type: predictionV2 }).bytes, predictionType);
    expect(Object.keys(fromV1[0] as object).sort()).toEqual(Object.keys(fromV2[0] as object).sort());
  });

  it('reads files of an unknown newer producer: extra fields of every kind are ignored', async () => {
    const v3 = {
      ...(predictionV2.schema() as object),
      fields: [
        { name: 'trace', type: { type: 'record', name: 'Trace', fields: [{ name: 'span', type: 'string' }, { name: 'sampled', type: 'boolean' }] } },
        ...(predictionV2.schema() as { fields: unknown[] }).fields,
        { name: 'features', type: { type: 'array', items: 'float' } },
        { name: 'tier', type: { type: 'enum', name: 'Tier', symbols: ['FREE', 'PRO'] } },
        { name: 'embedding', type: ['null', { type: 'fixed', name: 'Vec4', size: 16 }], default: null },
        { name: 'y_pred_interval', type: { type: 'map', values: 'double' }, default: {} },
      ],
    };
    const record = { ...v2Record(3), trace: { span: 's', sampled: true }, features: [1, 2.5], tier: 'PRO', embedding: Buffer.alloc(16, 1), y_pred_interval: { low: 1, high: 2 } };
    expect(await roundTrip(v3, [record])).toEqual([v2Record(3)]);
  });
});

describe('schema resolution against PredictionEvent', () => {
  it('ignores extra writer fields, wherever they are', async () => {
    const schema = writerSchema([
      { name: 'trace_id', type: 'string' },
      ...predictionFields(),
      { name: 'features', type: { type: 'array', items: 'double' } },
      { name: 'debug', type: { type: 'map', values: 'string' } },
    ]);
    const read = await roundTrip(schema, [{ ...base, trace_id: 'r', features: [1, 2, 3], debug: { a: 'b' } }]);
    expect(read).toEqual([readFromV1(base)]);
  });

  it('fills missing fields with their defaults', async () => {
    const schema = writerSchema(predictionFields({}, ['y_true', 'residual', 'segment_keys']));
    const [read] = await roundTrip(schema, [base]);
    expect(read).toEqual({ ...readFromV1(base), y_true: null, residual: null, segment_keys: {} });
  });

  it.each(['int', 'long', 'float'])('promotes a %s y_pred to double', async (type) => {
    const schema = writerSchema(predictionFields({ y_pred: type, y_true: ['null', type] }));
    const [read] = await roundTrip(schema, [{ ...base, y_pred: 42, y_true: 40 }]);
    expect(read).toMatchObject({ y_pred: 42, y_true: 40 });
  });

  it('promotes an int y_pred at the far end of its range exactly, and a float to its double value', async () => {
    const [big] = await roundTrip(writerSchema(predictionFields({ y_pred: 'int' })), [{ ...base, y_pred: 2 ** 31 - 1 }]);
    expect(big!['y_pred']).toBe(2 ** 31 - 1);
    const [float] = await roundTrip(writerSchema(predictionFields({ y_pred: 'float' })), [{ ...base, y_pred: 0.1 }]);
    expect(float!['y_pred']).toBe(Math.fround(0.1));
  });

  it('reads bytes written where the reader has a string', async () => {
    const [read] = await roundTrip(writerSchema(predictionFields({ model_name: 'bytes' })), [{ ...base, model_name: Buffer.from('churn') }]);
    expect(read!['model_name']).toBe('churn');
  });

  it('reads a plain long (or int) inference_ts as timestamp-micros', async () => {
    const [read] = await roundTrip(writerSchema(predictionFields({ inference_ts: 'long' })), [base]);
    expect(read!['inference_ts']).toBe(base['inference_ts']);
    const [small] = await roundTrip(writerSchema(predictionFields({ inference_ts: 'int' })), [{ ...base, inference_ts: 12345 }]);
    expect(small!['inference_ts']).toBe(12345);
  });

  it('accepts a different record name and namespace', async () => {
    const schema = writerSchema(predictionFields(), 'InferenceLog', 'com.acme.serving.v2');
    expect(await roundTrip(schema, [base])).toEqual([readFromV1(base)]);
    expect(await roundTrip({ ...(schema as object), namespace: undefined }, [base])).toEqual([readFromV1(base)]);
  });

  it('matches fields by name whatever their order', async () => {
    const schema = writerSchema([...predictionFields()].reverse());
    expect(await roundTrip(schema, [base, v1Record(8)])).toEqual([readFromV1(base), readFromV1(v1Record(8))]);
  });

  it('returns a resolver that works with the reader type itself', async () => {
    const schema = writerSchema(predictionFields({ y_pred: 'float' }), 'Other', 'x');
    const writerType = parseAvroType(schema);
    const header = await readContainerHeader(chunksOf(await writeWithAvsc(writerType, [base])), KEY);
    const resolver = resolveWriter(predictionType, header, KEY);
    const decoded = predictionType.decode(writerType.toBuffer({ ...base, y_pred: 1.5 }), 0, resolver);
    expect(decoded.value).toMatchObject({ prediction_id: base['prediction_id'], feature_set_version: base['featureset_version'], y_pred: 1.5 });
  });

  it('refuses y_pred as string, naming the key, the field and both types, before any record', async () => {
    const schema = writerSchema(predictionFields({ y_pred: 'string' }));
    const bytes = await writeWithAvsc(parseAvroType(schema), [{ ...base, y_pred: 'high' }]);
    let headers = 0;
    const records: unknown[] = [];
    const error = await failure(async () => {
      for await (const block of decodeContainer(chunksOf(bytes), { uri: KEY, readerType: predictionType, onHeader: () => headers++ })) {
        records.push(...block);
      }
    });
    expect(records).toEqual([]);
    expect(headers).toBe(1);
    expect(error.code).toBe('E_SCHEMA_INCOMPATIBLE');
    expect(error.context).toEqual({ uri: KEY, field: 'y_pred' });
    expect(error.message).toContain(
      `object "${KEY}": writer schema is incompatible with ml.monitoring.PredictionEvent: ` +
        'field "y_pred" is "string" in the writer, expected "double" (a writer\'s string cannot be read as double (a reader double accepts double, int, long, float))',
    );
  });

  it('names a nullable field and the writer branch no reader branch reads', async () => {
    const header = await readContainerHeader(
      chunksOf(encodeFile([], { type: parseAvroType(writerSchema(predictionFields({ residual: ['null', 'string'] }))) }).bytes),
      KEY,
    );
    const error = await failure(async () => resolveWriter(predictionType, header, KEY));
    expect(error.code).toBe('E_SCHEMA_INCOMPATIBLE');
    expect(error.context?.['field']).toBe('residual');
    expect(error.message).toContain('field "residual" is "string" in the writer, expected ["null","double"] (the reader\'s union has no branch that can read the writer\'s branch 1 (string)');
  });

  it.each([
    ['a required field', 'prediction_id', 'prediction_id'],
    ['both the new and the old name of the renamed field', 'featureset_version', 'feature_set_version'],
  ])('refuses a writer without %s, naming it', async (_, dropped, field) => {
    const header = await readContainerHeader(
      chunksOf(encodeFile([], { type: parseAvroType(writerSchema(predictionFields({}, [dropped]))) }).bytes),
      KEY,
    );
    const error = await failure(async () => resolveWriter(predictionType, header, KEY));
    expect(error.code).toBe('E_SCHEMA_INCOMPATIBLE');
    expect(error.context).toEqual({ uri: KEY, field });
    expect(error.message).toContain(`field "${field}" is missing in the writer and has no default in the reader`);
  });

  it('refuses inference_ts as timestamp-millis, which resolution alone would read as micros', async () => {
    // A header written by hand, as a Java or Python producer would, with the logicalType in the schema JSON.
    const schema = writerSchema(predictionFields({ inference_ts: { type: 'long', logicalType: 'timestamp-millis' } }), 'MillisProducer');
    const header = await readContainerHeader(chunksOf(rawHeader({ 'avro.schema': JSON.stringify(schema), 'avro.codec': 'null' })), KEY);
    const error = await failure(async () => resolveWriter(predictionType, header, KEY));
    expect(error.code).toBe('E_SCHEMA_INCOMPATIBLE');
    expect(error.context).toEqual({ uri: KEY, field: 'inference_ts' });
    expect(error.message).toContain('field "inference_ts" is timestamp-millis in the writer, expected timestamp-micros');
  });

  // The Parsing Canonical Form drops logicalType, so a millis writer can share its fingerprint with a
  // plain-long writer resolved before, or with the reader itself: neither shortcut may skip the unit check.
  it('refuses timestamp-millis after a writer with the same canonical form was resolved', async () => {
    const fields = predictionFields({ inference_ts: 'long' });
    await roundTrip(writerSchema(fields, 'CachedProducer'), [base]);
    const millis = writerSchema(predictionFields({ inference_ts: { type: 'long', logicalType: 'timestamp-millis' } }), 'CachedProducer');
    const header = await readContainerHeader(chunksOf(rawHeader({ 'avro.schema': JSON.stringify(millis), 'avro.codec': 'null' })), KEY);
    const error = await failure(async () => resolveWriter(predictionType, header, KEY));
    expect(error).toMatchObject({ code: 'E_SCHEMA_INCOMPATIBLE', context: { uri: KEY, field: 'inference_ts' } });
  });

  it('refuses timestamp-millis in a file whose schema is the reader schema but for the unit', async () => {
    const millis = JSON.parse(JSON.stringify(predictionV2.schema({ exportAttrs: true }))) as { fields: Array<{ name: string; type: unknown }> };
    millis.fields.find((f) => f.name === 'inference_ts')!.type = { type: 'long', logicalType: 'timestamp-millis' };
    const records = encodeFile([v2Record(1)], { type: predictionV2, codec: 'null' }).bytes;
    // Same records, header swapped for the millis schema (a producer writing v2 with the wrong unit).
    const body = records.subarray(encodeFile([], { type: predictionV2, codec: 'null' }).headerBytes);
    const bytes = Buffer.concat([rawHeader({ 'avro.schema': JSON.stringify(millis), 'avro.codec': 'null' }, encodeFile([], { type: predictionV2, codec: 'null' }).bytes.subarray(-16)), body]);
    const error = await failure(async () => readAll(bytes, predictionType, { uri: KEY }));
    expect(error).toMatchObject({ code: 'E_SCHEMA_INCOMPATIBLE', context: { uri: KEY, field: 'inference_ts' } });
  });

  it('refuses a writer schema that is not a record', async () => {
    const header = await readContainerHeader(chunksOf(encodeFile([], { type: parseAvroType('string') }).bytes), KEY);
    const error = await failure(async () => resolveWriter(predictionType, header, KEY));
    expect(error.code).toBe('E_SCHEMA_INCOMPATIBLE');
    expect(error.message).toContain('the writer schema is "string", expected a record');
  });

  it('reads LabelEvents written with extra fields and an int-promoted y_true', async () => {
    const schema = {
      type: 'record',
      name: 'Label',
      fields: [
        { name: 'label_ts', type: 'long' },
        { name: 'source', type: 'string' },
        { name: 'y_true', type: 'int' },
        { name: 'prediction_id', type: 'string' },
      ],
    };
    const bytes = await writeWithAvsc(parseAvroType(schema), [{ label_ts: 5, source: 's', y_true: 3, prediction_id: 'p' }]);
    expect(await readAll(bytes, labelType)).toEqual([{ prediction_id: 'p', y_true: 3, label_ts: 5 }]);
  });
});
