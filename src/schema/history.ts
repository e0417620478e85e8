/**
 * The schema history a candidate is checked against, read from a folder of `vN.avsc` files (the
 * layout of `schemas/<name>/`, issue 3). The registry counterpart is `registry.ts`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { listSchemaVersions } from '../avro/schemas.js';
import { UsageError } from '../errors.js';
import { labelledSchema, type LabelledSchema } from './check.js';

/** Versions to check against, oldest first, and where they came from. */
export interface SchemaHistory {
  /** Where the history came from, for reports: a folder, a file, or a registry subject (no credentials). */
  source: string;
  versions: LabelledSchema[];
}

/** Reads and parses one schema file; a UsageError naming the file and `option` when it cannot be used. */
export function readSchemaFile(file: string, label: string, option: string): LabelledSchema {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${(error as Error).message})`;
    throw new UsageError(`${option} ${file} ${reason}`, { option, uri: file }, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${option} ${file} is not valid JSON (${(error as Error).message}); an .avsc file holds one Avro schema as JSON`, { option, uri: file }, { cause: error });
  }
  return labelledSchema(json, label);
}

/** The real path of a file, or its resolved path when it does not exist. */
function realPathOf(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

/**
 * The history in `against`: a folder of `vN.avsc` versions, or one schema file. When the candidate
 * is itself a version of that folder (a pull request adding `v3.avsc` checks it against its own
 * folder), the history is the versions before it, so a schema is never checked against itself or
 * against versions that came after it.
 */
export function loadFolderHistory(against: string, candidateFile: string): SchemaHistory {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(against);
  } catch (error) {
    throw new UsageError(`--against ${against} does not exist; give the folder of vN.avsc versions, e.g. schemas/prediction/`, { option: '--against', uri: against }, { cause: error });
  }
  const candidate = realPathOf(candidateFile);
  if (stat.isFile()) {
    if (realPathOf(against) === candidate) {
      throw new UsageError(`--against ${against} is the schema file itself; give the folder of its versions or an older version`, { option: '--against', uri: against });
    }
    return { source: against, versions: [readSchemaFile(against, against, '--against')] };
  }
  let versions = listSchemaVersions(against);
  const own = versions.find((version) => realPathOf(version.file) === candidate);
  if (own !== undefined) versions = versions.filter((version) => version.version < own.version);
  if (versions.length === 0) {
    const what = own === undefined ? 'holds no vN.avsc file' : `holds no version before v${own.version} (${path.basename(own.file)} is the first)`;
    throw new UsageError(`--against ${against} ${what}; there is nothing to check compatibility against`, { option: '--against', uri: against });
  }
  return {
    source: against,
    versions: versions.map((version) => readSchemaFile(version.file, `v${version.version} (${version.file})`, '--against')),
  };
}
