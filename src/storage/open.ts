/**
 * How the CLI opens its stores: like index.ts openStore, but the AWS SDK (about a second of
 * start-up on a small machine) is imported only when an s3:// store is first used, so
 * `model-metrics --version`, `--help` and every run on local paths never load it (issue 9). An
 * s3:// store opened here is a DeferredS3ObjectStore: the façade over a backend whose URIs and
 * capabilities are known at once and whose S3 backend (s3.ts, with the client shared through
 * client-cache.ts) is made on the first request.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { BackendRetry, ConditionalPutOutcome, GetResult, ListEntry, PartialWrite, StoreBackend } from './backend.js';
import { S3_UPLOADS_UNDECLARED, clientFor, defaultClients, s3CapabilitiesOf } from './client-cache.js';
import { LocalObjectStore } from './local.js';
import { LayeredObjectStore } from './object-store.js';
import type { S3Backend } from './s3.js';
import { DELETE_BATCH_SIZE, s3Retry } from './s3-protocol.js';
import type { ObjectInfo, ObjectStore, S3Settings, StoreCapabilities, WriteCondition, WriteResult } from './types.js';
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

/** An S3 store whose backend is loaded on first use. */
export class DeferredS3ObjectStore extends LayeredObjectStore {
  constructor(readonly bucket: string, prefix: string, settings: S3Settings, clientCache: Map<string, S3Client>) {
    super(new DeferredS3Backend(bucket, prefix, settings, clientCache));
  }
}

/**
 * Every primitive waits for the one import of s3.ts; settings the backend refuses (a part size
 * outside S3's limits) fail that first operation with the backend's E_USAGE error.
 */
class DeferredS3Backend implements StoreBackend {
  readonly uri: string;
  readonly capabilities: StoreCapabilities;
  readonly deleteBatchSize = DELETE_BATCH_SIZE;
  private backend: Promise<S3Backend> | undefined;

  constructor(
    readonly bucket: string,
    private readonly prefix: string,
    private readonly settings: S3Settings,
    private readonly clientCache: Map<string, S3Client>,
  ) {
    this.uri = s3RootUri(bucket, prefix);
    this.capabilities = s3CapabilitiesOf(settings);
  }

  get retry(): BackendRetry {
    return s3Retry(this.settings);
  }

  uriOf(key: string): string {
    return s3ObjectUri(this.bucket, this.prefix, key);
  }

  async *listPages(prefix: string, operation: string, pageSize?: number): AsyncGenerator<ListEntry[]> {
    yield* (await this.opened()).listPages(prefix, operation, pageSize);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    return (await this.opened()).head(key);
  }

  async get(key: string, start: number | undefined, end: number | undefined, ifMatch: string | undefined, operation: string): Promise<GetResult> {
    return (await this.opened()).get(key, start, end, ifMatch, operation);
  }

  async put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, contentType?: string): Promise<WriteResult> {
    return (await this.opened()).put(key, body, contentType);
  }

  async putConditional(key: string, body: Uint8Array, condition: WriteCondition, attempt: number): Promise<ConditionalPutOutcome> {
    return (await this.opened()).putConditional(key, body, condition, attempt);
  }

  async rename(sourceKey: string, targetKey: string): Promise<void> {
    return (await this.opened()).rename(sourceKey, targetKey);
  }

  async deleteBatch(keys: readonly string[], operation: string): Promise<void> {
    return (await this.opened()).deleteBatch(keys, operation);
  }

  async *listPartial(prefix: string): AsyncGenerator<PartialWrite> {
    yield* (await this.opened()).listPartial(prefix);
  }

  async abortPartial(write: PartialWrite): Promise<boolean> {
    return (await this.opened()).abortPartial(write);
  }

  readonly partialUnlisted = S3_UPLOADS_UNDECLARED;

  /** The S3 backend, imported and constructed once; a failed construction is retried by the next call. */
  private opened(): Promise<S3Backend> {
    this.backend ??= import('./s3.js').then(({ S3Backend, createS3Client }) => {
      const client = clientFor(this.settings, this.clientCache, createS3Client);
      return new S3Backend(client, this.bucket, this.prefix, this.settings);
    });
    this.backend.catch(() => {
      this.backend = undefined;
    });
    return this.backend;
  }
}
