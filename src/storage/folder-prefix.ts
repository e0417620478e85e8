/**
 * The one rule of folder prefixes (ObjectStore.listFolder, ObjectStore.deleteUnder), shared by every
 * store: a non-empty relative key prefix that ends in `/`. Without the slash, a string prefix
 * `stage=final/dt=2026-03-0` would also reach `dt=2026-03-01/` … `dt=2026-03-09/`: for a delete, the
 * difference between removing one dead run's folder and removing its neighbours (issue 5).
 */
import { ModelMetricsError } from '../errors.js';
import { assertRelativeKey, sortByKeyBytes } from './store-rules.js';

/** Throws E_INTERNAL unless `prefix` is a non-empty relative key prefix ending in `/`. */
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

/** Keys in UTF-8 byte order (S3 listing order, store-rules.ts sortByKeyBytes). */
export function sortedKeys(keys: readonly string[]): string[] {
  return sortByKeyBytes(keys.map((key) => ({ key }))).map((entry) => entry.key);
}
