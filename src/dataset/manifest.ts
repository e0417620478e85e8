/**
 * The `_SUCCESS` manifest (SPEC §1): written last, it is the commit point of an output partition
 * and the record of what went in and came out. Its `fingerprint` covers every input (key, size,
 * ETag) and every option that changes the output bytes, so a rerun can tell "already done".
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Stage } from '../join/records.js';

/** Format tag of the manifest; bump on an incompatible change. */
export const MANIFEST_FORMAT = 'model-metrics/success@1';

/** One object read. */
export interface ManifestInput {
  dataset: 'predictions' | 'labels';
  key: string;
  size: number;
  etag: string;
  /** Hex SHA-256 of the writer schema's canonical form (absent for skipped objects). */
  schema_fingerprint?: string;
}

/** One object written. */
export interface ManifestOutput {
  key: string;
  size: number;
  records: number;
}

/** One object left out under `--on-corrupt skip`. */
export interface ManifestSkipped {
  dataset: 'predictions' | 'labels';
  key: string;
  reason: string;
}

/** The `_SUCCESS` document. */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  dataset: 'curated' | 'metrics' | 'alerts';
  stage: Stage;
  date: string;
  as_of: string;
  labels_through: string;
  label_window: string;
  job_version: string;
  /** Options that shape the output bytes. */
  params: Record<string, unknown>;
  /** SHA-256 over params and inputs: equal fingerprints mean an identical result. */
  fingerprint: string;
  started_at: string;
  ended_at: string;
  inputs: ManifestInput[];
  skipped: ManifestSkipped[];
  writer_schemas: Array<{ fingerprint: string; objects: number }>;
  outputs: ManifestOutput[];
  stats: Record<string, number>;
}

const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  dataset: z.enum(['curated', 'metrics', 'alerts']),
  stage: z.enum(['preliminary', 'final']),
  date: z.string(),
  fingerprint: z.string(),
  outputs: z.array(z.object({ key: z.string(), size: z.number(), records: z.number() })),
}).passthrough();

/** The fingerprint of a run: what it read and every option that shapes the output. */
export function runFingerprint(params: Record<string, unknown>, inputs: readonly ManifestInput[]): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(params));
  for (const input of inputs) hash.update(`\n${input.dataset}\t${input.key}\t${input.size}\t${input.etag}`);
  return hash.digest('hex');
}

/** Parses a manifest; undefined when the bytes are not one of ours (treated as "not committed"). */
export function parseManifest(bytes: Buffer): Manifest | undefined {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  const result = manifestSchema.safeParse(json);
  return result.success ? (result.data as unknown as Manifest) : undefined;
}

/** Serialises a manifest, pretty-printed for people who `cat` it. */
export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
}

/** The manifest's `writer_schemas`: how many inputs each writer schema fingerprint wrote, by fingerprint. */
export function writerSchemaCounts(inputs: readonly ManifestInput[]): Array<{ fingerprint: string; objects: number }> {
  const counts = new Map<string, number>();
  for (const input of inputs) {
    if (input.schema_fingerprint !== undefined) counts.set(input.schema_fingerprint, (counts.get(input.schema_fingerprint) ?? 0) + 1);
  }
  return [...counts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([fingerprint, objects]) => ({ fingerprint, objects }));
}
