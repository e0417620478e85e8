/**
 * The S3 object store (AWS S3 and S3-compatible stores such as MinIO). The only place, with
 * index.ts, that touches the AWS SDK. Listings are forced into UTF-8 byte order, ETags lose their
 * quotes, and every SDK failure becomes a StorageError (or NotFound / ConcurrentChange) naming the
 * operation, the s3:// URI and the attempt count, never credentials or signed URLs.
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
  type CompleteMultipartUploadCommandInput,
  type GetObjectCommandOutput,
  type ListMultipartUploadsCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { AsyncLocalStorage } from 'node:async_hooks';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ConcurrentChangeError,
  ModelMetricsError,
  NotFoundError,
  StorageError,
  UsageError,
  describeError,
} from '../errors.js';
import { READ_SMALL_LIMIT_BYTES, assertFolderPrefix, assertRelativeKey, checkRange, sortByKeyBytes, sortedKeys } from './store-rules.js';
import { resumableBody, type BodyPart } from './resumable-body.js';
import { PartHasher, isPlainMd5, multipartEtag } from './multipart-etag.js';
import {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_RETRY_TIMING,
  MAX_RETRY_DELAY_MS,
  S3RetryStrategy,
  retryDelayMs,
  type RetryTiming,
} from './retry-policy.js';
import { s3ObjectUri, s3RootUri } from './uri.js';
import { conditionalWritesOf } from './client-cache.js';
import type { DeleteUnderResult, FolderListing, ObjectInfo, ObjectStore, ReadOptions, S3Settings, WriteCondition, WriteResult } from './types.js';

/** What the CompleteMultipartUpload of one write() sent: the part ETags, in part order, unquoted. */
interface CompletionRecord {
  partEtags?: string[];
}

/**
 * The CompletionRecord of the write() in progress: lib-storage keeps its part ETags private, so
 * the `recordCompletedParts` middleware copies them from the Complete request, which runs within
 * the write's async context.
 */
const completionRecords = new AsyncLocalStorage<CompletionRecord>();

/**
 * Why a client cannot list or abort multipart uploads in a bucket, once the store has said so
 * (s3rver 3.7.1 answers ListMultipartUploads with 501 NotImplemented, which the SDK retries as a
 * server error): asked once per client and bucket, so the curated and metrics stores of a run,
 * which share both, pay for it once per process instead of before every delete.
 */
const uploadsUnsupportedByClient = new WeakMap<S3Client, Map<string, string>>();

/** Installs the `recordCompletedParts` middleware on a client (idempotent: it replaces itself). */
function recordCompletedParts(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => (args) => {
      const record = completionRecords.getStore();
      if (record !== undefined && context.commandName === 'CompleteMultipartUploadCommand') {
        const parts = (args.input as CompleteMultipartUploadCommandInput).MultipartUpload?.Parts ?? [];
        record.partEtags = [...parts].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0)).map((part) => unquoteEtag(part.ETag));
      }
      return next(args);
    },
    { step: 'initialize', name: 'recordCompletedParts', override: true },
  );
}

/** Region used when neither the settings nor the AWS chain (AWS_REGION, profile) name one. */
export const FALLBACK_REGION = 'us-east-1';

/** S3's smallest part for every part but the last (multipart upload limits). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;

/** S3's largest part. */
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;

/** Default part size: 8 MiB parts allow objects up to ~78 GiB within S3's 10,000-part limit. */
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

/** Default number of parts in flight; memory per write is bounded by queueSize × partSize (32 MiB). */
export const DEFAULT_QUEUE_SIZE = 4;

/** DeleteObjects takes at most 1000 keys per request (S3 API limit). */
const DELETE_BATCH_SIZE = 1000;

/** ListObjectsV2 returns at most 1000 keys per page (S3 API limit). */
const LIST_PAGE_SIZE = 1000;

/** ListMultipartUploads returns at most 1000 uploads per page (S3 API limit). */
const UPLOADS_PAGE_SIZE = 1000;

