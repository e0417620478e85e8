/**
 * The S3 clients of a process, one per distinct client configuration, so every store against one
 * endpoint shares a connection pool. Without a value import of the AWS SDK (only its type), so the
 * CLI can hold the cache without loading the SDK for a local run or `--version` (issue 9).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from './types.js';

/** Clients shared by every openStore call that passes no cache of its own; released by destroyStores. */
export const defaultClients = new Map<string, S3Client>();

/**
 * The identity of the client a store with these settings needs. Upload sizes are per store, not per
 * client, so they are not part of it; retries and timeouts are configured on the client, so they are.
 */
export function clientKeyOf(settings: S3Settings): string {
  return JSON.stringify([
    settings.endpoint ?? null,
    settings.forcePathStyle ?? false,
    settings.region ?? null,
    settings.maxAttempts ?? null,
    settings.idleTimeoutMs ?? null,
    settings.retryBaseDelayMs ?? null,
  ]);
}

/** The cached client for `settings`, made by `create` the first time. */
export function clientFor(settings: S3Settings, clientCache: Map<string, S3Client>, create: (settings: S3Settings) => S3Client): S3Client {
  const key = clientKeyOf(settings);
  let client = clientCache.get(key);
  if (client === undefined) {
    client = create(settings);
    clientCache.set(key, client);
  }
  return client;
}

/** StoreCapabilities.conditionalWrites of an S3 store with these settings (S3Settings.conditionalWrites). */
export function conditionalWritesOf(settings: S3Settings): boolean {
  return settings.conditionalWrites ?? settings.endpoint === undefined;
}

/** Closes the S3 clients of `clientCache` (their keep-alive sockets), so the process can exit promptly. */
export function destroyStores(clientCache: Map<string, S3Client> = defaultClients): void {
  for (const client of clientCache.values()) client.destroy();
  clientCache.clear();
}
