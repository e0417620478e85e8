/**
 * Parses and validates configuration once, at the edge, into one typed object. Nothing below the
 * CLI reads `process.env` or option strings: they receive a `JobConfig`.
 */
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { UsageError } from '../errors.js';
import type { S3Settings } from '../storage/types.js';
import { parseStoreUri, joinUri } from '../storage/uri.js';
import { parseLabelWindow } from '../join/policy.js';
import { parseLabelAges, parseWindows } from '../join/windows.js';
import { writableCodecs } from '../avro/codecs.js';
import { type DecodeLimits, defaultDecodeLimits } from '../avro/decode-limits.js';
import { type OptionSpec, decodeLimitFlags, defaultOf } from './options.js';
import type { OptionSources, RawOptions } from './sources.js';
import { type AlertConfig, resolveAlertConfig } from '../alerts/settings.js';
import { availableCores } from '../workers/cores.js';
import { MAX_SHARDS, SHARD_PHASES, type ShardPhase } from '../pipeline/sharded-options.js';
import { MIN_MEMORY_BUDGET, defaultMemoryBudget, parseSize } from '../scale/memory-budget.js';

/** What a corrupt input object does to the run (SPEC §6). */
export type OnCorrupt = 'fail' | 'skip';

/** The validated options every job command works from. */
export interface JobConfig {
  predictions: string;
  labels: string;
  curated: string;
  metrics: string;
  labelWindow: { iso: string; micros: number };
  /** Undefined: slice on every key seen on kept predictions. */
  sliceKeys: string[] | undefined;
  maxSliceValues: number;
  /** `--windows` includes PT1H: one record per hour of the day per slice (SPEC §5.1). */
  hourly: boolean;
  /** `--label-ages` in seconds, ascending; empty for `none` (SPEC §5.1). */
  labelAgesSeconds: number[];
  codec: string;
  partBytes: number;
  readAhead: number;
  /** Worker threads of the run's pool (`--workers`); 0: everything on the main thread. */
  workers: number;
  /** Bytes the day's join state may take (`--memory-budget`, SPEC §9); past it the day is spilled to hash buckets. */
  memoryBudget: number;
  /** Absolute local folder of the bucket files of a spilled day (`--spill-dir`). */
  spillDir: string;
  s3: S3Settings;
  /** Lifetime of a run's lease on its date and stage, renewed every quarter of it. */
  leaseTtlMs: number;
  /** Avro decoding limits; an input object past one is corrupt (SPEC §1 `--on-corrupt`). */
  decodeLimits: DecodeLimits;
  force: boolean;
  onCorrupt: OnCorrupt;
  json: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Undefined: pretty at a terminal, JSON lines otherwise (decided in cli/context.ts). */
  logFormat?: 'pretty' | 'json';
  /** The alerts output dataset (SPEC §8); absent: no alerts are computed. */
  alertsDataset?: string;
  /** Alert settings (SPEC §8). */
  alerting?: AlertConfig;
}

export type { RawOptions } from './sources.js';

const logLevels = ['debug', 'info', 'warn', 'error', 'silent'] as const;
const logFormats = ['pretty', 'json'] as const;
/** auto, on or off: what an S3 store is declared to enforce (--s3-conditional-writes, --s3-multipart-listing). */
const capabilityModes = ['auto', 'on', 'off'] as const;

/** Coerces one raw value to its kind; string values from env/flags are parsed here. `source` names where it came from. */
export function coerceOption(spec: OptionSpec, value: unknown, source = `--${spec.name}`): unknown {
  const option = `--${spec.name}`;
  const bad = (expected: string): never => {
    const from = source === option ? option : `${option} (from ${source})`;
    throw new UsageError(`${from}: expected ${expected}, got ${JSON.stringify(value)}`, { option, source });
  };
  switch (spec.kind) {
    case 'string':
      if (typeof value !== 'string' || value.trim() === '') return bad('a non-empty string');
      return value.trim();
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(true|1|yes)$/i.test(value)) return true;
      if (typeof value === 'string' && /^(false|0|no)$/i.test(value)) return false;
      return bad('true or false');
    case 'integer': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n)) return bad('a whole number');
      return n;
    }
    case 'list': {
      const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : bad('a comma-separated list');
      const cleaned = (items as unknown[]).map((item) => (typeof item === 'string' ? item.trim() : bad('a list of strings')));
      if (cleaned.some((item) => item === '')) return bad('a list without empty items');
      return cleaned;
    }
    case 'mapping':
      // A mapping from --config, or its JSON/YAML text from a flag or variable (parsed where it is validated).
      if (typeof value === 'string' && value.trim() !== '') return value;
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value;
      return bad('a mapping (or its JSON/YAML text)');
  }
}

