/**
 * The one table of job options. The CLI flags, the `MODEL_METRICS_*` environment variables and the
 * keys of a `--config` file are all derived from it, so the three sources can never drift apart.
 * Precedence (SPEC §6): flags beat environment beat file beat defaults.
 */

import { DEFAULT_ALERT_SETTINGS, DEFAULT_RULES } from '../alerts/defaults.js';
import { type DecodeLimits, defaultDecodeLimits } from '../avro/decode-limits.js';
import { DEFAULT_LEASE_TTL_MS } from '../pipeline/lease-policy.js';
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_ATTEMPTS } from '../storage/retry-policy.js';

/** How a raw option value (string from a flag or env, or any JSON/YAML value) is interpreted. */
export type OptionKind = 'string' | 'boolean' | 'integer' | 'list' | 'mapping';

/** The commands that take options from this table (`schema check` has its own flags). */
export const commandNames = ['run', 'backfill', 'scheduled', 'report', 'demo'] as const;
/** A command of the table. */
export type CommandName = (typeof commandNames)[number];

/** The commands that compute and publish days. */
const COMPUTING: readonly CommandName[] = ['run', 'backfill', 'scheduled'];
/** The commands that open the dataset stores. */
const STORE_READERS: readonly CommandName[] = [...COMPUTING, 'report'];
/** Every command. */
const ALL: readonly CommandName[] = commandNames;

/**
 * One option: adding it to a command is adding the command to `commands` (one entry per option;
 * an option whose meaning or default differs between commands gets one entry per meaning).
 */
export interface OptionSpec {
  /** Kebab-case name: the flag is `--name`, the env var `MODEL_METRICS_NAME`, the file key `name`. */
  name: string;
  kind: OptionKind;
  /** The commands that use it; any other command refuses it (exit 2), from any source. */
  commands: readonly CommandName[];
  /** Placeholder in `--help`. */
  arg?: string;
  description: string;
  /** Marked in `--help`; `run` reports every missing one at once. */
  required?: boolean;
  /** The value when no source gives one: the only place a default is stated (`--help` shows it). */
  default?: string | number;
  /** What `--help` says when there is no fixed default (computed, or absent means something). */
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
    commands: COMPUTING,
    arg: unitBytes === 1 ? 'N' : 'MB',
    description: `${description}; an object past it is corrupt`,
    defaultText: String(defaultDecodeLimits[field] / unitBytes),
  }));
}

/** How `--help` and the table state a rule's default parameter (null: the rule is off). */
function ruleDefault(parameter: number | null): string | number {
  return parameter ?? 'off';
}

const stageDescription = 'preliminary (labels so far) or final (label window closed)';
const asOfSpec: OptionSpec = { name: 'as-of', commands: COMPUTING, kind: 'string', arg: 'TS', description: 'ISO-8601 instant with zone, e.g. 2026-03-03T06:00:00Z; at most 5 minutes ahead of the clock', defaultText: 'now' };

/**
 * The one table of options, of every command. A command's flags, its `MODEL_METRICS_*` variables
 * and the `--config` keys it reads are the entries that list it in `commands`.
 */
