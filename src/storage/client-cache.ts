/**
 * The S3 clients of a process, one per distinct client configuration, so every store against one
 * endpoint shares a connection pool. Without a value import of the AWS SDK (only its type), so the
 * CLI can hold the cache without loading the SDK for a local run or `--version` (issue 9).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Settings, StoreCapabilities } from './types.js';

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

/**
 * What an S3 store with these settings declares it enforces (S3Settings.conditionalWrites and
 * .multipartListing): each given setting, else true on AWS (no endpoint) and false on a custom one.
 */
export function s3CapabilitiesOf(settings: S3Settings): StoreCapabilities {
  const aws = settings.endpoint === undefined;
  return { conditionalWrites: settings.conditionalWrites ?? aws, partialWriteListing: settings.multipartListing ?? aws };
}

/** Why an S3 store whose capabilities leave out partialWriteListing lists no multipart uploads (DeleteUnderResult.partialUnlisted). */
export const S3_UPLOADS_UNDECLARED =
  'the store is not declared to list multipart uploads (--s3-multipart-listing: off, or auto on a custom --s3-endpoint)';

/** Closes the S3 clients of `clientCache` (their keep-alive sockets), so the process can exit promptly. */
export function destroyStores(clientCache: Map<string, S3Client> = defaultClients): void {
  for (const client of clientCache.values()) client.destroy();
  clientCache.clear();
}
