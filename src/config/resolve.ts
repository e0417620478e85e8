/**
 * Parses and validates configuration once, at the edge, into one typed object. Nothing below the
 * CLI reads `process.env` or option strings: they receive a `JobConfig`.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, UsageError } from '../errors.js';
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_ATTEMPTS } from '../storage/index.js';
import type { S3Settings } from '../storage/types.js';
import { parseStoreUri, joinUri } from '../storage/uri.js';
import { parseLabelWindow } from '../join/policy.js';
import { writableCodecs } from '../avro/codecs.js';
import { type DecodeLimits, defaultDecodeLimits } from '../avro/container-reader.js';
import { type OptionSpec, decodeLimitFlags, envNameOf } from './options.js';
import { type AlertConfig, resolveAlertConfig } from '../alerts/settings.js';

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
  codec: string;
  partBytes: number;
  readAhead: number;
  s3: S3Settings;
  /** Lifetime of a run's lease on its date and stage, renewed every quarter of it. */
  leaseTtlMs: number;
  /** Avro decoding limits; an input object past one is corrupt (SPEC §1 `--on-corrupt`). */
  decodeLimits: DecodeLimits;
  force: boolean;
  onCorrupt: OnCorrupt;
  json: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** The alerts output dataset (SPEC §8); absent: no alerts are computed. */
  alertsDataset?: string;
  /** Alert settings (SPEC §8). */
  alerting?: AlertConfig;
}

/** Raw option values by kebab-case name, before validation. */
export type RawOptions = Record<string, unknown>;

const logLevels = ['debug', 'info', 'warn', 'error', 'silent'] as const;

