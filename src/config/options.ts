/**
 * The one table of job options. The CLI flags, the `MODEL_METRICS_*` environment variables and the
 * keys of a `--config` file are all derived from it, so the three sources can never drift apart.
 * Precedence (SPEC §6): flags beat environment beat file beat defaults.
 */

import { type DecodeLimits, defaultDecodeLimits } from '../avro/container-reader.js';

/** How a raw option value (string from a flag or env, or any JSON/YAML value) is interpreted. */
export type OptionKind = 'string' | 'boolean' | 'integer' | 'list' | 'mapping';

/** One option shared by several commands. */
export interface OptionSpec {
  /** Kebab-case name: the flag is `--name`, the env var `MODEL_METRICS_NAME`, the file key `name`. */
  name: string;
  kind: OptionKind;
  /** Placeholder in `--help`. */
  arg?: string;
  description: string;
  /** Default shown in `--help`; the real default lives in resolve.ts. */
  defaultText?: string;
}

const MIB = 1024 * 1024;

/** The Avro decoding limits (SPEC §1 `--on-corrupt`: an object past one is corrupt) and the DecodeLimits field each sets. */
export const decodeLimitFlags: ReadonlyArray<{ name: string; field: keyof DecodeLimits; unitBytes: number; description: string }> = [
  { name: 'avro-max-header-mb', field: 'maxHeaderBytes', unitBytes: MIB, description: 'largest Avro file header (schema and metadata) accepted' },
  { name: 'avro-max-block-mb', field: 'maxBlockBytes', unitBytes: MIB, description: 'largest Avro block accepted as stored (compressed); this much is buffered at most' },
  { name: 'avro-max-inflated-block-mb', field: 'maxDecompressedBlockBytes', unitBytes: MIB, description: 'largest Avro block accepted once decompressed (guards against compression bombs)' },
  { name: 'avro-max-block-records', field: 'maxBlockRecords', unitBytes: 1, description: 'largest record count one Avro block may declare' },
  { name: 'avro-max-string-mb', field: 'maxStringBytes', unitBytes: MIB, description: 'largest string or bytes value in a record' },
  { name: 'avro-max-items', field: 'maxCollectionItems', unitBytes: 1, description: 'largest item count of an array or map in one block, or of all arrays and maps of a record together' },
  { name: 'avro-max-schema-depth', field: 'maxSchemaDepth', unitBytes: 1, description: 'deepest nesting of types in a writer schema' },
];

function decodeLimitOptions(): OptionSpec[] {
  return decodeLimitFlags.map(({ name, field, unitBytes, description }) => ({
    name,
    kind: 'integer',
    arg: unitBytes === 1 ? 'N' : 'MB',
    description: `${description}; an object past it is corrupt`,
    defaultText: String(defaultDecodeLimits[field] / unitBytes),
  }));
}

