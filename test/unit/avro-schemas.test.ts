import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  enrichedType,
  labelType,
  listSchemaVersions,
  loadSchemaVersion,
  metricsType,
  predictionType,
  schemaFingerprint,
  schemaVersions,
  schemasDir,
  type SchemaName,
} from '../../src/avro/schemas.js';
import { checkAgainstHistory, labelledSchema } from '../../src/schema/check.js';

interface FieldSchema {
  name: string;
  type: unknown;
  default?: unknown;
  aliases?: string[];
  doc?: string;
}

function fieldsOf(relativePath: string): FieldSchema[] {
  return (JSON.parse(fs.readFileSync(path.join(schemasDir, relativePath), 'utf8')) as { fields: FieldSchema[] }).fields;
}

const micros = { type: 'long', logicalType: 'timestamp-micros' };
const nullableDouble = ['null', 'double'];

/** PredictionEvent v1, which the curated EnrichedPrediction keeps (SPEC §4). */
const predictionFields: [string, unknown][] = [
  ['prediction_id', 'string'],
  ['model_name', 'string'],
  ['model_version', 'string'],
  ['featureset_version', 'string'],
  ['y_pred', 'double'],
  ['y_true', nullableDouble],
  ['residual', nullableDouble],
  ['inference_ts', micros],
  ['segment_keys', { type: 'map', values: 'string' }],
];

const schemaNames: SchemaName[] = ['prediction', 'label', 'enriched', 'metrics'];
const everyVersionFile = schemaNames.flatMap((name) => schemaVersions[name].map((v) => `${name}/v${v.version}.avsc`));

