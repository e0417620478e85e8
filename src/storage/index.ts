/**
 * Entry point of the storage folder for tests, benchmarks and tools: opens the right ObjectStore
 * for a dataset URI with its S3 client created at once (so a caller can add middleware to the
 * client it finds in its cache). This module loads the AWS SDK; the CLI opens stores through
 * open.ts instead, which loads it only when a store is s3:// (issue 9: start-up).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { clientFor, defaultClients } from './client-cache.js';
import { LocalObjectStore } from './local.js';
import { S3ObjectStore, createS3Client } from './s3.js';
import type { ObjectStore, S3Settings } from './types.js';
import { parseStoreUri } from './uri.js';

export type { ObjectInfo, ObjectStore, ReadOptions, S3Settings, WriteCondition, WriteResult } from './types.js';
export { joinUri, parseStoreUri, type StoreLocation } from './uri.js';
export { LocalObjectStore } from './local.js';
export { S3ObjectStore, createS3Client } from './s3.js';
export { destroyStores } from './client-cache.js';
export { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_ATTEMPTS } from './retry-policy.js';

/**
 * Opens the store for `uri` (given for `option`, e.g. `--root`, named in E_USAGE errors). S3 stores
 * with the same endpoint, path style and region share one client from `clientCache`.
 */
export function openStore(
  uri: string,
  settings: S3Settings,
  option: string,
  clientCache: Map<string, S3Client> = defaultClients,
): ObjectStore {
  const location = parseStoreUri(uri, option);
  if (location.kind === 'local') return new LocalObjectStore(location.path);
  return new S3ObjectStore(clientFor(settings, clientCache, createS3Client), location.bucket, location.prefix, settings);
}
