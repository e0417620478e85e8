/**
 * Rules shared by every store, so S3 and local files behave alike: validation of the relative keys
 * and byte ranges callers pass in, the size limit of small reads, and the one listing order (UTF-8
 * byte order, which is S3's) that join semantics depend on (SPEC §3).
 */
import { ModelMetricsError } from '../errors.js';
import type { ReadOptions } from './types.js';

/** Largest object `readSmall` loads whole; manifests are far below it. */
export const READ_SMALL_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * Sorts in place by UTF-8 byte order of `key`, the order S3 lists in. JavaScript's default string
 * order compares UTF-16 code units, which disagrees with UTF-8 for characters above U+FFFF versus
 * U+E000–U+FFFF, so keys are encoded once and compared as bytes.
 */
export function sortByKeyBytes<T extends { key: string }>(items: T[]): T[] {
  const decorated = items.map((item) => ({ bytes: Buffer.from(item.key, 'utf8'), item }));
  decorated.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  for (let i = 0; i < decorated.length; i++) items[i] = decorated[i]!.item;
  return items;
}

/**
 * Throws E_INTERNAL unless `key` is a relative key (`a/b/c.avro`): no leading `/`, no empty, `.`
 * or `..` segments. Keys come from our own code and listings, so a bad one is a bug, and on a local
 * store it could otherwise escape the root directory.
 */
export function assertRelativeKey(key: string, rootUri: string, allowEmpty = false): void {
  if (key.length === 0) {
    if (allowEmpty) return;
    throw new ModelMetricsError('E_INTERNAL', `empty object key under ${rootUri}; expected a relative key such as dt=2026-01-01/part-0.avro`, {
      uri: rootUri,
      key,
    });
  }
  const segments = key.split('/');
  // A prefix may end in "/" (`dt=2026-01-01/`), so an empty last segment is fine there.
  const last = allowEmpty && segments[segments.length - 1] === '' ? segments.length - 1 : segments.length;
  for (let i = 0; i < last; i++) {
    const segment = segments[i]!;
    if (segment === '' || segment === '.' || segment === '..' || segment.includes('\0')) {
      throw new ModelMetricsError(
        'E_INTERNAL',
        `invalid object key ${JSON.stringify(key)} under ${rootUri}: expected a relative key without a leading "/", ` +
          'empty, "." or ".." segments',
        { uri: rootUri, key },
      );
    }
  }
}

/**
 * Validated byte range of a read: `start` is undefined for a whole-object read (no Range header),
 * else the first byte; `end` is the inclusive last byte or undefined for "to the end". Throws
 * E_INTERNAL on negative, fractional or inverted ranges, which only a caller bug produces.
 */
export function checkRange(options: ReadOptions, uri: string, key: string): { start: number | undefined; end: number | undefined } {
  const { start, end } = options;
  for (const [name, value] of [
    ['start', start],
    ['end', end],
  ] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw new ModelMetricsError('E_INTERNAL', `read of ${uri}: ${name} must be a non-negative integer, got ${value}`, { uri, key });
    }
  }
  if (start !== undefined && end !== undefined && end < start) {
    throw new ModelMetricsError('E_INTERNAL', `read of ${uri}: range end ${end} is before start ${start}`, { uri, key });
  }
  const ranged = (start !== undefined && start > 0) || end !== undefined;
  return { start: ranged ? (start ?? 0) : undefined, end };
}

/**
 * The one rule of folder prefixes (ObjectStore.listFolder, ObjectStore.deleteUnder), shared by every
 * store: a non-empty relative key prefix that ends in `/`. Without the slash, a string prefix
 * `stage=final/dt=2026-03-0` would also reach `dt=2026-03-01/` … `dt=2026-03-09/`: for a delete, the
 * difference between removing one dead run's folder and removing its neighbours (issue 5).
 * Throws E_INTERNAL unless `prefix` is a non-empty relative key prefix ending in `/`.
 */
export function assertFolderPrefix(prefix: string, rootUri: string, operation: string): void {
  if (prefix.length === 0 || !prefix.endsWith('/')) {
    throw new ModelMetricsError(
      'E_INTERNAL',
      `${operation} under ${rootUri} needs a folder prefix ending in "/", got ${JSON.stringify(prefix)}; ` +
        `pass ${JSON.stringify(prefix.length === 0 ? 'dt=2026-01-01/' : `${prefix}/`)} to mean that folder (the whole store is never a target)`,
      { uri: rootUri, key: prefix, operation },
    );
  }
  assertRelativeKey(prefix, rootUri, true);
}

/** Keys in UTF-8 byte order (S3 listing order, sortByKeyBytes). */
export function sortedKeys(keys: readonly string[]): string[] {
  return sortByKeyBytes(keys.map((key) => ({ key }))).map((entry) => entry.key);
}