export const optionTable: readonly OptionSpec[] = [
  { name: 'date', commands: ['run'], kind: 'string', arg: 'YYYY-MM-DD', description: 'the UTC day to compute', required: true },
  { name: 'from', commands: ['backfill', 'report'], kind: 'string', arg: 'YYYY-MM-DD', description: 'first day (inclusive)', required: true },
  { name: 'to', commands: ['backfill', 'report'], kind: 'string', arg: 'YYYY-MM-DD', description: 'last day (inclusive)', required: true },
  { name: 'stage', commands: ['run', 'backfill'], kind: 'string', arg: 'STAGE', description: stageDescription, required: true },
  { name: 'stage', commands: ['report'], kind: 'string', arg: 'STAGE', description: 'final, preliminary, or both (each day with both stages shows the restatement)', default: 'final' },
  { name: 'by', commands: ['report'], kind: 'string', arg: 'GRAIN', description: 'rows per day, week or month (ISO weeks, Monday to Sunday), rolled up exactly from the daily sums', default: 'day' },
  { name: 'slice', commands: ['report'], kind: 'string', arg: 'KEY[=VALUE]', description: 'rows for each value of a segment key (or one value) instead of the whole model version', defaultText: 'whole version' },
  { name: 'model', commands: ['report'], kind: 'string', arg: 'NAME[@VERSION]', description: 'only this model (or model version)', defaultText: 'every model' },
  { name: 'out', commands: ['report'], kind: 'string', arg: 'FILE', description: 'write the report to this file instead of stdout (required for html)' },
  asOfSpec,
  // One day across pods (SPEC §9, README "One day across pods").
  { name: 'shards', commands: ['run'], kind: 'integer', arg: 'K', description: 'split the day over K pods by prediction_id hash: with --phase, this process runs one phase; without, the three phases run here as K child processes each (metrics bit-identical to an unsharded run, curated the same records)', defaultText: 'one process, no shards' },
  { name: 'shard-index', commands: ['run'], kind: 'integer', arg: 'I', description: "with --shards K and --phase partition or join: this pod's shard, 0 to K-1", defaultText: 'env JOB_COMPLETION_INDEX (Kubernetes Indexed Job)' },
  { name: 'phase', commands: ['run'], kind: 'string', arg: 'PHASE', description: 'with --shards K: partition (shard I hash-partitions its share of the inputs into the curated store\'s staging), join (shard I joins its buckets; needs every partition, else exit 3), or commit (once: merges the shards and publishes; needs every join, else exit 3)', defaultText: 'all three, locally' },
  { name: 'concurrency', commands: ['backfill'], kind: 'integer', arg: 'N', description: 'days computed at once (each holds its own label index in memory)', default: 1 },
  { name: 'shard-count', commands: ['backfill'], kind: 'integer', arg: 'N', description: 'split the range over N workers, dealing days round-robin (day k of the range goes to shard k mod N)', defaultText: '1' },
  { name: 'shard-index', commands: ['backfill'], kind: 'integer', arg: 'I', description: "this worker's shard, 0 to N-1", defaultText: 'env JOB_COMPLETION_INDEX (Kubernetes Indexed Job)' },
  { name: 'lookback', commands: ['scheduled'], kind: 'string', arg: 'ISO', description: 'how far back to look for days whose final is due', default: 'P30D' },
  { name: 'format', commands: ['report'], kind: 'string', arg: 'FORMAT', description: 'output format: table, md, csv, json or html (html: one self-contained file with charts, needs --out)', default: 'table' },
  { name: 'dir', commands: ['demo'], kind: 'string', arg: 'PATH', description: 'folder for the sample data and outputs', default: './model-metrics-demo' },
  { name: 'summary-file', commands: COMPUTING, kind: 'string', arg: 'PATH', description: 'also write the JSON summary (the --json document) to this file, e.g. /airflow/xcom/return.json' },
  { name: 'pushgateway', commands: COMPUTING, kind: 'string', arg: 'URL', description: 'push run metrics (duration, records, exit code, last success per stage) to this Prometheus Pushgateway' },
  { name: 'pushgateway-job', commands: COMPUTING, kind: 'string', arg: 'NAME', description: 'job label of the pushed metrics', default: 'model_metrics' },
  { name: 'root', commands: STORE_READERS, kind: 'string', arg: 'URI', description: 'dataset root: s3://bucket/prefix, file:///path or a local path; the four datasets sit under it' },
  { name: 'predictions', commands: COMPUTING, kind: 'string', arg: 'URI', description: 'predictions dataset', defaultText: '<root>/predictions' },
  { name: 'labels', commands: COMPUTING, kind: 'string', arg: 'URI', description: 'labels dataset', defaultText: '<root>/labels' },
  { name: 'curated', commands: COMPUTING, kind: 'string', arg: 'URI', description: 'curated output dataset', defaultText: '<root>/curated' },
  { name: 'metrics', commands: STORE_READERS, kind: 'string', arg: 'URI', description: 'metrics output dataset', defaultText: '<root>/metrics' },
  { name: 'label-window', commands: COMPUTING, kind: 'string', arg: 'ISO', description: 'label window of the final stage, an ISO-8601 duration in weeks/days/hours/minutes/seconds', default: 'P7D' },
  { name: 'slice-keys', commands: COMPUTING, kind: 'list', arg: 'K1,K2', description: 'segment keys to slice on', defaultText: 'every key seen' },
  { name: 'max-slice-values', commands: COMPUTING, kind: 'integer', arg: 'N', description: 'per model version and key, values with their own slice; the rest fold into __other__', default: 100 },
  { name: 'windows', commands: COMPUTING, kind: 'list', arg: 'P1D[,PT1H]', description: 'metric windows: P1D, the day (always listed), and PT1H, one more record per hour of the day for every slice', default: 'P1D' },
  { name: 'label-ages', commands: COMPUTING, kind: 'list', arg: 'ISO,…|none', description: 'label ages A of the maturity curve: per slice, the day computed with labels up to end of day + A (ages past the run\'s labels-through are left out); none for no such records', default: 'PT1H,PT6H,P1D,P2D,P3D,P7D' },
  { name: 'codec', commands: COMPUTING, kind: 'string', arg: 'NAME', description: 'output Avro codec: null, deflate, snappy or zstandard (inputs may use any codec of Avro 1.11)', default: 'deflate' },
  { name: 'part-size-mb', commands: COMPUTING, kind: 'integer', arg: 'MB', description: 'curated part files roll over once they hold this many MiB of uncompressed records', default: 128 },
  { name: 'workers', commands: COMPUTING, kind: 'integer', arg: 'N', description: 'worker threads that decode inputs, join the predictions against the labels (held once, in shared memory) and encode and compress outputs; the main thread keeps dedup and ordering; 0 does everything on the main thread. In flight per worker: at most 4 input tasks (8 blocks or 256 KiB stored each) and 4 curated batches, about 12 MiB with 64 KiB blocks (a block decodes to at most --avro-max-inflated-block-mb)', defaultText: 'the cores available to the process (CPU affinity and cgroup quota)' },
  { name: 'memory-budget', commands: COMPUTING, kind: 'string', arg: 'SIZE', description: "bytes the day's join state (label index, dedup table, metric state) may take, e.g. 512MiB, 1GiB, 2G (K/M/G decimal, Ki/Mi/Gi or KiB/MiB/GiB binary) or bytes; a day that would not fit is hash-partitioned by prediction_id into buckets under --spill-dir and joined bucket by bucket (same metrics; curated parts cut at bucket boundaries). Peak RSS stays within it plus a constant (README); backfill --concurrency N gives each day 1/N of it", defaultText: '60% of the cgroup memory limit, else 2GiB' },
  { name: 'spill-dir', commands: COMPUTING, kind: 'string', arg: 'DIR', description: 'local folder for the bucket files of a spilled day (one model-metrics-spill-<run id> folder per run, removed at its end; on Kubernetes an emptyDir)', defaultText: 'TMPDIR (os.tmpdir())' },
  { name: 'read-ahead', commands: COMPUTING, kind: 'integer', arg: 'N', description: 'input objects opened ahead of the one being decoded (hides store latency)', default: 4 },
  { name: 's3-endpoint', commands: STORE_READERS, kind: 'string', arg: 'URL', description: 'S3-compatible endpoint (MinIO); also AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL' },
  { name: 's3-force-path-style', commands: STORE_READERS, kind: 'boolean', description: 'path-style S3 addressing (MinIO, s3rver)' },
  { name: 's3-region', commands: STORE_READERS, kind: 'string', arg: 'REGION', description: 'S3 region', defaultText: 'AWS chain, else us-east-1' },
  { name: 's3-max-attempts', commands: STORE_READERS, kind: 'integer', arg: 'N', description: 'attempts per S3 operation, the first included: request retries and resumed reads of a body that broke or stalled', default: DEFAULT_MAX_ATTEMPTS },
  { name: 's3-idle-timeout-seconds', commands: STORE_READERS, kind: 'integer', arg: 'S', description: 'an S3 request or body that moves no byte for this long is abandoned and retried', default: DEFAULT_IDLE_TIMEOUT_MS / 1000 },
  { name: 's3-conditional-writes', commands: COMPUTING, kind: 'string', arg: 'auto|on|off', description: 'whether the S3 store itself enforces If-None-Match / If-Match on writes (AWS S3, MinIO from RELEASE.2025-09-06): on sends the run lease and _SUCCESS writes alone, off checks them with extra HEADs and reads; auto: on for AWS, off for a custom --s3-endpoint', default: 'auto' },
  { name: 's3-multipart-listing', commands: COMPUTING, kind: 'string', arg: 'auto|on|off', description: "whether the S3 store lists a folder's incomplete multipart uploads (AWS S3), so a run aborts those a killed run left: on lists and aborts them, off leaves them to the bucket's lifecycle rule without asking; auto: on for AWS, off for a custom --s3-endpoint", default: 'auto' },
  ...decodeLimitOptions(),
  { name: 'lease-ttl', commands: COMPUTING, kind: 'integer', arg: 'SECONDS', description: "how long a run's lease on its date and stage lasts without renewal (renewed every quarter of it); a rerun after a crash on another host waits this long plus 10 s", default: DEFAULT_LEASE_TTL_MS / 1000 },
  { name: 'force', commands: COMPUTING, kind: 'boolean', description: 'recompute even if _SUCCESS matches the same inputs' },
  { name: 'on-corrupt', commands: COMPUTING, kind: 'string', arg: 'fail|skip', description: 'a corrupt input object fails the run, or is left out and listed in the manifest', default: 'fail' },
  { name: 'json', commands: ALL, kind: 'boolean', description: 'print the summary on stdout as JSON' },
  { name: 'log-level', commands: STORE_READERS, kind: 'string', arg: 'LEVEL', description: 'log level on stderr: debug, info, warn, error, silent', default: 'info' },
  { name: 'log-level', commands: ['demo'], kind: 'string', arg: 'LEVEL', description: 'log level on stderr: debug, info, warn, error, silent', default: 'warn' },
  { name: 'log-format', commands: ALL, kind: 'string', arg: 'FORMAT', description: 'log lines on stderr: pretty (one readable line each) or json (JSON lines)', defaultText: 'pretty at a terminal, else json' },
  // Alerts (SPEC §8), validated by src/alerts/settings.ts.
  { name: 'alerts', commands: COMPUTING, kind: 'mapping', arg: 'YAML', description: 'per-model alert rules {default: {sigma: K, pct: P, metrics: [mse, mae, coverage]}, models: {NAME: {...}}}, usually the "alerts" key of --config' },
  { name: 'alerts-dataset', commands: COMPUTING, kind: 'string', arg: 'URI', description: 'alerts output dataset', defaultText: '<root>/alerts, else beside --metrics' },
  { name: 'alert-sigma', commands: COMPUTING, kind: 'string', arg: 'K|off', description: 'default sigma rule: alert when a value is beyond the baseline mean ± K·sd', default: ruleDefault(DEFAULT_RULES.sigma) },
  { name: 'alert-pct', commands: COMPUTING, kind: 'string', arg: 'P|off', description: 'default pct rule: alert when a value is beyond the baseline mean·(1 ± P), e.g. 0.25', default: ruleDefault(DEFAULT_RULES.pct) },
  { name: 'baseline-days', commands: COMPUTING, kind: 'integer', arg: 'N', description: 'previous days whose finals form the baseline of a slice (a preliminary: their label-age records, at equal label age)', default: DEFAULT_ALERT_SETTINGS.baselineDays },
  { name: 'baseline-min-days', commands: COMPUTING, kind: 'integer', arg: 'N', description: 'baseline days with enough labels a slice needs to be compared', default: DEFAULT_ALERT_SETTINGS.baselineMinDays },
  { name: 'alert-min-labeled', commands: COMPUTING, kind: 'integer', arg: 'N', description: 'labeled predictions a record needs, as the day compared or as a baseline day', default: DEFAULT_ALERT_SETTINGS.minLabeled },
  { name: 'fail-on-alert', commands: COMPUTING, kind: 'boolean', description: 'exit 4 once everything is committed when an alert fired' },
];

