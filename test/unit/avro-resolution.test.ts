import { describe, expect, it } from 'vitest';
import { parseAvroType } from '../../src/avro/avro-types.js';
import { decodeContainer, readContainerHeader, resolveWriter } from '../../src/avro/container-reader.js';
import { labelType, predictionType } from '../../src/avro/schemas.js';
import { chunksOf, encodeFile, failure, rawHeader, readAll, samplePrediction, writeWithAvsc } from './avro-helpers.js';

const KEY = 'predictions/dt=2026-01-01/hour=07/a.avro';
const timestampMicros = { type: 'long', logicalType: 'timestamp-micros' };

/** A writer record schema with the given fields, named like an older producer might. */
function writerSchema(fields: unknown[], name = 'PredictionEvent', namespace = 'ml.monitoring'): unknown {
  return { type: 'record', name, namespace, fields };
}

/** The PredictionEvent fields, with some replaced or dropped. */
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
  return (await readAll(bytes, predictionType, { key: KEY })) as Record<string, unknown>[];
}

const base = samplePrediction(7);

describe('schema resolution against PredictionEvent', () => {
  it('ignores extra writer fields, wherever they are', async () => {
    const schema = writerSchema([
      { name: 'request_id', type: 'string' },
      ...predictionFields(),
      { name: 'features', type: { type: 'array', items: 'double' } },
      { name: 'debug', type: { type: 'map', values: 'string' } },
    ]);
    const read = await roundTrip(schema, [{ ...base, request_id: 'r', features: [1, 2, 3], debug: { a: 'b' } }]);
    expect(read).toEqual([base]);
  });

  it('fills missing fields with their defaults', async () => {
    const schema = writerSchema(predictionFields({}, ['y_true', 'residual', 'segment_keys']));
    const [read] = await roundTrip(schema, [base]);
    expect(read).toEqual({ ...base, y_true: null, residual: null, segment_keys: {} });
  });

  it.each(['int', 'long', 'float'])('promotes a %s y_pred to double', async (type) => {
    const schema = writerSchema(predictionFields({ y_pred: type, y_true: ['null', type] }));
    const [read] = await roundTrip(schema, [{ ...base, y_pred: 42, y_true: 40 }]);
    expect(read).toMatchObject({ y_pred: 42, y_true: 40 });
  });

  it('reads a plain long (or int) inference_ts as timestamp-micros', async () => {
    const [read] = await roundTrip(writerSchema(predictionFields({ inference_ts: 'long' })), [base]);
    expect(read!['inference_ts']).toBe(base['inference_ts']);
    const [small] = await roundTrip(writerSchema(predictionFields({ inference_ts: 'int' })), [{ ...base, inference_ts: 12345 }]);
    expect(small!['inference_ts']).toBe(12345);
  });

  it('accepts a different record name and namespace', async () => {
    const schema = writerSchema(predictionFields(), 'InferenceLog', 'com.acme.serving.v2');
    expect(await roundTrip(schema, [base])).toEqual([base]);
    expect(await roundTrip({ ...(schema as object), namespace: undefined }, [base])).toEqual([base]);
  });

  it('matches fields by name whatever their order', async () => {
    const schema = writerSchema([...predictionFields()].reverse());
    expect(await roundTrip(schema, [base, samplePrediction(8)])).toEqual([base, samplePrediction(8)]);
  });

  it('returns a resolver that works with the reader type itself', async () => {
    const schema = writerSchema(predictionFields({ y_pred: 'float' }), 'Other', 'x');
    const writerType = parseAvroType(schema);
    const header = await readContainerHeader(chunksOf(await writeWithAvsc(writerType, [base])), KEY);
    const resolver = resolveWriter(predictionType, header, KEY);
    const decoded = predictionType.decode(writerType.toBuffer({ ...base, y_pred: 1.5 }), 0, resolver);
    expect(decoded.value).toMatchObject({ prediction_id: base['prediction_id'], y_pred: 1.5 });
  });

  it('refuses y_pred as string, naming the key, the field and both types, before any record', async () => {
    const schema = writerSchema(predictionFields({ y_pred: 'string' }));
    const bytes = await writeWithAvsc(parseAvroType(schema), [{ ...base, y_pred: 'high' }]);
    let headers = 0;
    const records: unknown[] = [];
    const error = await failure(async () => {
      for await (const block of decodeContainer(chunksOf(bytes), { key: KEY, readerType: predictionType, onHeader: () => headers++ })) {
        records.push(...block);
      }
    });
    expect(records).toEqual([]);
    expect(headers).toBe(1);
    expect(error.code).toBe('E_SCHEMA_INCOMPATIBLE');
    expect(error.context).toEqual({ key: KEY, field: 'y_pred' });
    expect(error.message).toContain(
      `object "${KEY}": writer schema is incompatible with ml.monitoring.PredictionEvent: ` +
        'field "y_pred" is "string" in the writer, expected "double" (or a type that promotes to it: int, long, float)',
    );
  });

  it('names a nullable field with the promotions of its branch', async () => {
    const header = await readContainerHeader(
      chunksOf(encodeFile([], { type: parseAvroType(writerSchema(predictionFields({ residual: ['null', 'string'] }))) }).bytes),
      KEY,
    );
    const error = await failure(async () => resolveWriter(predictionType, header, KEY));
    expect(error.code).toBe('E_SCHEMA_INCOMPATIBLE');
    expect(error.context?.['field']).toBe('residual');
    expect(error.message).toContain('field "residual" is ["null","string"] in the writer, expected ["null","double"] (or a type that promotes to double: int, long, float)');
  });

  it('refuses a writer without a required field, naming it', async () => {
    const header = await readContainerHeader(
      chunksOf(encodeFile([], { type: parseAvroType(writerSchema(predictionFields({}, ['prediction_id']))) }).bytes),
      KEY,
    );
    const error = await failure(async () => resolveWriter(predictionType, header, KEY));
    expect(error.code).toBe('E_SCHEMA_INCOMPATIBLE');
    expect(error.context).toEqual({ key: KEY, field: 'prediction_id' });
    expect(error.message).toContain('field "prediction_id" is missing in the writer and has no default in the reader');
  });

  it('refuses inference_ts as timestamp-millis, which resolution alone would read as micros', async () => {
    // A header written by hand, as a Java or Python producer would, with the logicalType in the schema JSON.
    const schema = writerSchema(predictionFields({ inference_ts: { type: 'long', logicalType: 'timestamp-millis' } }));
    const header = await readContainerHeader(chunksOf(rawHeader({ 'avro.schema': JSON.stringify(schema), 'avro.codec': 'null' })), KEY);
    const error = await failure(async () => resolveWriter(predictionType, header, KEY));
    expect(error.code).toBe('E_SCHEMA_INCOMPATIBLE');
    expect(error.context).toEqual({ key: KEY, field: 'inference_ts' });
    expect(error.message).toContain('field "inference_ts" is timestamp-millis in the writer, expected timestamp-micros');
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