/** Creates an S3 client for the settings; credentials come from the default AWS chain. */
export function createS3Client(settings: S3Settings): S3Client {
  const customEndpoint = settings.endpoint !== undefined;
  const { maxAttempts, idleTimeoutMs, timing } = resilienceOf(settings);
  return new S3Client({
    region: settings.region ?? regionFromChainOrFallback(),
    forcePathStyle: settings.forcePathStyle ?? false,
    maxAttempts,
    retryStrategy: new S3RetryStrategy(maxAttempts, timing),
    requestHandler: {
      // socketTimeout is an idle timeout (socket.setTimeout): it fires when no byte moves for this
      // long, before the response headers (a hung request) and while the SDK collects a response
      // body (List, Copy, DeleteObjects, errors), so a stalled store cannot hang the job. It is not
      // `requestTimeout`, which in @smithy/node-http-handler 4 only logs a warning by default and
      // stops at the headers. GetObject bodies also get our own idle watchdog (resumable-body.ts).
      connectionTimeout: idleTimeoutMs,
      socketTimeout: idleTimeoutMs,
    },
    ...(customEndpoint
      ? {
          endpoint: settings.endpoint,
          // Recent SDKs send flexible checksums (aws-chunked bodies with trailers) by default. s3rver
          // and several S3-compatible stores do not decode that framing and store it inside the
          // object: silent corruption. Checksums only where the API requires them (DeleteObjects).
          requestChecksumCalculation: 'WHEN_REQUIRED' as const,
          responseChecksumValidation: 'WHEN_REQUIRED' as const,
        }
      : {}),
  });
}

/** The validated retry and timeout settings of a client or store, defaults filled in. */
export function resilienceOf(settings: S3Settings): { maxAttempts: number; idleTimeoutMs: number; timing: RetryTiming } {
  const maxAttempts = settings.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const idleTimeoutMs = settings.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const baseDelayMs = settings.retryBaseDelayMs ?? DEFAULT_RETRY_TIMING.baseDelayMs;
  for (const [option, value] of [
    ['maxAttempts', maxAttempts],
    ['idleTimeoutMs', idleTimeoutMs],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new UsageError(`S3 setting ${option} is ${value}; expected a positive integer`, { option });
    }
  }
  if (!Number.isSafeInteger(baseDelayMs) || baseDelayMs < 0) {
    throw new UsageError(`S3 setting retryBaseDelayMs is ${baseDelayMs}; expected a non-negative integer`, { option: 'retryBaseDelayMs' });
  }
  return { maxAttempts, idleTimeoutMs, timing: { baseDelayMs, maxDelayMs: MAX_RETRY_DELAY_MS } };
}

/**
 * A region provider: the region of the SDK's own chain (AWS_REGION, the profile's config file), or
 * FALLBACK_REGION, because the SDK throws "Region is missing" instead of defaulting. Resolved once per
 * client, through a throwaway client so that exactly the SDK's rules apply.
 */
function regionFromChainOrFallback(): () => Promise<string> {
  let resolved: Promise<string> | undefined;
  return () => {
    resolved ??= (async () => {
      const probe = new S3Client({});
      try {
        return await probe.config.region();
      } catch {
        return FALLBACK_REGION;
      } finally {
        probe.destroy();
      }
    })();
    return resolved;
  };
}

