/**
 * The schemas of SPEC §2, §4 and §5, loaded from the package's `schemas/` folder (the .avsc files are
 * the contract; this module only parses them). Each schema keeps every version, `schemas/<name>/vN.avsc`;
 * the latest is the one the job reads and writes with (issue 3, schema evolution). Types are parsed
 * with `parseAvroType`, so unions are plain values and timestamp-micros fields plain numbers of microseconds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Type } from 'avsc';
import { ModelMetricsError, UsageError } from '../errors.js';
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

/** One version of a schema: the file `vN.avsc` of its folder. */
export interface SchemaVersionFile {
  /** N of `vN.avsc`. */
  version: number;
  /** Absolute path of the file. */
  file: string;
}

/** `vN.avsc`: the one naming scheme of a schema's versions (issue 3, schema evolution). */
const VERSION_FILE = /^v(\d+)\.avsc$/;

/**
 * The `vN.avsc` files of a folder, oldest first: ordered by N as a number, so v10 follows v9.
 * Other files are not versions and are left out. Two files with one N (v2.avsc, v02.avsc) are refused.
 */
export function listSchemaVersions(dir: string): SchemaVersionFile[] {
  const versions: SchemaVersionFile[] = [];
  for (const name of fs.readdirSync(dir)) {
    const match = VERSION_FILE.exec(name);
    if (match === null) continue;
    versions.push({ version: Number(match[1]), file: path.join(dir, name) });
  }
  versions.sort((a, b) => a.version - b.version || (a.file < b.file ? -1 : 1));
  for (let i = 1; i < versions.length; i++) {
    if (versions[i]!.version === versions[i - 1]!.version) {
      throw new UsageError(
        `schema folder ${dir} holds version ${versions[i]!.version} twice (${path.basename(versions[i - 1]!.file)} and ${path.basename(versions[i]!.file)}); keep one`,
        { uri: dir },
      );
    }
  }
  return versions;
}

/** The schemas of the package, each a folder `schemas/<name>/` of versions. */
export type SchemaName = 'prediction' | 'label' | 'enriched' | 'metrics' | 'alert';

function packageVersions(name: SchemaName): readonly SchemaVersionFile[] {
  const dir = path.join(schemasDir, name);
  let versions: SchemaVersionFile[];
  try {
    versions = listSchemaVersions(dir);
  } catch (error) {
    throw new ModelMetricsError('E_INTERNAL', `schema folder ${dir} cannot be listed: ${String(error)}`, { operation: 'load schemas' }, { cause: error });
  }
  if (versions.length === 0) {
    throw new ModelMetricsError('E_INTERNAL', `schema folder ${dir} holds no vN.avsc file`, { operation: 'load schemas' });
  }
  return Object.freeze(versions);
}

/** Every version of each package schema, oldest first; data written with any of them stays readable. */
export const schemaVersions: Readonly<Record<SchemaName, readonly SchemaVersionFile[]>> = Object.freeze({
  prediction: packageVersions('prediction'),
  label: packageVersions('label'),
  enriched: packageVersions('enriched'),
  metrics: packageVersions('metrics'),
  alert: packageVersions('alert'),
});

/** Reads and parses one schema file. */
function loadSchema(file: string): Type {
  try {
    return parseAvroType(JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch (error) {
    throw new ModelMetricsError('E_INTERNAL', `schema ${file} cannot be loaded: ${String(error)}`, {
      operation: 'load schemas',
    }, { cause: error });
  }
}

/** The type of one version of a package schema, e.g. `loadSchemaVersion('prediction', 1)`. */
export function loadSchemaVersion(name: SchemaName, version: number): Type {
  const found = schemaVersions[name].find((v) => v.version === version);
  if (found === undefined) {
    throw new ModelMetricsError('E_INTERNAL', `schema ${name} has no version ${version}; it has ${schemaVersions[name].map((v) => `v${v.version}`).join(', ')}`, {
      operation: 'load schemas',
    });
  }
  return loadSchema(found.file);
}

/**
 * The latest version is the job's reader (and writer) type: Avro resolution applies only the
 * reader's aliases, so only the newest schema can read fields renamed since older versions.
 */
function loadLatest(name: SchemaName): Type {
  return loadSchema(schemaVersions[name].at(-1)!.file);
}

/** ml.monitoring.PredictionEvent (SPEC §2), latest version: reader type of the predictions dataset. */
export const predictionType: Type = loadLatest('prediction');

/** ml.monitoring.LabelEvent (SPEC §2), latest version: reader type of the labels dataset. */
export const labelType: Type = loadLatest('label');

/** ml.monitoring.EnrichedPrediction (SPEC §4), latest version: writer type of the curated dataset. */
export const enrichedType: Type = loadLatest('enriched');

/** ml.monitoring.ModelMetrics (SPEC §5), latest version: writer type of the metrics dataset. */
export const metricsType: Type = loadLatest('metrics');

/** ml.monitoring.Alert (SPEC §8), latest version: writer type of the alerts dataset. */
export const alertType: Type = loadLatest('alert');

/** Hex SHA-256 of the type's Parsing Canonical Form (Avro 1.11 "Schema Fingerprints"). */
export function schemaFingerprint(type: Type): string {
  return type.fingerprint('sha256').toString('hex');
}
