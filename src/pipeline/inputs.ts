/**
 * Finding and checking a day's inputs before anything is written: list the partitions, read every
 * object's header, resolve its writer schema against ours (an incompatible one fails the run here,
 * naming the object's URI and the field, SPEC §2) and, under `--on-corrupt skip`, verify each object whole
 * so that a corrupt one is left out entirely rather than half-used.
 */
import type { Type } from 'avsc';
import { type DecodeLimits, decodeContainer, readContainerHeader, resolveWriter } from '../avro/container-reader.js';
import { CorruptObjectError } from '../errors.js';
import type { OnCorrupt } from '../config/resolve.js';
import type { ManifestInput, ManifestSkipped } from '../dataset/manifest.js';
import { inputPartition, isInputObject } from '../dataset/layout.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';
import type { Logger } from '../observability/log.js';
import { sanitizeForLog } from '../observability/log.js';
import { mapBounded } from '../concurrency.js';

/** The first bytes fetched for a header; a larger header is read with a second, unranged request. */
const HEADER_PROBE_BYTES = 64 * 1024;

/** Objects checked at once during preflight (each is one small ranged GET). */
const PREFLIGHT_CONCURRENCY = 16;

/** One dataset's objects for a run. */
export interface DatasetInputs {
  dataset: 'predictions' | 'labels';
  store: ObjectStore;
  readerType: Type;
  objects: ObjectInfo[];
  /** Decoding limits for every object of the dataset (defaults where unset). */
  limits: Partial<DecodeLimits>;
}

/** Lists the `.avro` objects of the given dates' partitions, in key byte order. */
export async function listInputs(
  dataset: DatasetInputs['dataset'],
  store: ObjectStore,
  readerType: Type,
  dates: readonly string[],
  limits: Partial<DecodeLimits> = {},
): Promise<DatasetInputs> {
  const objects: ObjectInfo[] = [];
  for (const date of dates) {
    for (const info of await store.list(inputPartition(date))) if (isInputObject(info.key)) objects.push(info);
  }
  // Partitions are listed in date order and each listing is sorted; dt=YYYY-MM-DD keys sort by date, so this is byte order.
  return { dataset, store, readerType, objects, limits };
}

/** The outcome of preflight: usable objects, the skipped ones, and every input for the manifest. */
export interface PreflightResult {
  usable: ObjectInfo[];
  skipped: ManifestSkipped[];
  inputs: ManifestInput[];
}

async function readHeader(store: ObjectStore, info: ObjectInfo, limits: Partial<DecodeLimits>) {
  const ranged = info.size > HEADER_PROBE_BYTES;
  const stream = await store.read(info.key, ranged ? { end: HEADER_PROBE_BYTES - 1, ifMatch: info.etag } : { ifMatch: info.etag });
  try {
    return await readContainerHeader(stream, store.uriOf(info.key), limits);
  } catch (error) {
    if (!(ranged && error instanceof CorruptObjectError)) throw error;
  } finally {
    stream.destroy();
  }
  // The header is longer than the probe (a very large schema): read from the start without a range.
  const whole = await store.read(info.key, { ifMatch: info.etag });
  try {
    return await readContainerHeader(whole, store.uriOf(info.key), limits);
  } finally {
    whole.destroy();
  }
}

async function verifyWhole(store: ObjectStore, info: ObjectInfo, readerType: Type, limits: Partial<DecodeLimits>): Promise<void> {
  const stream = await store.read(info.key, { ifMatch: info.etag });
  try {
    for await (const block of decodeContainer(stream, { uri: store.uriOf(info.key), readerType, expectedBytes: info.size, limits })) void block;
  } finally {
    stream.destroy();
  }
}

/**
 * Checks every object of a dataset. Schema incompatibility always throws; corruption throws under
 * `fail` and lists the object as skipped under `skip`.
 */
export async function preflight(inputs: DatasetInputs, onCorrupt: OnCorrupt, logger: Logger): Promise<PreflightResult> {
  // Verifying whole objects is decoding work (CPU): two at a time overlap I/O without oversubscribing.
  const concurrency = onCorrupt === 'skip' ? 2 : PREFLIGHT_CONCURRENCY;
  const outcomes = await mapBounded(inputs.objects, concurrency, async (info): Promise<{ fingerprint?: string; skipped?: string }> => {
    try {
      const header = await readHeader(inputs.store, info, inputs.limits);
      resolveWriter(inputs.readerType, header, inputs.store.uriOf(info.key));
      if (onCorrupt === 'skip') await verifyWhole(inputs.store, info, inputs.readerType, inputs.limits);
      return { fingerprint: header.fingerprint };
    } catch (error) {
      if (onCorrupt === 'skip' && error instanceof CorruptObjectError) {
        logger.warn({ event: 'object_skipped', dataset: inputs.dataset, uri: sanitizeForLog(inputs.store.uriOf(info.key)), reason: sanitizeForLog(error.message) }, 'corrupt object left out (--on-corrupt skip)');
        return { skipped: error.message };
      }
      throw error;
    }
  });
  const result: PreflightResult = { usable: [], skipped: [], inputs: [] };
  inputs.objects.forEach((info, i) => {
    const outcome = outcomes[i]!;
    const input: ManifestInput = { dataset: inputs.dataset, key: info.key, size: info.size, etag: info.etag };
    if (outcome.skipped !== undefined) {
      result.skipped.push({ dataset: inputs.dataset, key: info.key, reason: outcome.skipped });
    } else {
      input.schema_fingerprint = outcome.fingerprint!;
      result.usable.push(info);
    }
    result.inputs.push(input);
  });
  return result;
}