/** An object store rooted at `s3://bucket/prefix`. */
export class S3ObjectStore implements ObjectStore {
  readonly uri: string;
  readonly capabilities: { conditionalWrites: boolean };
  /** `prefix/`, or '' at the bucket root: prepended to every key. */
  private readonly keyPrefix: string;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly maxAttempts: number;
  private readonly idleTimeoutMs: number;
  private readonly retryTiming: RetryTiming;

  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
    prefix: string,
    settings: S3Settings = {},
  ) {
    const trimmed = prefix.replace(/^\/+|\/+$/g, '');
    this.keyPrefix = trimmed === '' ? '' : `${trimmed}/`;
    this.uri = s3RootUri(bucket, prefix);
    this.capabilities = { conditionalWrites: conditionalWritesOf(settings) };
    this.partSize = settings.uploadPartSize ?? DEFAULT_PART_SIZE;
    this.queueSize = settings.uploadQueueSize ?? DEFAULT_QUEUE_SIZE;
    ({ maxAttempts: this.maxAttempts, idleTimeoutMs: this.idleTimeoutMs, timing: this.retryTiming } = resilienceOf(settings));
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

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertRelativeKey(prefix, this.uri, true);
    const objects: ObjectInfo[] = [];
    try {
      const pages = paginateListObjectsV2(
        { client: this.client, pageSize: LIST_PAGE_SIZE },
        { Bucket: this.bucket, Prefix: this.keyPrefix + prefix },
      );
      for await (const page of pages) {
        for (const entry of page.Contents ?? []) {
          const info = this.toObjectInfo(entry.Key, entry.Size, entry.ETag);
          if (info !== undefined) objects.push(info);
        }
      }
    } catch (error) {
      throw this.mapError(error, 'list', prefix);
    }
    // s3rver (and some S3-compatible stores) do not list in S3's byte order; SPEC §3 needs it.
    return sortByKeyBytes(objects);
  }

  async hasAny(prefix: string): Promise<boolean> {
    assertRelativeKey(prefix, this.uri, true);
    try {
      // One key per page: usually a single request; folder markers (`x/`) are skipped like in list.
      const pages = paginateListObjectsV2(
        { client: this.client, pageSize: 1 },
        { Bucket: this.bucket, Prefix: this.keyPrefix + prefix },
      );
      for await (const page of pages) {
        for (const entry of page.Contents ?? []) {
          if (this.toObjectInfo(entry.Key, entry.Size, entry.ETag) !== undefined) return true;
        }
      }
      return false;
    } catch (error) {
      throw this.mapError(error, 'hasAny', prefix);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertRelativeKey(key, this.uri);
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
      return { key, size: response.ContentLength ?? 0, etag: unquoteEtag(response.ETag) };
    } catch (error) {
      if (isMissingObject(error)) return undefined;
      throw this.mapError(error, 'head', key);
    }
  }

  /**
   * A streamed body that survives the store: failures before the headers are the SDK's retries;
   * a body that breaks off, ends short of its Content-Length or stalls is resumed from the next
   * byte with a ranged GET pinned to the object's ETag (resumable-body.ts), so the caller sees one
   * continuous run of bytes or an error, never a silent mix of two versions.
   */
  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    assertRelativeKey(key, this.uri);
    const { start, end } = checkRange(options, this.uriOf(key), key);
    return (await this.openResumable(key, start, end, options.ifMatch, 'read')).stream;
  }

  async readSmall(key: string): Promise<Buffer | undefined> {
    assertRelativeKey(key, this.uri);
    const uri = this.uriOf(key);
    let opened: { stream: Readable; length: number | undefined };
    try {
      opened = await this.openResumable(key, undefined, undefined, undefined, 'readSmall');
    } catch (error) {
      if (error instanceof NotFoundError && isMissingObject(error.cause)) return undefined;
      throw error;
    }
    const tooLarge = (size: number): StorageError =>
      new StorageError(
        `${uri} has ${size} bytes, more than the ${READ_SMALL_LIMIT_BYTES} bytes expected of a small object such as a manifest; ` +
          'check that the key names a manifest',
        { operation: 'readSmall', uri, key, size },
      );
    if ((opened.length ?? 0) > READ_SMALL_LIMIT_BYTES) {
      opened.stream.destroy();
      throw tooLarge(opened.length ?? 0);
    }
    // Bounded by READ_SMALL_LIMIT_BYTES, checked on the announced length and again while reading.
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of opened.stream) {
      size += (chunk as Buffer).length;
      if (size > READ_SMALL_LIMIT_BYTES) {
        opened.stream.destroy();
        throw tooLarge(size);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks, size);
  }

  /** The first body of a read, wrapped so that failures later in the body are resumed. */
  private async openResumable(
    key: string,
    start: number | undefined,
    end: number | undefined,
    ifMatch: string | undefined,
    operation: string,
  ): Promise<{ stream: Readable; length: number | undefined }> {
    const uri = this.uriOf(key);
    const first = await this.getBody(key, start, end, ifMatch, operation);
    // The rest must come from the same version: the caller's ETag, else the one the first body had.
    const pin = ifMatch ?? (first.etag === '' ? undefined : first.etag);
    const stream = resumableBody({
      uri,
      start: start ?? 0,
      first,
      maxAttempts: this.maxAttempts,
      idleTimeoutMs: this.idleTimeoutMs,
      retryDelay: (failures) => retryDelayMs(failures, this.retryTiming),
      reopen: async (position) => {
        if (pin === undefined) {
          throw new StorageError(
            `the body of ${uri} broke off at byte ${position} and cannot be resumed safely: the store sent no ETag to pin the rest to; rerun the job`,
            { operation, uri, key, offset: position },
          );
        }
        // Byte 0 again (nothing arrived) with no end is a plain GET: no Range for stores to mishandle.
        const resumeStart = position === 0 && end === undefined ? undefined : position;
        try {
          return await this.getBody(key, resumeStart, end, pin, operation);
        } catch (error) {
          if (error instanceof NotFoundError && isMissingObject(error.cause)) {
            throw new ConcurrentChangeError(
              `${uri} was deleted while being read (ETag ${pin}, at byte ${position}); rerun the job to read a consistent snapshot`,
              { operation, uri, key, expected: pin, offset: position },
              { cause: error },
            );
          }
          throw error;
        }
      },
      exhausted: (attempts, position, cause) =>
        new StorageError(
          `S3 ${apiNameOf(operation)} of ${uri} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: the response body broke off or stalled ` +
            `(last at byte ${position}: ${redact(describeError(cause))}); check the network and the store, then rerun the job (--s3-max-attempts raises the budget)`,
          { operation, uri, key, attempts, offset: position },
          { cause },
        ),
    });
    return { stream, length: first.length };
  }

  /**
   * One GetObject, checked: the ETag against `ifMatch` (some S3-compatible servers, s3rver among
   * them, ignore If-Match on GET) and the Content-Range against the range asked for.
   */
  private async getBody(
    key: string,
    start: number | undefined,
    end: number | undefined,
    ifMatch: string | undefined,
    operation: string,
  ): Promise<BodyPart & { etag: string }> {
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
    const etag = unquoteEtag(response.ETag);
    if (ifMatch !== undefined && response.ETag !== undefined && etag !== ifMatch) {
      body.destroy();
      throw this.concurrentChange(uri, key, ifMatch, etag);
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
    return { body, length: response.ContentLength, etag };
  }

  async write(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, contentType?: string): Promise<WriteResult> {
    assertRelativeKey(key, this.uri);
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
      for await (const chunk of await this.read(key, { ifMatch: info.etag })) hasher.update(chunk as Buffer);
    } catch {
      return undefined;
    }
    const stored = hasher.partMd5s();
    return stored.length === partEtags.length && stored.every((md5, i) => md5 === partEtags[i]) ? { key, size, etag: info.etag } : undefined;
  }

  async move(sourceKey: string, targetKey: string): Promise<void> {
    assertRelativeKey(sourceKey, this.uri);
    assertRelativeKey(targetKey, this.uri);
    // CopySource is "bucket/key" with the key URL-encoded. "/" and "=" (every partition key has one)
    // stay literal: S3 accepts them as they are, and s3rver decodes the header with decodeURI,
    // which leaves an encoded "=" (%3D) encoded. "?" and "#" must be encoded (S3 reads ?versionId).
    const copySource = `${this.bucket}/${encodeURIComponent(this.keyPrefix + sourceKey).replace(/%2F/g, '/').replace(/%3D/g, '=')}`;
    try {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + targetKey, CopySource: copySource }));
    } catch (error) {
      throw this.mapError(error, 'move', sourceKey);
    }
    await this.delete([sourceKey]);
  }

  /**
   * Conditional PutObject (`If-None-Match: *` / `If-Match`), which AWS S3 evaluates atomically
   * (since 2024-08 and 2024-11). Around it, a HEAD before (a condition that already fails costs no
   * write, on every store) and a HEAD after (the object must still carry our ETag). The HEAD after
   * is what catches a lost race on stores that ignore the headers: s3rver 3.7.1 evaluates no
   * precondition on PUT (lib/controllers/object.js putObject), so there two writers can both win
   * when their PUTs and HEADs interleave within one round trip; on AWS it only reports a write as
   * lost when someone replaced it within that round trip, which is what "undefined" means anyway.
   */
  async writeConditional(key: string, body: Uint8Array, condition: WriteCondition): Promise<WriteResult | undefined> {
    assertRelativeKey(key, this.uri);
    const operation = 'writeConditional';
    const enforced = this.capabilities.conditionalWrites;
    if (!enforced) {
      const before = await this.head(key);
      if ('ifNoneMatch' in condition ? before !== undefined : before?.etag !== condition.ifMatch) return undefined;
    }
    for (let attempt = 1; ; attempt++) {
      let etag: string;
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
        etag = unquoteEtag(response.ETag);
      } catch (error) {
        const details = sdkErrorDetails(error);
        if (details.status === 412 || details.name === 'PreconditionFailed') {
          // After a retry, the 412 may answer our own first attempt, applied but its response lost:
          // the object then holds exactly our bytes, and the write is ours.
          const retried = attempt > 1 || (details.attempts ?? 1) > 1;
          return retried ? this.readBackIfSame(key, body, operation) : undefined;
        }
        // S3 "If-Match" on a key that no longer exists: the version we meant to replace is gone.
        if ('ifMatch' in condition && isMissingObject(error)) return undefined;
        // 409 ConditionalRequestConflict: another conditional write to the key was in flight. S3
        // asks for a retry; the retry then sees the winner (412) or the key free.
        if ((details.status === 409 || details.name === 'ConditionalRequestConflict') && attempt < this.maxAttempts) {
          await delay(retryDelayMs(attempt, this.retryTiming));
          continue;
        }
        throw this.mapError(error, operation, key, undefined, attempt > 1 ? attempt : undefined);
      }
      // A store that evaluated the condition answered 200 only to the winner, with its ETag.
      if (enforced && etag !== '') return { key, size: body.byteLength, etag };
      const after = await this.head(key);
      if (after === undefined || (etag !== '' && after.etag !== etag)) return undefined;
      return { key, size: body.byteLength, etag: after.etag };
    }
  }

  /** The WriteResult when `key` holds exactly `body` (our write landed after all), else undefined. */
  private async readBackIfSame(key: string, body: Uint8Array, operation: string): Promise<WriteResult | undefined> {
    let response: GetObjectCommandOutput;
    try {
      response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
    } catch (error) {
      if (isMissingObject(error)) return undefined;
      throw this.mapError(error, operation, key);
    }
    if (response.ContentLength !== undefined && response.ContentLength !== body.byteLength) {
      if (response.Body instanceof Readable) response.Body.destroy();
      return undefined;
    }
    let stored: Uint8Array;
    try {
      stored = (await response.Body?.transformToByteArray()) ?? new Uint8Array(0);
    } catch (error) {
      throw this.mapError(error, operation, key);
    }
    return Buffer.from(stored).equals(body) ? { key, size: body.byteLength, etag: unquoteEtag(response.ETag) } : undefined;
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) assertRelativeKey(key, this.uri);
    for (let i = 0; i < keys.length; i += DELETE_BATCH_SIZE) {
      await this.deleteBatch(keys.slice(i, i + DELETE_BATCH_SIZE).map((key) => this.keyPrefix + key), 'delete');
    }
  }

  /**
   * Lists every key under the folder and groups them here, rather than asking for CommonPrefixes
   * with a delimiter: s3rver 3.7.1 leaves out a common prefix whose keys all lie two or more levels
   * down (a dead run's `<run>/stage=…/dt=…/part-00000.avro`), and the folders this serves (staging
   * areas) hold few keys.
   */
  async listFolder(prefix: string): Promise<FolderListing> {
    assertFolderPrefix(prefix, this.uri, 'listFolder');
    const fullPrefix = this.keyPrefix + prefix;
    const folders = new Set<string>();
    const objects: string[] = [];
    const place = (fullKey: string | undefined): void => {
      if (fullKey?.startsWith(fullPrefix) !== true) return;
      const rest = fullKey.slice(fullPrefix.length);
      const slash = rest.indexOf('/');
      if (slash !== -1) folders.add(prefix + rest.slice(0, slash + 1));
      else if (rest.length > 0) objects.push(prefix + rest);
    };
    try {
      for await (const page of paginateListObjectsV2({ client: this.client, pageSize: LIST_PAGE_SIZE }, { Bucket: this.bucket, Prefix: fullPrefix })) {
        for (const entry of page.Contents ?? []) place(entry.Key);
      }
    } catch (error) {
      throw this.mapError(error, 'listFolder', prefix);
    }
    // A folder whose only content is an upload of a killed run has no object: ListObjectsV2 misses it.
    for await (const page of this.uploadPages(prefix)) {
      for (const upload of page.Uploads ?? []) if (upload.Key?.slice(fullPrefix.length).includes('/') === true) place(upload.Key);
    }
    return { folders: sortedKeys([...folders]), objects: sortedKeys(objects) };
  }

  async deleteUnder(prefix: string): Promise<DeleteUnderResult> {
    assertFolderPrefix(prefix, this.uri, 'deleteUnder');
    const fullPrefix = this.keyPrefix + prefix;
    // Uploads first: an aborted upload can no longer complete into an object behind our delete.
    let partial = 0;
    for await (const page of this.uploadPages(prefix)) {
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined || !upload.Key.startsWith(fullPrefix)) continue;
        if (await this.abortUpload(upload.Key, upload.UploadId)) partial++;
        if (this.uploadsUnsupported() !== undefined) break;
      }
      if (this.uploadsUnsupported() !== undefined) break;
    }
    // Then the objects, a page at a time (memory bounded by one page); S3 continues a listing after
    // the last key returned, so deleting what a page listed does not disturb the next page.
    let objects = 0;
    try {
      const pages = paginateListObjectsV2({ client: this.client, pageSize: LIST_PAGE_SIZE }, { Bucket: this.bucket, Prefix: fullPrefix });
      for await (const page of pages) {
        // Folder markers (`x/`, made by consoles) included: they are debris under the folder too.
        const keys = (page.Contents ?? []).map((entry) => entry.Key).filter((key): key is string => key?.startsWith(fullPrefix) === true);
        for (let i = 0; i < keys.length; i += DELETE_BATCH_SIZE) await this.deleteBatch(keys.slice(i, i + DELETE_BATCH_SIZE), 'deleteUnder');
        objects += keys.length;
      }
    } catch (error) {
      throw this.mapError(error, 'deleteUnder', prefix);
    }
    const unlisted = this.uploadsUnsupported();
    return { objects, partial, ...(unlisted === undefined ? {} : { partialUnlisted: unlisted }) };
  }

  /**
   * The pages of ListMultipartUploads under the folder `prefix` (relative to the root). Ends
   * without a page on a store that does not implement the call or forbids it (the reason is kept
   * per client and bucket, see uploadsUnsupported, for deleteUnder's caller to log). MinIO answers
   * an empty list for any prefix that is not an exact object name: there it finds nothing, and that
   * is not an error.
   */
  private async *uploadPages(prefix: string): AsyncGenerator<ListMultipartUploadsCommandOutput> {
    if (this.uploadsUnsupported() !== undefined) return;
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
        if (this.markUploadsUnsupported(unsupportedReason(error, 'ListMultipartUploads'))) return;
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

  /** Why this client cannot list or abort uploads in this bucket, if it has found out. */
  private uploadsUnsupported(): string | undefined {
    return uploadsUnsupportedByClient.get(this.client)?.get(this.bucket);
  }

  /** Remembers `reason` (when there is one) for uploadsUnsupported; true when it did. */
  private markUploadsUnsupported(reason: string | undefined): boolean {
    if (reason === undefined) return false;
    const byBucket = uploadsUnsupportedByClient.get(this.client) ?? new Map<string, string>();
    byBucket.set(this.bucket, reason);
    uploadsUnsupportedByClient.set(this.client, byBucket);
    return true;
  }

  /** Aborts one multipart upload (full key); false when it was already gone or the store cannot abort. */
  private async abortUpload(fullKey: string, uploadId: string): Promise<boolean> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }));
      return true;
    } catch (error) {
      const { name, status } = sdkErrorDetails(error);
      // Completed or aborted meanwhile (NoSuchUpload, 404): nothing left to remove.
      if (name === 'NoSuchUpload' || (status === 404 && name !== 'NoSuchBucket')) return false;
      if (this.markUploadsUnsupported(unsupportedReason(error, 'AbortMultipartUpload'))) return false;
      throw this.mapError(error, 'abortUpload', fullKey.slice(this.keyPrefix.length));
    }
  }

  /**
   * One DeleteObjects request (at most DELETE_BATCH_SIZE full keys); a key reported missing counts
   * as deleted. s3rver 3.7.1 deletes a batch's keys concurrently and then removes the folders they
   * emptied, which fails (500 InternalError) when two keys empty the same folder at once; the SDK
   * retries the request (a 5xx), and the retry finds the rest of the batch, so it converges.
   */
  private async deleteBatch(fullKeys: readonly string[], operation: string): Promise<void> {
    let failures: { key: string; code: string; message: string }[];
    try {
      const response = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: fullKeys.map((key) => ({ Key: key })), Quiet: true },
        }),
      );
      failures = (response.Errors ?? [])
        .filter((entry) => entry.Code !== 'NoSuchKey')
        .map((entry) => ({
          key: (entry.Key ?? '').slice(this.keyPrefix.length),
          code: entry.Code ?? 'Unknown',
          message: entry.Message ?? '',
        }));
    } catch (error) {
      throw this.mapError(error, operation, fullKeys[0]!.slice(this.keyPrefix.length));
    }
    if (failures.length > 0) {
      const shown = failures
        .slice(0, 3)
        .map((failure) => `${failure.key}: ${failure.code} ${failure.message}`.trim())
        .join('; ');
      throw new StorageError(
        `S3 delete under ${this.uri} failed for ${failures.length} of ${fullKeys.length} keys (${shown}${failures.length > 3 ? '; …' : ''}); ` +
          'check the s3:DeleteObject permission and retry',
        { operation, uri: this.uri, keys: failures.slice(0, 10).map((failure) => failure.key), failed: failures.length },
      );
    }
  }

  /** Info of a listed object relative to the root, or undefined for folder markers (`dir/`, size 0, made by consoles). */
  private toObjectInfo(fullKey: string | undefined, size: number | undefined, etag: string | undefined): ObjectInfo | undefined {
    if (fullKey === undefined || !fullKey.startsWith(this.keyPrefix)) return undefined;
    const key = fullKey.slice(this.keyPrefix.length);
    if (key.length === 0 || key.endsWith('/')) return undefined;
    return { key, size: size ?? 0, etag: unquoteEtag(etag) };
  }

  private concurrentChange(uri: string, key: string, expected: string, actual?: string): ConcurrentChangeError {
    return new ConcurrentChangeError(
      `${uri} changed since it was listed: ETag ${actual === undefined ? 'no longer matches' : `is ${actual}`}, expected ${expected}; ` +
        'rerun the job to read a consistent snapshot',
      { operation: 'read', uri, key, expected, ...(actual === undefined ? {} : { actual }) },
    );
  }

  /**
   * Maps an SDK error to our hierarchy; the message names the S3 API call, the URI (of `key`, or of
   * the listed prefix), the attempts made (`attempts` when we counted them ourselves, else the
   * SDK's) and a way out.
   */
  private mapError(error: unknown, operation: string, key: string, ifMatch?: string, attempts?: number): ModelMetricsError {
    if (error instanceof ModelMetricsError) return error;
    const uri = this.uriOf(key);
    const details = sdkErrorDetails(error);
    const attemptCount = attempts ?? details.attempts;
    const context = {
      operation,
      uri,
      key,
      ...(attemptCount === undefined ? {} : { attempts: attemptCount }),
      ...(details.status === undefined ? {} : { status: details.status }),
      errorName: details.name,
    };
    if (ifMatch !== undefined && (details.status === 412 || details.name === 'PreconditionFailed')) {
      return this.concurrentChange(uri, key, ifMatch);
    }
    if (details.name === 'NoSuchBucket') {
      return new NotFoundError(
        `bucket "${this.bucket}" does not exist (S3 ${apiNameOf(operation)} of ${uri}); check --root and the dataset URIs, and --s3-endpoint for MinIO`,
        context,
        { cause: error },
      );
    }
    if (isMissingObject(error)) {
      return new NotFoundError(`${uri} does not exist; check the key and the dataset root`, context, { cause: error });
    }
    const attemptText = attemptCount === undefined ? '' : ` after ${attemptCount} attempt${attemptCount === 1 ? '' : 's'}`;
    const status = details.status === undefined ? '' : ` (HTTP ${details.status})`;
    return new StorageError(
      `S3 ${apiNameOf(operation)} of ${uri} failed${attemptText}: ${details.name}${status}: ${redact(details.message)}; ${wayOut(details)}`,
      context,
      { cause: error },
    );
  }
}