/** Coerces every known option present in `raw`. */
export function coerceAll(raw: RawOptions, known: readonly OptionSpec[], sources: OptionSources = {}): RawOptions {
  const out: RawOptions = {};
  for (const spec of known) {
    if (raw[spec.name] !== undefined) out[spec.name] = coerceOption(spec, raw[spec.name], sources[spec.name]);
  }
  return out;
}

function positiveInt(raw: RawOptions, name: string, fallback: number, max: number, min = 1): number {
  const value = raw[name] ?? fallback;
  const schema = z.number().int().min(min).max(max);
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`, { option: `--${name}` });
  }
  return result.data;
}

/** One of a fixed set of values, or a UsageError naming the option and the choices. */
export function oneOf<T extends string>(raw: RawOptions, name: string, choices: readonly T[], fallback?: string): T {
  const value = raw[name] ?? fallback;
  if (value === undefined) throw new UsageError(`--${name} is required: one of ${choices.join(', ')}`, { option: `--${name}` });
  if (!choices.includes(value as T)) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(value)}`, { option: `--${name}` });
  }
  return value as T;
}

/** True when `text` parses as an http: or https: URL. */
export function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

/** Environment variables the config layer reads besides MODEL_METRICS_* (the AWS endpoint convention). */
export function s3EndpointFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  return env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
}

const datasetNames = ['predictions', 'labels', 'curated', 'metrics'] as const;
/** One of the four datasets of a root. */
export type DatasetName = (typeof datasetNames)[number];

/** A dataset's URI: its own option, else under `--root`. */
export function datasetUri(raw: RawOptions, name: DatasetName): string {
  const explicit = raw[name] as string | undefined;
  if (explicit !== undefined) {
    parseStoreUri(explicit, `--${name}`);
    return explicit;
  }
  const root = raw.root as string | undefined;
  if (root === undefined) {
    throw new UsageError(`--root is required (or --${name}); e.g. --root s3://bucket/ml or --root ./data`, { option: '--root' });
  }
  parseStoreUri(root, '--root');
  return joinUri(root, name);
}

/** The S3 client settings of the `--s3-*` options and the AWS environment conventions. */
export function s3SettingsOf(raw: RawOptions, env: NodeJS.ProcessEnv): S3Settings {
  const endpoint = (raw['s3-endpoint'] as string | undefined) ?? s3EndpointFromEnv(env);
  if (endpoint !== undefined) {
    if (!isHttpUrl(endpoint)) {
      throw new UsageError(`--s3-endpoint must be an http(s) URL such as http://127.0.0.1:9000, got ${JSON.stringify(endpoint)}`, { option: '--s3-endpoint' });
    }
  }
  const s3: S3Settings = {};
  if (endpoint !== undefined) s3.endpoint = endpoint;
  if (raw['s3-force-path-style'] === true) s3.forcePathStyle = true;
  if (raw['s3-region'] !== undefined) s3.region = raw['s3-region'] as string;
  // The AWS convention AWS_MAX_ATTEMPTS still counts, below our own flag and variable.
  const awsMaxAttempts = /^\d+$/.test(env.AWS_MAX_ATTEMPTS ?? '') ? Number(env.AWS_MAX_ATTEMPTS) : undefined;
  s3.maxAttempts = positiveInt({ 's3-max-attempts': awsMaxAttempts, ...raw }, 's3-max-attempts', defaultOf('s3-max-attempts'), 100);
  s3.idleTimeoutMs = positiveInt(raw, 's3-idle-timeout-seconds', defaultOf('s3-idle-timeout-seconds'), 86_400) * 1000;
  // auto leaves the store to its default (client-cache.ts s3CapabilitiesOf: AWS yes, a custom endpoint no).
  const conditionalWrites = oneOf(raw, 's3-conditional-writes', capabilityModes, defaultOf<string>('s3-conditional-writes'));
  if (conditionalWrites !== 'auto') s3.conditionalWrites = conditionalWrites === 'on';
  const multipartListing = oneOf(raw, 's3-multipart-listing', capabilityModes, defaultOf<string>('s3-multipart-listing'));
  if (multipartListing !== 'auto') s3.multipartListing = multipartListing === 'on';
  return s3;
}

/** The log settings of any command. */
export function logSettingsOf(raw: RawOptions, fallbackLevel: JobConfig['logLevel'] = defaultOf('log-level')): Pick<JobConfig, 'logLevel' | 'logFormat'> {
  const format = raw['log-format'] === undefined ? undefined : oneOf(raw, 'log-format', logFormats);
  return { logLevel: oneOf(raw, 'log-level', logLevels, fallbackLevel), ...(format === undefined ? {} : { logFormat: format }) };
}

