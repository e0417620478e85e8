/**
 * The memory budget of a run (`--memory-budget`, SPEC §9): parsing sizes, the default from the
 * container's memory limit, and the estimates of join-state bytes that decide whether a day is
 * joined in memory or spilled to hash buckets, and into how many.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

const KIB = 1024;
/** Multipliers of the size units: binary (KiB, Ki) and decimal (KB, K), as Kubernetes quantities. */
const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  ki: KIB,
  kib: KIB,
  m: 1e6,
  mb: 1e6,
  mi: KIB ** 2,
  mib: KIB ** 2,
  g: 1e9,
  gb: 1e9,
  gi: KIB ** 3,
  gib: KIB ** 3,
  t: 1e12,
  tb: 1e12,
  ti: KIB ** 4,
  tib: KIB ** 4,
};

/** The smallest budget accepted: below it the per-bucket tables' own fixed size dominates. */
export const MIN_MEMORY_BUDGET = 64 * KIB;
/** The default budget without a container memory limit. */
export const FALLBACK_MEMORY_BUDGET = 2 * KIB ** 3;
/** The share of a container's memory limit the default budget takes (the rest: the runtime, workers, buffers). */
export const LIMIT_SHARE = 0.6;
/** A cgroup limit at or above this is "no limit" (cgroup v1 writes 2^63 rounded down to a page). */
const NO_LIMIT = 2 ** 60;

/**
 * Bytes of a size such as `512MiB`, `1GiB`, `2G`, `1.5GiB` or `1073741824` (units: B; K, M, G, T
 * decimal; Ki/KiB, Mi/MiB, Gi/GiB, Ti/TiB binary; case-insensitive). A UsageError names `option`.
 */
export function parseSize(text: string, option: string, minimum = 1): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match === null ? undefined : UNITS[match[2]!.toLowerCase()];
  if (match === null || unit === undefined) {
    throw new UsageError(`${option}: expected a size such as 512MiB, 1GiB, 2G or a number of bytes, got ${JSON.stringify(text)}`, { option });
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < minimum) {
    throw new UsageError(`${option}: ${JSON.stringify(text)} is ${bytes} bytes; expected at least ${minimum} and at most ${Number.MAX_SAFE_INTEGER}`, { option });
  }
  return bytes;
}

function readLimit(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
  if (!/^\d+$/.test(text)) return undefined; // "max" (cgroup v2): no limit
  const bytes = Number(text);
  return bytes > 0 && bytes < NO_LIMIT ? bytes : undefined;
}

/** The process's cgroup memory limit in bytes (v2 memory.max, else v1 memory.limit_in_bytes), or undefined without one. */
export function cgroupMemoryLimit(cgroupRoot = '/sys/fs/cgroup'): number | undefined {
  return readLimit(`${cgroupRoot}/memory.max`) ?? readLimit(`${cgroupRoot}/memory/memory.limit_in_bytes`);
}

/** The default `--memory-budget`: 60% of the cgroup memory limit, else 2 GiB. */
export function defaultMemoryBudget(cgroupRoot?: string): number {
  const limit = cgroupMemoryLimit(cgroupRoot);
  return limit === undefined ? FALLBACK_MEMORY_BUDGET : Math.max(MIN_MEMORY_BUDGET, Math.floor(limit * LIMIT_SHARE));
}

/**
 * Join-state bytes per record, measured (README "Memory budget and spill"): a label in the
 * LabelIndex (id bytes, table entry and slots, four columns), a prediction in the dedup table and
 * the metric side (combo index, delay row, per-prediction columns).
 */
export const BYTES_PER_LABEL = 80;
export const BYTES_PER_PREDICTION = 71;

/** The join-state bytes of a day or bucket with these record counts. */
export function joinStateBytes(labels: number, predictions: number): number {
  return labels * BYTES_PER_LABEL + predictions * BYTES_PER_PREDICTION;
}

/**
 * The share of the budget one bucket's estimate may fill: its tables grow by doubling (a slot
 * array is briefly held twice), and an estimate is an estimate.
 */
export const BUCKET_FILL = 0.7;

/** Buckets for a join state of `stateBytes` under `budget`: 1 when it fits, else enough that each fills at most BUCKET_FILL. */
export function bucketsFor(stateBytes: number, budget: number): number {
  if (stateBytes <= budget) return 1;
  return Math.ceil(stateBytes / (budget * BUCKET_FILL));
}
