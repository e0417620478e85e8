/**
 * The schemas of SPEC §2, §4 and §5, loaded from the package's `schemas/` folder (the .avsc files are
 * the contract; this module only parses them). Types are parsed with `parseAvroType`, so unions are
 * plain values and timestamp-micros fields plain numbers of microseconds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Type } from 'avsc';
import { ModelMetricsError } from '../errors.js';
import { parseAvroType } from './avro-types.js';

/**
 * The package root: the nearest folder above this module holding package.json. This file runs as
 * src/avro/schemas.ts under vitest and as dist/src/avro/schemas.js once built, so no fixed depth works.
 */
function findPackageRoot(): string {
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) {
      throw new ModelMetricsError('E_INTERNAL', `no package.json above ${start}: cannot locate the schemas/ folder`, {
        operation: 'load schemas',
      });
    }
  }
}

/** Folder holding the .avsc files. */
export const schemasDir = path.join(findPackageRoot(), 'schemas');

/** Reads and parses one schema file, e.g. `prediction/v1.avsc`. */
function loadSchema(relativePath: string): Type {
  const file = path.join(schemasDir, relativePath);
  try {
    return parseAvroType(JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch (error) {
    throw new ModelMetricsError('E_INTERNAL', `schema ${file} cannot be loaded: ${String(error)}`, {
      operation: 'load schemas',
    }, { cause: error });
  }
}

/** ml.monitoring.PredictionEvent (SPEC §2): reader type of the predictions dataset. */
export const predictionType: Type = loadSchema('prediction/v1.avsc');

/** ml.monitoring.LabelEvent (SPEC §2): reader type of the labels dataset. */
export const labelType: Type = loadSchema('label/v1.avsc');

/** ml.monitoring.EnrichedPrediction (SPEC §4): writer type of the curated dataset. */
export const enrichedType: Type = loadSchema('enriched/v1.avsc');

/** ml.monitoring.ModelMetrics (SPEC §5): writer type of the metrics dataset. */
export const metricsType: Type = loadSchema('metrics/v1.avsc');

/** Hex SHA-256 of the type's Parsing Canonical Form (Avro 1.11 "Schema Fingerprints"). */
export function schemaFingerprint(type: Type): string {
  return type.fingerprint('sha256').toString('hex');
}