/** The options of one command, in table order. */
export function optionsOf(command: CommandName): OptionSpec[] {
  return optionTable.filter((spec) => spec.commands.includes(command));
}

/** The default of an option for a command (run's, for the options every computing command shares). */
export function defaultOf<T extends string | number>(name: string, command: CommandName = 'run'): T {
  const spec = optionsOf(command).find((s) => s.name === name);
  if (spec?.default === undefined) throw new Error(`internal: option --${name} of ${command} has no default in the option table`);
  return spec.default as T;
}

/** The commands that use an option name (any entry), or [] when no command knows it. */
export function commandsUsing(name: string): CommandName[] {
  return commandNames.filter((command) => optionTable.some((spec) => spec.name === name && spec.commands.includes(command)));
}

/** The environment variable of an option. */
export function envNameOf(spec: Pick<OptionSpec, 'name'>): string {
  return `MODEL_METRICS_${spec.name.replace(/-/g, '_').toUpperCase()}`;
}

/** The camelCase property name commander gives an option. */
export function camelNameOf(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Edit distance of two short names (did-you-mean suggestions). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/** The candidate closest to `name` when it is a plausible typo of it (distance ≤ a third of its length). */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(name, candidate);
    if (best === undefined || distance < best.distance) best = { candidate, distance };
  }
  return best !== undefined && best.distance <= Math.max(2, Math.floor(name.length / 3)) ? best.candidate : undefined;
}
