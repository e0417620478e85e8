/**
 * The S3 backend (AWS S3 and S3-compatible stores such as MinIO) under the ObjectStore façade
 * (object-store.ts): the raw S3 calls, with the client from s3-client.ts and the error mapping of
 * s3-protocol.ts. The only place, with s3-client.ts and index.ts, that touches the AWS SDK's
 * commands. Keys arrive validated and relative to the store root; `keyPrefix` makes them full.
 */
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
  type GetObjectCommandOutput,
  type ListMultipartUploadsCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { ModelMetricsError, StorageError, UsageError } from '../errors.js';
import { type BackendRetry, type ConditionalPutOutcome, type GetResult, type ListEntry, type PartialWrite, PartialWritesRefused, type StoreBackend } from './backend.js';
import { S3_UPLOADS_UNDECLARED, s3CapabilitiesOf } from './client-cache.js';
import { PartHasher, isPlainMd5, multipartEtag } from './multipart-etag.js';
import { LayeredObjectStore } from './object-store.js';
import { completionRecords, recordCompletedParts, type CompletionRecord } from './s3-client.js';
import {
  DELETE_BATCH_SIZE,
  LIST_PAGE_SIZE,
  UPLOADS_PAGE_SIZE,
  contentRangeProblem,
  deleteFailures,
  isMissingObject,
  isPreconditionFailed,
  mapS3Error,
  s3Retry,
  sdkErrorDetails,
  unquoteEtag,
  unsupportedReason,
} from './s3-protocol.js';
import type { ObjectInfo, S3Settings, StoreCapabilities, WriteCondition, WriteResult } from './types.js';
import { s3ObjectUri, s3RootUri } from './uri.js';

export { FALLBACK_REGION, createS3Client } from './s3-client.js';
export { resilienceOf } from './retry-policy.js';

/** S3's smallest part for every part but the last (multipart upload limits). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;

/** S3's largest part. */
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;

/** Default part size: 8 MiB parts allow objects up to ~78 GiB within S3's 10,000-part limit. */
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

/** Default number of parts in flight; memory per write is bounded by queueSize × partSize (32 MiB). */
export const DEFAULT_QUEUE_SIZE = 4;

/** An object store rooted at `s3://bucket/prefix`: the façade over an S3Backend. */
export class S3ObjectStore extends LayeredObjectStore {
  constructor(client: S3Client, readonly bucket: string, prefix: string, settings: S3Settings = {}) {
    super(new S3Backend(client, bucket, prefix, settings));
  }
}