/** The S3 API call behind each store operation, named in messages so an operator can match access logs. */
const API_NAMES: Record<string, string> = {
  list: 'ListObjectsV2',
  hasAny: 'ListObjectsV2',
  head: 'HeadObject',
  read: 'GetObject',
  readSmall: 'GetObject',
  write: 'PutObject/multipart upload',
  writeConditional: 'conditional PutObject',
  move: 'CopyObject',
  delete: 'DeleteObjects',
  deleteUnder: 'ListObjectsV2/DeleteObjects',
  listFolder: 'ListObjectsV2',
  listUploads: 'ListMultipartUploads',
  abortUpload: 'AbortMultipartUpload',
};

function apiNameOf(operation: string): string {
  return API_NAMES[operation] ?? operation;
}

interface SdkErrorDetails {
  name: string;
  message: string;
  status: number | undefined;
  attempts: number | undefined;
  code: string | undefined;
}

function sdkErrorDetails(error: unknown): SdkErrorDetails {
  const record = (typeof error === 'object' && error !== null ? error : {}) as {
    name?: unknown;
    message?: unknown;
    code?: unknown;
    Code?: unknown;
    $metadata?: { httpStatusCode?: unknown; attempts?: unknown };
  };
  const status = record.$metadata?.httpStatusCode;
  const attempts = record.$metadata?.attempts;
  return {
    name: typeof record.name === 'string' ? record.name : 'Error',
    message: typeof record.message === 'string' ? record.message : String(error),
    status: typeof status === 'number' ? status : undefined,
    attempts: typeof attempts === 'number' ? attempts : undefined,
    code: typeof record.code === 'string' ? record.code : typeof record.Code === 'string' ? record.Code : undefined,
  };
}