/** Reads a `--config` file (JSON or YAML, by content) into raw options, rejecting unknown keys. */
export function readConfigFile(path: string, known: readonly OptionSpec[]): RawOptions {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file "${path}": ${(error as Error).message}; check --config`, { option: '--config' }, { cause: error });
  }
  let parsed: unknown;
  try {
    // YAML is a superset of JSON, so one parser serves both formats.
    parsed = parseYaml(text);
  } catch (error) {
    throw new ConfigError(`config file "${path}" is neither valid JSON nor YAML: ${(error as Error).message}`, { option: '--config' }, { cause: error });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`config file "${path}" must hold a mapping of option names to values, found ${Array.isArray(parsed) ? 'a list' : typeof parsed}`, { option: '--config' });
  }
  const names = new Set(known.map((spec) => spec.name));
  for (const key of Object.keys(parsed)) {
    if (!names.has(key)) {
      throw new ConfigError(`config file "${path}": unknown option "${key}"; known options: ${[...names].sort().join(', ')}`, { option: '--config', field: key });
    }
  }
  return parsed as RawOptions;
}

/** Raw options from `MODEL_METRICS_*` environment variables. */
export function readEnvOptions(env: NodeJS.ProcessEnv, known: readonly OptionSpec[]): RawOptions {
  const out: RawOptions = {};
  for (const spec of known) {
    const value = env[envNameOf(spec)];
    if (value !== undefined && value !== '') out[spec.name] = value;
  }
  return out;
}

/** Merges sources by precedence: flags beat environment beat file (SPEC §6). */
export function mergeOptions(file: RawOptions, env: RawOptions, flags: RawOptions): RawOptions {
  return { ...file, ...env, ...flags };
}

function sourceName(spec: OptionSpec): string {
  return `--${spec.name} (or ${envNameOf(spec)}, or "${spec.name}" in --config)`;
}

/** Coerces one raw value to its kind; string values from env/flags are parsed here. */
export function coerceOption(spec: OptionSpec, value: unknown): unknown {
  const option = `--${spec.name}`;
  const bad = (expected: string): never => {
    throw new UsageError(`${sourceName(spec)}: expected ${expected}, got ${JSON.stringify(value)}`, { option });
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
export function coerceAll(raw: RawOptions, known: readonly OptionSpec[]): RawOptions {
  const out: RawOptions = {};
  for (const spec of known) {
    if (raw[spec.name] !== undefined) out[spec.name] = coerceOption(spec, raw[spec.name]);
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
export function oneOf<T extends string>(raw: RawOptions, name: string, choices: readonly T[], fallback?: T): T {
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

/** Validates merged, coerced options into a JobConfig. */
export function resolveJobConfig(raw: RawOptions, env: NodeJS.ProcessEnv): JobConfig {
  const root = raw.root as string | undefined;
  const uris = {} as Record<(typeof datasetNames)[number], string>;
  for (const name of datasetNames) {
    const explicit = raw[name] as string | undefined;
    if (explicit !== undefined) {
      parseStoreUri(explicit, `--${name}`);
      uris[name] = explicit;
    } else if (root !== undefined) {
      parseStoreUri(root, '--root');
      uris[name] = joinUri(root, name);
    } else {
      throw new UsageError(`--root is required (or all of --predictions, --labels, --curated and --metrics); e.g. --root s3://bucket/ml or --root ./data`, { option: '--root' });
    }
  }
  checkOutputsApart(uris, new Set(datasetNames.filter((name) => raw[name] !== undefined)));

  const windowIso = (raw['label-window'] as string | undefined) ?? 'P7D';
  const labelWindow = parseLabelWindow(windowIso);

  const codec = (raw.codec as string | undefined) ?? 'deflate';
  const codecs = writableCodecs();
  if (!codecs.includes(codec)) {
    throw new UsageError(`--codec must be one of ${codecs.join(', ')}, got ${JSON.stringify(codec)}`, { option: '--codec' });
  }

  const sliceKeys = raw['slice-keys'] as string[] | undefined;
  if (sliceKeys !== undefined && new Set(sliceKeys).size !== sliceKeys.length) {
    throw new UsageError(`--slice-keys lists a key twice: ${sliceKeys.join(',')}`, { option: '--slice-keys' });
  }

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
  s3.maxAttempts = positiveInt({ 's3-max-attempts': awsMaxAttempts, ...raw }, 's3-max-attempts', DEFAULT_MAX_ATTEMPTS, 100);
  s3.idleTimeoutMs = positiveInt(raw, 's3-idle-timeout-seconds', DEFAULT_IDLE_TIMEOUT_MS / 1000, 86_400) * 1000;

  const decodeLimits: DecodeLimits = { ...defaultDecodeLimits };
  for (const { name, field, unitBytes } of decodeLimitFlags) {
    // Limits of at most 2^53 bytes: the flag's maximum keeps the product a safe integer.
    if (raw[name] !== undefined) decodeLimits[field] = positiveInt(raw, name, 1, Math.floor(Number.MAX_SAFE_INTEGER / unitBytes)) * unitBytes;
  }

  return {
    ...uris,
    labelWindow,
    sliceKeys,
    maxSliceValues: positiveInt(raw, 'max-slice-values', 100, 1_000_000),
    codec,
    // Parts are moved into place with one CopyObject each, which S3 allows up to 5 GiB.
    partBytes: positiveInt(raw, 'part-size-mb', 128, 4096) * 1024 * 1024,
    readAhead: positiveInt(raw, 'read-ahead', 4, 64),
    s3,
    // At least 10 s: renewals every quarter of it must stay far above one request's latency.
    leaseTtlMs: positiveInt(raw, 'lease-ttl', 60, 3600, 10) * 1000,
    decodeLimits,
    force: raw.force === true,
    onCorrupt: oneOf(raw, 'on-corrupt', ['fail', 'skip'] as const, 'fail'),
    json: raw.json === true,
    logLevel: oneOf(raw, 'log-level', logLevels, 'info'),
    alertsDataset: alertsDatasetOf(raw, root, uris.metrics),
    alerting: resolveAlertConfig(raw),
  };
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
function checkOutputsApart(uris: Record<(typeof datasetNames)[number], string>, explicit: ReadonlySet<string>): void {
  const normal = Object.fromEntries(
    datasetNames.map((name) => {
      const parsed = parseStoreUri(uris[name], `--${name}`);
      const id = parsed.kind === 's3' ? `s3://${parsed.bucket}/${parsed.prefix}` : `file://${parsed.path}`;
      return [name, id.endsWith('/') ? id : `${id}/`];
    }),
  ) as Record<(typeof datasetNames)[number], string>;
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