/** Validates merged, coerced options into a JobConfig. */
export function resolveJobConfig(raw: RawOptions, env: NodeJS.ProcessEnv): JobConfig {
  if (raw.root === undefined && datasetNames.some((name) => raw[name] === undefined)) {
    throw new UsageError(`--root is required (or all of --predictions, --labels, --curated and --metrics); e.g. --root s3://bucket/ml or --root ./data`, { option: '--root' });
  }
  const uris = Object.fromEntries(datasetNames.map((name) => [name, datasetUri(raw, name)])) as Record<DatasetName, string>;
  checkOutputsApart(uris, new Set(datasetNames.filter((name) => raw[name] !== undefined)));

  const windowIso = (raw['label-window'] as string | undefined) ?? defaultOf<string>('label-window');
  const labelWindow = parseLabelWindow(windowIso);

  const codec = (raw.codec as string | undefined) ?? defaultOf<string>('codec');
  const codecs = writableCodecs();
  if (!codecs.includes(codec)) {
    throw new UsageError(`--codec must be one of ${codecs.join(', ')}, got ${JSON.stringify(codec)}`, { option: '--codec' });
  }

  const sliceKeys = raw['slice-keys'] as string[] | undefined;
  if (sliceKeys !== undefined && new Set(sliceKeys).size !== sliceKeys.length) {
    throw new UsageError(`--slice-keys lists a key twice: ${sliceKeys.join(',')}`, { option: '--slice-keys' });
  }
  const s3 = s3SettingsOf(raw, env);

  const decodeLimits: DecodeLimits = { ...defaultDecodeLimits };
  for (const { name, field, unitBytes } of decodeLimitFlags) {
    // Limits of at most 2^53 bytes: the flag's maximum keeps the product a safe integer.
    if (raw[name] !== undefined) decodeLimits[field] = positiveInt(raw, name, 1, Math.floor(Number.MAX_SAFE_INTEGER / unitBytes)) * unitBytes;
  }

  return {
    ...uris,
    labelWindow,
    sliceKeys,
    maxSliceValues: positiveInt(raw, 'max-slice-values', defaultOf('max-slice-values'), 1_000_000),
    hourly: parseWindows((raw.windows as string[] | undefined) ?? defaultOf<string>('windows')).hourly,
    labelAgesSeconds: parseLabelAges((raw['label-ages'] as string[] | undefined) ?? defaultOf<string>('label-ages')),
    codec,
    // Parts are moved into place with one CopyObject each, which S3 allows up to 5 GiB.
    partBytes: positiveInt(raw, 'part-size-mb', defaultOf('part-size-mb'), 4096) * 1024 * 1024,
    readAhead: positiveInt(raw, 'read-ahead', defaultOf('read-ahead'), 64),
    workers: positiveInt(raw, 'workers', availableCores(), 256, 0),
    memoryBudget: raw['memory-budget'] === undefined ? defaultMemoryBudget() : parseSize(raw['memory-budget'] as string, '--memory-budget', MIN_MEMORY_BUDGET),
    spillDir: spillDirOf(raw['spill-dir'] as string | undefined),
    s3,
    // At least 10 s: renewals every quarter of it must stay far above one request's latency.
    leaseTtlMs: positiveInt(raw, 'lease-ttl', defaultOf('lease-ttl'), 3600, 10) * 1000,
    decodeLimits,
    force: raw.force === true,
    onCorrupt: oneOf(raw, 'on-corrupt', ['fail', 'skip'] as const, defaultOf<string>('on-corrupt')),
    json: raw.json === true,
    ...logSettingsOf(raw),
    alertsDataset: alertsDatasetOf(raw, raw.root as string | undefined, uris.metrics),
    alerting: resolveAlertConfig(raw),
  };
}

/** `--spill-dir` as an absolute local path (a file:// URI is accepted), else TMPDIR. */
function spillDirOf(given: string | undefined): string {
  if (given === undefined) return tmpdir();
  if (given.startsWith('file://')) return fileURLToPath(given);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(given)) {
    throw new UsageError(`--spill-dir must be a local folder (bucket files are written and read back locally), got ${JSON.stringify(given)}; on Kubernetes mount an emptyDir`, { option: '--spill-dir' });
  }
  return resolve(given);
}