/** Options common to the job commands (run, backfill, scheduled, report). */
export const commonOptions: OptionSpec[] = [
  { name: 'root', kind: 'string', arg: 'URI', description: 'dataset root: s3://bucket/prefix, file:///path or a local path; the four datasets sit under it' },
  { name: 'predictions', kind: 'string', arg: 'URI', description: 'predictions dataset', defaultText: '<root>/predictions' },
  { name: 'labels', kind: 'string', arg: 'URI', description: 'labels dataset', defaultText: '<root>/labels' },
  { name: 'curated', kind: 'string', arg: 'URI', description: 'curated output dataset', defaultText: '<root>/curated' },
  { name: 'metrics', kind: 'string', arg: 'URI', description: 'metrics output dataset', defaultText: '<root>/metrics' },
  { name: 'label-window', kind: 'string', arg: 'ISO', description: 'label window of the final stage, an ISO-8601 duration in weeks/days/hours/minutes/seconds', defaultText: 'P7D' },
  { name: 'slice-keys', kind: 'list', arg: 'K1,K2', description: 'segment keys to slice on', defaultText: 'every key seen' },
  { name: 'max-slice-values', kind: 'integer', arg: 'N', description: 'per model version and key, values with their own slice; the rest fold into __other__', defaultText: '100' },
  { name: 'codec', kind: 'string', arg: 'NAME', description: 'output Avro codec: null, deflate, snappy or zstandard (inputs may use any codec of Avro 1.11)', defaultText: 'deflate' },
  { name: 'part-size-mb', kind: 'integer', arg: 'MB', description: 'curated part files roll over once they hold this many MiB of uncompressed records', defaultText: '128' },
  { name: 'read-ahead', kind: 'integer', arg: 'N', description: 'input objects opened ahead of the one being decoded (hides store latency)', defaultText: '4' },
  { name: 's3-endpoint', kind: 'string', arg: 'URL', description: 'S3-compatible endpoint (MinIO); also AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL' },
  { name: 's3-force-path-style', kind: 'boolean', description: 'path-style S3 addressing (MinIO, s3rver)' },
  { name: 's3-region', kind: 'string', arg: 'REGION', description: 'S3 region', defaultText: 'AWS chain, else us-east-1' },
  { name: 's3-max-attempts', kind: 'integer', arg: 'N', description: 'attempts per S3 operation, the first included: request retries and resumed reads of a body that broke or stalled', defaultText: '5' },
  { name: 's3-idle-timeout-seconds', kind: 'integer', arg: 'S', description: 'an S3 request or body that moves no byte for this long is abandoned and retried', defaultText: '60' },
  ...decodeLimitOptions(),
  { name: 'lease-ttl', kind: 'integer', arg: 'SECONDS', description: "how long a run's lease on its date and stage lasts without renewal (renewed every quarter of it); a rerun after a crash on another host waits this long plus 10 s", defaultText: '60' },
  { name: 'force', kind: 'boolean', description: 'recompute even if _SUCCESS matches the same inputs' },
  { name: 'on-corrupt', kind: 'string', arg: 'fail|skip', description: 'a corrupt input object fails the run, or is left out and listed in the manifest', defaultText: 'fail' },
  { name: 'json', kind: 'boolean', description: 'print the summary on stdout as JSON' },
  { name: 'log-level', kind: 'string', arg: 'LEVEL', description: 'JSON log level on stderr: debug, info, warn, error, silent', defaultText: 'info' },
];

/** Alert options of the computing commands (SPEC §8); validated by src/alerts/settings.ts. */
export const alertOptions: OptionSpec[] = [
  { name: 'alerts', kind: 'mapping', arg: 'YAML', description: 'per-model alert rules {default: {sigma: K, pct: P, metrics: [mse, mae, coverage]}, models: {NAME: {...}}}, usually the "alerts" key of --config' },
  { name: 'alerts-dataset', kind: 'string', arg: 'URI', description: 'alerts output dataset', defaultText: '<root>/alerts, else beside --metrics' },
  { name: 'alert-sigma', kind: 'string', arg: 'K|off', description: 'default sigma rule: alert when a value is beyond the baseline mean ± K·sd', defaultText: '3' },
  { name: 'alert-pct', kind: 'string', arg: 'P|off', description: 'default pct rule: alert when a value is beyond the baseline mean·(1 ± P), e.g. 0.25', defaultText: 'off' },
  { name: 'baseline-days', kind: 'integer', arg: 'N', description: 'previous days whose finals form the baseline of a slice', defaultText: '14' },
  { name: 'baseline-min-days', kind: 'integer', arg: 'N', description: 'baseline days with enough labels a slice needs to be compared', defaultText: '7' },
  { name: 'alert-min-labeled', kind: 'integer', arg: 'N', description: 'labeled predictions a record needs, as the day compared or as a baseline day', defaultText: '200' },
  { name: 'fail-on-alert', kind: 'boolean', description: 'exit 4 once everything is committed when an alert fired' },
];

/** The environment variable of an option. */
export function envNameOf(spec: OptionSpec): string {
  return `MODEL_METRICS_${spec.name.replace(/-/g, '_').toUpperCase()}`;
}

/** The camelCase property name commander gives an option. */
export function camelNameOf(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