describe('schemas/', () => {
  it('keeps every version of each schema, oldest first', () => {
    expect(Object.fromEntries(schemaNames.map((name) => [name, schemaVersions[name].map((v) => v.version)]))).toEqual({
      prediction: [1, 2],
      label: [1],
      enriched: [1],
      metrics: [1, 2],
    });
    expect(schemaVersions.prediction.map((v) => v.file)).toEqual([1, 2].map((n) => path.join(schemasDir, 'prediction', `v${n}.avsc`)));
  });

  it.each(everyVersionFile)('%s documents every field', (file) => {
    const fields = fieldsOf(file);
    expect(fields.length).toBeGreaterThan(0);
    for (const field of fields) expect(field.doc, field.name).toMatch(/\S{3}/);
  });

  it('PredictionEvent v1 is the original SPEC §2 table', () => {
    expect(fieldsOf('prediction/v1.avsc').map((f) => [f.name, f.type])).toEqual(predictionFields);
    const defaults = Object.fromEntries(fieldsOf('prediction/v1.avsc').filter((f) => 'default' in f).map((f) => [f.name, f.default]));
    expect(defaults).toEqual({ y_true: null, residual: null, segment_keys: {} });
  });

  it('PredictionEvent v2 renames featureset_version with an alias and adds request_id with a default; the job reads with it', () => {
    const fields = fieldsOf('prediction/v2.avsc');
    expect(fields.map((f) => [f.name, f.type])).toEqual([
      ...predictionFields.map(([name, type]): [string, unknown] => [name === 'featureset_version' ? 'feature_set_version' : name, type]),
      ['request_id', ['null', 'string']],
    ]);
    expect(fields.find((f) => f.name === 'feature_set_version')?.aliases).toEqual(['featureset_version']);
    const defaults = Object.fromEntries(fields.filter((f) => 'default' in f).map((f) => [f.name, f.default]));
    expect(defaults).toEqual({ y_true: null, residual: null, segment_keys: {}, request_id: null });
    expect(predictionType.name).toBe('ml.monitoring.PredictionEvent');
    expect(schemaFingerprint(predictionType)).toBe(schemaFingerprint(loadSchemaVersion('prediction', 2)));
  });

  it.each(schemaNames)('the latest %s schema reads data written with every version (BACKWARD_TRANSITIVE)', (name) => {
    const versions = schemaVersions[name].map((v) => labelledSchema(JSON.parse(fs.readFileSync(v.file, 'utf8')), `v${v.version}`));
    const report = checkAgainstHistory(versions.at(-1)!, versions.slice(0, -1), 'BACKWARD_TRANSITIVE');
    expect(report.checks).toHaveLength(versions.length - 1);
    expect(report.compatible, JSON.stringify(report.checks)).toBe(true);
  });

  it('orders versions by number, ignores other files and refuses a version given twice', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-schema-versions-'));
    try {
      for (const name of ['v10.avsc', 'v9.avsc', 'v1.avsc', 'v2.avsc', 'README.md', 'v3.json', 'draft-v4.avsc']) fs.writeFileSync(path.join(dir, name), '{}');
      expect(listSchemaVersions(dir).map((v) => [v.version, path.basename(v.file)])).toEqual([
        [1, 'v1.avsc'],
        [2, 'v2.avsc'],
        [9, 'v9.avsc'],
        [10, 'v10.avsc'],
      ]);
      fs.writeFileSync(path.join(dir, 'v02.avsc'), '{}');
      expect(() => listSchemaVersions(dir)).toThrow(expect.objectContaining({ code: 'E_USAGE', message: expect.stringContaining('holds version 2 twice (v02.avsc and v2.avsc)') }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to load a version the package does not have', () => {
    expect(() => loadSchemaVersion('label', 7)).toThrow(expect.objectContaining({ code: 'E_INTERNAL', message: 'schema label has no version 7; it has v1' }));
  });

  it('LabelEvent is SPEC §2', () => {
    expect(labelType.name).toBe('ml.monitoring.LabelEvent');
    expect(fieldsOf('label/v1.avsc').map((f) => [f.name, f.type])).toEqual([
      ['prediction_id', 'string'],
      ['y_true', 'double'],
      ['label_ts', micros],
    ]);
  });

  it('EnrichedPrediction is PredictionEvent v1 plus the join fields of SPEC §4 (input renames do not rename output columns)', () => {
    expect(enrichedType.name).toBe('ml.monitoring.EnrichedPrediction');
    const fields = fieldsOf('enriched/v1.avsc');
    expect(fields.map((f) => [f.name, f.type])).toEqual([
      ...predictionFields,
      ['label_ts', ['null', micros]],
      ['label_delay_seconds', nullableDouble],
      ['label_source', ['null', 'string']],
    ]);
    for (const field of fields.slice(-3)) expect(field.default).toBeNull();
  });

  it('ModelMetrics has the fields of SPEC §5 in order, nullable ones defaulting to null', () => {
    expect(metricsType.name).toBe('ml.monitoring.ModelMetrics');
    const fields = fieldsOf('metrics/v1.avsc');
    const typeOf = (name: string): unknown => fields.find((f) => f.name === name)?.type;
    expect(fields.map((f) => f.name)).toEqual([
      'window_start_ts', 'window_end_ts', 'stage', 'model_name', 'model_version', 'slice_keys', 'count', 'labeled_count',
      'missing_label_rate', 'mse', 'rmse', 'mae', 'mean_error', 'r2', 'mape', 'mape_count',
      'mse_ci_low', 'mse_ci_high', 'rmse_ci_low', 'rmse_ci_high', 'mae_ci_low', 'mae_ci_high',
      'label_delay_p50_s', 'label_delay_p95_s', 'label_delay_max_s',
      'invalid_count', 'duplicate_prediction_count', 'duplicate_label_count', 'negative_delay_count', 'misplaced_count',
      'labels_through_ts', 'sum_error', 'sum_sq_error', 'sum_abs_error', 'sum_quad_error', 'sum_ape', 'sum_y_true', 'sum_sq_y_true',
    ]);
    expect(typeOf('stage')).toMatchObject({ type: 'enum', name: 'Stage', symbols: ['PRELIMINARY', 'FINAL'] });
    expect(typeOf('window_start_ts')).toEqual(micros);
    expect(typeOf('labels_through_ts')).toEqual(micros);
    expect(typeOf('count')).toBe('long');
    expect(typeOf('sum_quad_error')).toBe('double');
    for (const field of fields.filter((f) => Array.isArray(f.type))) {
      expect(field.type, field.name).toEqual(nullableDouble);
      expect(field.default, field.name).toBeNull();
    }
  });

  it('keeps timestamp-micros as plain numbers and unions unwrapped', () => {
    const record = {
      prediction_id: 'p', model_name: 'm', model_version: 'v', featureset_version: 'f', y_pred: 1, y_true: 2.5,
      residual: null, inference_ts: 1_767_225_600_123_456, segment_keys: { region: 'eu' },
      label_ts: 1_767_225_700_000_000, label_delay_seconds: 99.876544, label_source: 'labels',
    };
    const decoded = enrichedType.fromBuffer(enrichedType.toBuffer(record)) as Record<string, unknown>;
    expect(decoded).toEqual(record);
    expect(typeof decoded['inference_ts']).toBe('number');
    expect(typeof decoded['label_ts']).toBe('number');
    expect(JSON.stringify(enrichedType.schema({ exportAttrs: true }))).toContain('"logicalType":"timestamp-micros"');
  });

  it('fingerprints the Parsing Canonical Form with SHA-256', () => {
    const canonical = JSON.stringify(labelType.schema());
    expect(canonical).toBe(
      '{"name":"ml.monitoring.LabelEvent","type":"record","fields":[{"name":"prediction_id","type":"string"},' +
        '{"name":"y_true","type":"double"},{"name":"label_ts","type":"long"}]}',
    );
    expect(schemaFingerprint(labelType)).toBe(createHash('sha256').update(canonical).digest('hex'));
    expect(schemaFingerprint(predictionType)).toMatch(/^[0-9a-f]{64}$/);
    expect(schemaFingerprint(predictionType)).not.toBe(schemaFingerprint(enrichedType));
  });
});