/** What to do about a failed request, by kind of failure. */
function wayOut(details: SdkErrorDetails): string {
  const { status, name, code } = details;
  if (name === 'CredentialsProviderError' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'ExpiredToken') {
    return 'check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the IRSA web identity)';
  }
  if (status === 403 || name === 'AccessDenied') return 'check that the AWS credentials are allowed this operation on the bucket (IAM and bucket policy)';
  if (status === 301 || name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') {
    return "the bucket is in another region: set AWS_REGION to the bucket's region";
  }
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || name === 'TimeoutError') {
    return 'check that the endpoint is reachable (--s3-endpoint / AWS_ENDPOINT_URL_S3, network, proxy)';
  }
  if (name === 'InvalidRange' || status === 416) return 'the requested byte range starts past the end of the object';
  if (status !== undefined && status >= 500) return 'the store is unavailable or throttling; rerun the job later';
  return 'rerun the job; if it persists, check the store and the credentials';
}

/**
 * Why a store cannot serve a multipart-upload call, or undefined for an ordinary failure: the call
 * is not implemented (501 NotImplemented: s3rver 3.7.1 for ListMultipartUploads; 405
 * MethodNotAllowed: s3rver for AbortMultipartUpload; a bare 404 from a store without the route) or
 * not allowed (403: a policy without s3:ListBucketMultipartUploads / s3:AbortMultipartUpload).
 * Cleanup then degrades to what the bucket's lifecycle rule removes, instead of failing the run.
 */