/** The raw S3 calls of one store root. */
export class S3Backend implements StoreBackend {
  readonly uri: string;
  readonly capabilities: StoreCapabilities;
  readonly retry: BackendRetry;
  readonly deleteBatchSize = DELETE_BATCH_SIZE;
  /** `prefix/`, or '' at the bucket root: prepended to every key. */
  private readonly keyPrefix: string;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
    prefix: string,
    settings: S3Settings = {},
  ) {
    const trimmed = prefix.replace(/^\/+|\/+$/g, '');
    this.keyPrefix = trimmed === '' ? '' : `${trimmed}/`;
    this.uri = s3RootUri(bucket, prefix);
    this.capabilities = s3CapabilitiesOf(settings);
    this.retry = s3Retry(settings);
    this.partSize = settings.uploadPartSize ?? DEFAULT_PART_SIZE;
    this.queueSize = settings.uploadQueueSize ?? DEFAULT_QUEUE_SIZE;
    recordCompletedParts(client);
    if (!Number.isSafeInteger(this.partSize) || this.partSize < MIN_PART_SIZE || this.partSize > MAX_PART_SIZE) {
      throw new UsageError(
        `S3 upload part size ${this.partSize} is out of range; expected an integer from ${MIN_PART_SIZE} (5 MiB) to ${MAX_PART_SIZE} (5 GiB), the S3 multipart limits`,
        { option: 'uploadPartSize', uri: this.uri },
      );
    }
    if (!Number.isSafeInteger(this.queueSize) || this.queueSize < 1) {
      throw new UsageError(`S3 upload queue size ${this.queueSize} is invalid; expected a positive integer`, {
        option: 'uploadQueueSize',
        uri: this.uri,
      });
    }
  }

  uriOf(key: string): string {
    return s3ObjectUri(this.bucket, this.keyPrefix, key);
  }

  /** Keys ending in `/` (and the root's own key) are folder markers, made by consoles. */
  async *listPages(prefix: string, operation: string, pageSize = LIST_PAGE_SIZE): AsyncGenerator<ListEntry[]> {
    const pages = paginateListObjectsV2({ client: this.client, pageSize }, { Bucket: this.bucket, Prefix: this.keyPrefix + prefix });
    try {
      for await (const page of pages) {
        const entries: ListEntry[] = [];
        for (const { Key: fullKey, Size: size, ETag: etag } of page.Contents ?? []) {
          if (fullKey?.startsWith(this.keyPrefix) !== true) continue;
          const key = fullKey.slice(this.keyPrefix.length);
          entries.push({ kind: key === '' || key.endsWith('/') ? 'marker' : 'object', key, size: size ?? 0, etag: unquoteEtag(etag) });
        }
        yield entries;
      }
    } catch (error) {
      throw this.mapError(error, operation, prefix);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
      return { key, size: response.ContentLength ?? 0, etag: unquoteEtag(response.ETag) };
    } catch (error) {
      if (isMissingObject(error)) return undefined;
      throw this.mapError(error, 'head', key);
    }
  }

  /** One GetObject, its Content-Range checked against the range asked for (the façade checks the ETag). */
  async get(key: string, start: number | undefined, end: number | undefined, ifMatch: string | undefined, operation: string): Promise<GetResult> {
    const uri = this.uriOf(key);
    const range = start === undefined ? undefined : `bytes=${start}-${end ?? ''}`;
    let response: GetObjectCommandOutput;
    try {
      response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.keyPrefix + key,
          ...(range === undefined ? {} : { Range: range }),
          // RFC 9110 §13.1.1: If-Match takes a quoted entity-tag.
          ...(ifMatch === undefined ? {} : { IfMatch: `"${ifMatch}"` }),
        }),
      );
    } catch (error) {
      throw this.mapError(error, operation, key, ifMatch);
    }
    const body = response.Body;
    if (!(body instanceof Readable)) {
      throw new ModelMetricsError('E_INTERNAL', `GetObject of ${uri} returned no Node.js stream body`, { operation, uri, key });
    }
    if (start !== undefined) {
      const problem = contentRangeProblem(response.ContentRange, start, end);
      if (problem !== undefined) {
        body.destroy();
        throw new StorageError(
          `the store answered a read of ${uri} for ${range} with ${problem}; reading on would yield the wrong bytes. ` +
            'Use an S3-compatible store with correct ranged GETs (RFC 9110 §14.4)',
          { operation, uri, key, offset: start, contentRange: response.ContentRange },
        );
      }
    }
    return { body, length: response.ContentLength, etag: unquoteEtag(response.ETag) };
  }

  /** A PutObject, or a multipart upload through lib-storage when larger than a part (memory: queueSize × partSize). */
  async put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, contentType?: string): Promise<WriteResult> {
    let size = 0;
    let bodyError: { error: unknown } | undefined;
    async function* counted(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of chunks) {
          size += chunk.byteLength;
          yield chunk;
        }
      } catch (error) {
        bodyError = { error };
        throw error;
      }
    }
    const source = body instanceof Uint8Array ? body : Readable.from(counted(body), { objectMode: false });
    if (body instanceof Uint8Array) size = body.byteLength;
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: this.keyPrefix + key,
        Body: source,
        ...(contentType === undefined ? {} : { ContentType: contentType }),
      },
      partSize: this.partSize,
      queueSize: this.queueSize,
      // On failure Upload waits for its workers and aborts the multipart upload, so no parts linger.
      leavePartsOnError: false,
    });
    const completion: CompletionRecord = {};
    try {
      const result = await completionRecords.run(completion, () => upload.done());
      const etag = result.ETag === undefined ? (await this.head(key))?.etag ?? '' : unquoteEtag(result.ETag);
      return { key, size, etag };
    } catch (error) {
      // The caller's body failed (e.g. the Avro writer threw): its error is the one that matters,
      // even when aborting the multipart upload failed as well.
      if (bodyError !== undefined) throw bodyError.error;
      const landed = completion.partEtags === undefined ? undefined : await this.completedAnyway(key, size, completion.partEtags);
      if (landed !== undefined) return landed;
      throw this.mapError(error, 'write', key);
    } finally {
      if (source instanceof Readable) source.destroy();
    }
  }

  /**
   * After a failed multipart upload whose CompleteMultipartUpload was sent: the object, when it
   * holds exactly the parts we uploaded (the Complete was applied, its response lost; see
   * multipart-etag.ts). Undefined when it does not, or when we cannot tell.
   */
  private async completedAnyway(key: string, size: number, partEtags: readonly string[]): Promise<WriteResult | undefined> {
    const info = await this.head(key).catch(() => undefined);
    if (info === undefined || info.size !== size) return undefined;
    if (info.etag === multipartEtag(partEtags)) return { key, size, etag: info.etag };
    if (!isPlainMd5(info.etag)) return undefined;
    // A store that gives multipart objects a plain MD5 (s3rver): hash the parts of what it holds.
    const hasher = new PartHasher(this.partSize);
    try {
      const { body, etag } = await this.get(key, undefined, undefined, info.etag, 'write');
      if (etag !== info.etag) {
        body.destroy();
        return undefined;
      }
      for await (const chunk of body) hasher.update(chunk as Buffer);
    } catch {
      return undefined;
    }
    const stored = hasher.partMd5s();
    return stored.length === partEtags.length && stored.every((md5, i) => md5 === partEtags[i]) ? { key, size, etag: info.etag } : undefined;
  }

  /** A server-side CopyObject (single request, so objects up to 5 GiB), then a delete of the source. */
  async rename(sourceKey: string, targetKey: string): Promise<void> {
    // CopySource is "bucket/key" with the key URL-encoded. "/" and "=" (every partition key has one)
    // stay literal: S3 accepts them as they are, and s3rver decodes the header with decodeURI,
    // which leaves an encoded "=" (%3D) encoded. "?" and "#" must be encoded (S3 reads ?versionId).
    const copySource = `${this.bucket}/${encodeURIComponent(this.keyPrefix + sourceKey).replace(/%2F/g, '/').replace(/%3D/g, '=')}`;
    try {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + targetKey, CopySource: copySource }));
    } catch (error) {
      throw this.mapError(error, 'move', sourceKey);
    }
    await this.deleteBatch([sourceKey], 'delete');
  }

  /**
   * A conditional PutObject (`If-None-Match: *` / `If-Match`), which AWS S3 evaluates atomically
   * (since 2024-08 and 2024-11) and s3rver 3.7.1 ignores (lib/controllers/object.js putObject).
   */
  async putConditional(key: string, body: Uint8Array, condition: WriteCondition, attempt: number): Promise<ConditionalPutOutcome> {
    const operation = 'writeConditional';
    try {
      const response = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.keyPrefix + key,
          Body: body,
          ContentLength: body.byteLength,
          // RFC 9110 §13.1.1: If-Match takes a quoted entity-tag; `*` stays bare.
          ...('ifNoneMatch' in condition ? { IfNoneMatch: '*' } : { IfMatch: `"${condition.ifMatch}"` }),
        }),
      );
      return { written: { key, size: body.byteLength, etag: unquoteEtag(response.ETag) } };
    } catch (error) {
      const details = sdkErrorDetails(error);
      // After a retry, the 412 may answer our own first attempt, applied but its response lost.
      if (isPreconditionFailed(details)) return { refused: true, afterRetry: attempt > 1 || (details.attempts ?? 1) > 1 };
      // S3 "If-Match" on a key that no longer exists: the version we meant to replace is gone.
      if ('ifMatch' in condition && isMissingObject(error)) return { refused: true, afterRetry: false };
      const mapped = this.mapError(error, operation, key, undefined, attempt > 1 ? attempt : undefined);
      // 409 ConditionalRequestConflict: another conditional write to the key was in flight.
      if (details.status === 409 || details.name === 'ConditionalRequestConflict') return { conflict: mapped };
      throw mapped;
    }
  }

  /**
   * One DeleteObjects request; a key reported missing counts as deleted. s3rver 3.7.1 deletes a
   * batch's keys concurrently and then removes the folders they emptied, which fails (500
   * InternalError) when two keys empty the same folder at once; the SDK retries the request (a
   * 5xx), and the retry finds the rest of the batch, so it converges.
   */
  async deleteBatch(keys: readonly string[], operation: string): Promise<void> {
    let failures: { key: string; code: string; message: string }[];
    try {
      const response = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: keys.map((key) => ({ Key: this.keyPrefix + key })), Quiet: true },
        }),
      );
      failures = (response.Errors ?? [])
        .filter((entry) => entry.Code !== 'NoSuchKey')
        .map((entry) => ({ key: (entry.Key ?? '').slice(this.keyPrefix.length), code: entry.Code ?? 'Unknown', message: entry.Message ?? '' }));
    } catch (error) {
      throw this.mapError(error, operation, keys[0]!);
    }
    if (failures.length > 0) throw deleteFailures(this.uri, operation, keys.length, failures);
  }

  /** The multipart uploads under the folder (ListMultipartUploads). */
  async *listPartial(prefix: string): AsyncGenerator<PartialWrite> {
    const fullPrefix = this.keyPrefix + prefix;
    for await (const page of this.uploadPages(prefix)) {
      for (const upload of page.Uploads ?? []) {
        if (upload.Key?.startsWith(fullPrefix) !== true || upload.UploadId === undefined) continue;
        yield { key: upload.Key.slice(this.keyPrefix.length), id: upload.UploadId, live: false, deletableByKey: false };
      }
    }
  }

  /** Aborts one multipart upload; false when it was already gone or the store cannot abort. */
  async abortPartial(write: PartialWrite): Promise<boolean> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.keyPrefix + write.key, UploadId: write.id }));
      return true;
    } catch (error) {
      const { name, status } = sdkErrorDetails(error);
      // Completed or aborted meanwhile (NoSuchUpload, 404): nothing left to remove.
      if (name === 'NoSuchUpload' || (status === 404 && name !== 'NoSuchBucket')) return false;
      refusedUploads(error, 'AbortMultipartUpload');
      throw this.mapError(error, 'abortUpload', write.key);
    }
  }

  /** Why this store lists no uploads, when its capabilities leave them out. */
  readonly partialUnlisted = S3_UPLOADS_UNDECLARED;

  /**
   * The pages of ListMultipartUploads under the folder `prefix`; a store that does not implement
   * the call or forbids it throws PartialWritesRefused. MinIO answers an empty list for any prefix
   * that is not an exact object name: there it finds nothing, and that is not an error.
   */
  private async *uploadPages(prefix: string): AsyncGenerator<ListMultipartUploadsCommandOutput> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page: ListMultipartUploadsCommandOutput;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.keyPrefix + prefix,
            MaxUploads: UPLOADS_PAGE_SIZE,
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
          }),
        );
      } catch (error) {
        refusedUploads(error, 'ListMultipartUploads');
        throw this.mapError(error, 'listUploads', prefix);
      }
      yield page;
      if (page.IsTruncated !== true) return;
      // A page that says "more" without moving the markers would list forever.
      if (page.NextKeyMarker === keyMarker && page.NextUploadIdMarker === uploadIdMarker) {
        throw new StorageError(
          `S3 ListMultipartUploads under ${this.uriOf(prefix)} returned a truncated page without new markers (after key ${JSON.stringify(keyMarker ?? '')}); the store is not S3-compatible here`,
          { operation: 'listUploads', uri: this.uriOf(prefix), key: prefix },
        );
      }
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  private mapError(error: unknown, operation: string, key: string, ifMatch?: string, attempts?: number): ModelMetricsError {
    return mapS3Error(error, { operation, uri: this.uriOf(key), key, bucket: this.bucket }, ifMatch, attempts);
  }
}

/**
 * Throws PartialWritesRefused when `error` says the store does not implement or allow a
 * multipart-upload call (s3-protocol.ts unsupportedReason), naming the way out; returns otherwise.
 */
function refusedUploads(error: unknown, api: string): void {
  const reason = unsupportedReason(error, api);
  if (reason === undefined) return;
  throw new PartialWritesRefused(
    `${reason}: grant s3:ListBucketMultipartUploads and s3:AbortMultipartUpload, or declare that the store does not list uploads with --s3-multipart-listing off`,
  );
}
