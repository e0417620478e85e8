/**
 * How the CLI opens its stores: like index.ts openStore, but the AWS SDK (about a second of
 * start-up on a small machine) is imported only when an s3:// store is first used, so
 * `model-metrics --version`, `--help` and every run on local paths never load it (issue 9). An
 * s3:// store opened here is a DeferredS3ObjectStore: its URIs are known at once, its backend
 * (s3.ts, with the client shared through client-cache.ts) is made on the first request.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { clientFor, conditionalWritesOf, defaultClients } from './client-cache.js';
import { LocalObjectStore } from './local.js';
import type { DeleteUnderResult, FolderListing, ObjectInfo, ObjectStore, ReadOptions, S3Settings, WriteCondition, WriteResult } from './types.js';
import { parseStoreUri, s3ObjectUri, s3RootUri } from './uri.js';

export { destroyStores } from './client-cache.js';

/**
 * Opens the store for `uri` (given for `option`, e.g. `--root`, named in E_USAGE errors) without
 * loading the AWS SDK; S3 stores share one client per configuration from `clientCache`.
 */
export function openStore(uri: string, settings: S3Settings, option: string, clientCache: Map<string, S3Client> = defaultClients): ObjectStore {
  const location = parseStoreUri(uri, option);
  if (location.kind === 'local') return new LocalObjectStore(location.path);
  return new DeferredS3ObjectStore(location.bucket, location.prefix, settings, clientCache);
}

/**
 * An S3 store whose backend is loaded on first use. Every operation waits for the one import of
 * s3.ts; settings the backend refuses (a part size outside S3's limits) fail that first operation
 * with the backend's E_USAGE error.
 */
export class DeferredS3ObjectStore implements ObjectStore {
  readonly uri: string;
  readonly capabilities: { conditionalWrites: boolean };
  private backend: Promise<ObjectStore> | undefined;

  constructor(
    readonly bucket: string,
    private readonly prefix: string,
    private readonly settings: S3Settings,
    private readonly clientCache: Map<string, S3Client>,
  ) {
    this.uri = s3RootUri(bucket, prefix);
    this.capabilities = { conditionalWrites: conditionalWritesOf(settings) };
  }

  uriOf(key: string): string {
    return s3ObjectUri(this.bucket, this.prefix, key);
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return this.opened().then((store) => store.list(prefix));
  }

  hasAny(prefix: string): Promise<boolean> {
    return this.opened().then((store) => store.hasAny(prefix));
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.opened().then((store) => store.head(key));
  }

  read(key: string, options?: ReadOptions): Promise<Readable> {
    return this.opened().then((store) => store.read(key, options));
  }

  readSmall(key: string): Promise<Buffer | undefined> {
    return this.opened().then((store) => store.readSmall(key));
  }

  write(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, contentType?: string): Promise<WriteResult> {
    return this.opened().then((store) => store.write(key, body, contentType));
  }

  move(sourceKey: string, targetKey: string): Promise<void> {
    return this.opened().then((store) => store.move(sourceKey, targetKey));
  }

  writeConditional(key: string, body: Uint8Array, condition: WriteCondition): Promise<WriteResult | undefined> {
    return this.opened().then((store) => store.writeConditional(key, body, condition));
  }

  delete(keys: readonly string[]): Promise<void> {
    return this.opened().then((store) => store.delete(keys));
  }

  listFolder(prefix: string): Promise<FolderListing> {
    return this.opened().then((store) => store.listFolder(prefix));
  }

  deleteUnder(prefix: string): Promise<DeleteUnderResult> {
    return this.opened().then((store) => store.deleteUnder(prefix));
  }

  /** The S3 backend, imported and constructed once; a failed construction is retried by the next call. */
  private opened(): Promise<ObjectStore> {
    this.backend ??= import('./s3.js').then(({ S3ObjectStore, createS3Client }) => {
      const client = clientFor(this.settings, this.clientCache, createS3Client);
      return new S3ObjectStore(client, this.bucket, this.prefix, this.settings);
    });
    this.backend.catch(() => {
      this.backend = undefined;
    });
    return this.backend;
  }
}