function unsupportedReason(error: unknown, api: string): string | undefined {
  const { name, status } = sdkErrorDetails(error);
  const permanent =
    status === 501 || name === 'NotImplemented' || status === 405 || name === 'MethodNotAllowed' || status === 403 || name === 'AccessDenied' || (status === 404 && name !== 'NoSuchBucket');
  return permanent ? `${api} answered ${name}${status === undefined ? '' : ` (HTTP ${status})`}` : undefined;
}

/** Never let signed-URL parameters or access key ids reach a message. */
function redact(message: string): string {
  return message
    .replace(/(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s"']*/gi, '$1[redacted]')
    .replace(/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, '[redacted-access-key]');
}

/** True for the SDK's "no such object" errors: NoSuchKey from GET, a body-less 404 (NotFound) from HEAD. */
function isMissingObject(error: unknown): boolean {
  const { name, status } = sdkErrorDetails(error);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

/** ETags arrive quoted (`"abc"`); manifests and comparisons use the bare value. */
function unquoteEtag(etag: string | undefined): string {
  return etag === undefined ? '' : etag.replace(/"/g, '');
}

/**
 * Why a Content-Range header does not answer `bytes=start-end`, or undefined when it does. Guards
 * against stores that ignore or mis-handle ranges (s3rver 3.7.1 turns `bytes=0-0` into the whole object).
 */
function contentRangeProblem(contentRange: string | undefined, start: number, end: number | undefined): string | undefined {
  if (contentRange === undefined) return 'no Content-Range (the whole object)';
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange);
  if (match === null) return `an unparsable Content-Range "${contentRange}"`;
  const [first, last, total] = [Number(match[1]), Number(match[2]), match[3] === '*' ? undefined : Number(match[3])];
  const expectedLast = end === undefined ? (total === undefined ? last : total - 1) : total === undefined ? end : Math.min(end, total - 1);
  if (first !== start || last !== expectedLast) return `Content-Range "${contentRange}"`;
  return undefined;
}