/** `--alerts-dataset`, else `<root>/alerts`, else a sibling of the metrics dataset named alerts. */
function alertsDatasetOf(raw: RawOptions, root: string | undefined, metrics: string): string {
  const explicit = raw['alerts-dataset'] as string | undefined;
  if (explicit !== undefined) {
    parseStoreUri(explicit, '--alerts-dataset');
    if (explicit.replace(/\/+$/, '') === metrics.replace(/\/+$/, '')) throw new UsageError(`--alerts-dataset (${explicit}) is the metrics dataset; give the alerts their own prefix`, { option: '--alerts-dataset' });
    return explicit;
  }
  if (root !== undefined) return joinUri(root, 'alerts');
  const parent = metrics.replace(/\/+$/, '').replace(/\/[^/]*$/, '');
  try {
    const uri = joinUri(parent, 'alerts');
    parseStoreUri(uri, '--alerts-dataset');
    return uri;
  } catch (error) {
    throw new UsageError(`--metrics ${metrics} has no parent folder to hold the alerts dataset; give --alerts-dataset URI or --root`, { option: '--alerts-dataset' }, { cause: error });
  }
}

/**
 * Outputs must not sit inside inputs (or each other): a listing of predictions would otherwise
 * pick up our own curated files. Compared on normalised URIs, so `./d` and `file:///abs/d` agree.
 */
function checkOutputsApart(uris: Record<DatasetName, string>, explicit: ReadonlySet<string>): void {
  const normal = Object.fromEntries(
    datasetNames.map((name) => {
      const parsed = parseStoreUri(uris[name], `--${name}`);
      const id = parsed.kind === 's3' ? `s3://${parsed.bucket}/${parsed.prefix}` : `file://${parsed.path}`;
      return [name, id.endsWith('/') ? id : `${id}/`];
    }),
  ) as Record<DatasetName, string>;
  for (const out of ['curated', 'metrics'] as const) {
    for (const other of datasetNames) {
      if (other === out) continue;
      const a = normal[out];
      const b = normal[other];
      if (a.startsWith(b) || b.startsWith(a)) {
        // Name the option the user actually gave, when only one of the two was given.
        const [named, versus] = explicit.has(other) && !explicit.has(out) ? [other, out] : [out, other];
        throw new UsageError(`--${named} (${uris[named]}) overlaps --${versus} (${uris[versus]}); give each dataset its own prefix`, { option: `--${named}` });
      }
    }
  }
}

/** `run --shards K [--shard-index I] [--phase P]` (SPEC §9): undefined for an unsharded run. */
export interface ShardRun {
  shards: number;
  /** Undefined: run the three phases here, as K child processes each. */
  phase: ShardPhase | undefined;
  /** The shard of a partition or join phase. */
  index: number | undefined;
}

/** Validates the sharding options of `run`; the index defaults to JOB_COMPLETION_INDEX (a Kubernetes Indexed Job). */
export function shardRunOf(raw: RawOptions, env: NodeJS.ProcessEnv): ShardRun | undefined {
  const shards = raw.shards as number | undefined;
  if (shards === undefined) {
    for (const name of ['phase', 'shard-index']) {
      if (raw[name] !== undefined) throw new UsageError(`--${name} needs --shards K (the number of shards the day is split into)`, { option: `--${name}` });
    }
    return undefined;
  }
  if (shards < 1 || shards > MAX_SHARDS) throw new UsageError(`--shards must be from 1 to ${MAX_SHARDS}, got ${shards}`, { option: '--shards' });
  const phase = raw.phase === undefined ? undefined : oneOf(raw, 'phase', SHARD_PHASES);
  // The phases of one day are separate processes, often pods started hours apart: each must list the
  // same run (its fingerprint holds the as-of), so a preliminary's "now" cannot be each one's own.
  if (phase !== undefined && raw.stage === 'preliminary' && (raw['as-of'] === undefined || raw['as-of'] === '')) {
    throw new UsageError(`--phase ${phase} of a preliminary needs an explicit --as-of, the same for every phase and shard (for example the workflow's start time); without it each phase would read the labels up to its own start and find no partition of the others`, { option: '--as-of' });
  }
  let index = raw['shard-index'] as number | undefined;
  if (phase === undefined || phase === 'commit') {
    if (index !== undefined) throw new UsageError(`--shard-index is for --phase partition or join; ${phase === undefined ? 'without --phase every shard runs here' : 'the commit runs once for all shards'}: leave it out`, { option: '--shard-index' });
    return { shards, phase, index: undefined };
  }
  if (index === undefined) {
    const fromEnv = env.JOB_COMPLETION_INDEX;
    if (fromEnv === undefined || !/^\d+$/.test(fromEnv)) {
      throw new UsageError(`--phase ${phase} needs --shard-index I (0 to ${shards - 1}), or JOB_COMPLETION_INDEX set by a Kubernetes Indexed Job${fromEnv === undefined ? '' : ` (got ${JSON.stringify(fromEnv)})`}`, { option: '--shard-index' });
    }
    index = Number(fromEnv);
  }
  if (index < 0 || index >= shards) throw new UsageError(`--shard-index must be from 0 to ${shards - 1} (--shards ${shards}), got ${index}`, { option: '--shard-index' });
  return { shards, phase, index };
}
