/**
 * Entry point of the storage folder: opens the right ObjectStore for a dataset URI and owns the S3
 * clients, one per distinct client configuration, so every store against one endpoint shares a
 * connection pool.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { LocalObjectStore } from './local.js';
import { S3ObjectStore, createS3Client } from './s3.js';
import type { ObjectStore, S3Settings } from './types.js';
import { parseStoreUri } from './uri.js';

export type { ObjectInfo, ObjectStore, ReadOptions, S3Settings, WriteCondition, WriteResult } from './types.js';
export { joinUri, parseStoreUri, type StoreLocation } from './uri.js';
export { LocalObjectStore } from './local.js';
export { S3ObjectStore, createS3Client } from './s3.js';
export { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_ATTEMPTS } from './retry-policy.js';

/** Clients shared by every openStore call that passes no cache of its own; released by destroyStores. */
const defaultClients = new Map<string, S3Client>();

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
  // Upload sizes are per store, not per client, so they are not part of the client's identity;
  // retries and timeouts are configured on the client, so they are.
  const clientKey = JSON.stringify([
    settings.endpoint ?? null,
    settings.forcePathStyle ?? false,
    settings.region ?? null,
    settings.maxAttempts ?? null,
    settings.idleTimeoutMs ?? null,
    settings.retryBaseDelayMs ?? null,
  ]);
  let client = clientCache.get(clientKey);
  if (client === undefined) {
    client = createS3Client(settings);
    clientCache.set(clientKey, client);
  }
  return new S3ObjectStore(client, location.bucket, location.prefix, settings);
}

/** Closes the S3 clients of `clientCache` (their keep-alive sockets), so the process can exit promptly. */
export function destroyStores(clientCache: Map<string, S3Client> = defaultClients): void {
  for (const client of clientCache.values()) client.destroy();
  clientCache.clear();
}
