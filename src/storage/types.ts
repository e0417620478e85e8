/**
 * One interface over every object store the job reads and writes: S3 (and S3-compatible stores
 * such as MinIO) and the local filesystem, implemented once by the façade of object-store.ts over
 * each store's backend (backend.ts). Keys are relative to the store's root URI, use `/` as the
 * separator, and never start with `/`.
 */
import type { Readable } from 'node:stream';

/** What a listing says about one object. */
export interface ObjectInfo {
  /** Key relative to the store root, e.g. `dt=2026-01-01/hour=07/part-0.avro`. */
  key: string;
  /** Size in bytes. */
  size: number;
  /**
   * S3: the ETag without quotes. Local files: `<size>-<mtime in ms>` (like a web server's weak
   * ETag), which changes whenever the file is rewritten.
   */
  etag: string;
}

/** What a completed write says about the object it made. */
export interface WriteResult {
  key: string;
  size: number;
  etag: string;
}

/** Options for reading an object. */
export interface ReadOptions {
  /** First byte to read (inclusive). Default 0. */
  start?: number;
  /** Last byte to read (inclusive). Default: end of object. */
  end?: number;
  /** Fail with E_CONCURRENT_CHANGE when the object's ETag is no longer this one. */
  ifMatch?: string;
}

/** The precondition of ObjectStore.writeConditional. */
export type WriteCondition = { ifNoneMatch: '*' } | { ifMatch: string };

/**
 * What ObjectStore.deleteUnder removed. "Partial writes" are what a process killed in the middle of
 * a write leaves behind, invisible to `list`: on S3 incomplete multipart uploads (billed until
 * aborted), on local files the temp file of an unfinished write (local.ts LOCAL_TEMP_PREFIX).
 */
export interface DeleteUnderResult {
  /** Objects deleted (S3: keys, zero-byte folder markers included; local: files and symlinks). */
  objects: number;
  /** Partial writes removed: S3 multipart uploads aborted, local temp files deleted. */
  partial: number;
  /**
   * Set when partial writes were not listed: why, for the caller to log. Either the store does not
   * declare the listing (StoreCapabilities.partialWriteListing: a custom S3 endpoint by default),
   * or a store that declares it refused the call (s3rver: NotImplemented; a policy without
   * s3:ListBucketMultipartUploads: AccessDenied). Such uploads are left to the bucket's own cleanup
   * (an AbortIncompleteMultipartUpload lifecycle rule, MinIO's stale-upload expiry).
   */
  partialUnlisted?: string;
}

/** One level below a folder prefix, like `ls`: the folders and the objects directly in it. */
export interface FolderListing {
  /** Sub-folder prefixes (`<prefix><name>/`), in UTF-8 byte order, including folders that hold only partial writes. */
  folders: string[];
  /** Keys of the objects directly under the prefix (not in a sub-folder), in UTF-8 byte order. */
  objects: string[];
  /**
   * Keys of partial writes directly under the prefix that no live write of this process owns, in
   * UTF-8 byte order; absent when there are none. Local files: the temp file of a write a SIGKILL
   * interrupted beside its target (a lease write, issue 10), which `delete` removes like an object.
   * S3 leaves it absent: a multipart upload is only ever started for a data file, which lives in a
   * run's own sub-folder and goes with it (deleteUnder).
   */
  partial?: string[];
}

/** Settings for S3 clients, from config; credentials come from the standard AWS chain. */
export interface S3Settings {
  /** Custom endpoint (MinIO, s3rver), e.g. `http://127.0.0.1:9000`. Undefined means AWS. */
  endpoint?: string;
  /** Path-style addressing (`http://host/bucket/key`), needed by MinIO and s3rver. */
  forcePathStyle?: boolean;
  /** Region; default from the AWS chain, else `us-east-1`. */
  region?: string;
  /** Concurrent part uploads per multipart upload. Default 4. */
  uploadQueueSize?: number;
  /** Multipart part size in bytes (S3 minimum 5 MiB). Default 8 MiB. */
  uploadPartSize?: number;
  /**
   * Attempts per S3 operation, the first included: the SDK's request retries, and the ranged
   * resumes of a GetObject body that fails or stalls mid-stream. Default 5.
   */
  maxAttempts?: number;
  /** A request or body that moves no byte for this long is abandoned and retried. Default 60 000 ms. */
  idleTimeoutMs?: number;
  /**
   * First step of the exponential retry backoff (with full jitter), in ms; throttling waits 5× as
   * long. Default 100 ms, as the AWS SDKs. Not a CLI option: fault-injection tests set it to 1.
   */
  retryBaseDelayMs?: number;
  /**
   * Whether the store evaluates conditional writes itself (StoreCapabilities.conditionalWrites).
   * Default: true on AWS (no `endpoint`), false on a custom endpoint, since s3rver 3.7.1 and older
   * MinIO releases ignore the headers (or, before RELEASE.2025-09-06, If-Match on a missing object); set true for a MinIO or other store known to enforce them.
   */
  conditionalWrites?: boolean;
  /**
   * Whether the store lists and aborts the multipart uploads under a folder
   * (StoreCapabilities.partialWriteListing). Default: true on AWS (no `endpoint`), false on a
   * custom endpoint: s3rver 3.7.1 implements neither call, and MinIO matches only whole object
   * names as the prefix, so a folder's uploads are never found there.
   */
  multipartListing?: boolean;
}

/**
 * What a store enforces itself (issue 10), so callers emulate only what it does not. Declared by
 * the store from its settings, never probed: a store that ignores a precondition answers 200 just
 * like one that evaluated it.
 */
export interface StoreCapabilities {
  /**
   * `If-None-Match: *` and `If-Match` on writes are evaluated atomically by the server (AWS S3
   * since 2024-11; MinIO from RELEASE.2025-09-06T17-38-46Z, the first to refuse If-Match on a
   * missing object). Then writeConditional sends the PUT alone and its answer is the verdict;
   * otherwise it brackets the PUT with HEADs and the lease reads its writes back.
   */
  conditionalWrites: boolean;
  /**
   * The partial writes a killed process left under a folder can be listed and removed (local
   * files: their temp files, always; S3: ListMultipartUploads and AbortMultipartUpload, AWS S3).
   * Otherwise deleteUnder sends no such call and says why in DeleteUnderResult.partialUnlisted.
   */
  partialWriteListing: boolean;
}

/** An object store rooted at one URI. */
export interface ObjectStore {
  /** The root URI, e.g. `s3://bucket/prefix/predictions` or `file:///data/predictions`. */
  readonly uri: string;

  /** What this store enforces (StoreCapabilities). */
  readonly capabilities: StoreCapabilities;

  /** The URI of one key, for messages and manifests. */
  uriOf(key: string): string;

  /**
   * Every object under `prefix` (relative to the root; `''` for all), in UTF-8 byte order of key
   * (S3 listing order, enforced here on every store). Follows pagination to the end.
   */
  list(prefix: string): Promise<ObjectInfo[]>;

  /** True when at least one object exists under `prefix` (one cheap request). */
  hasAny(prefix: string): Promise<boolean>;

  /** The object's info, or undefined when it does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;

  /** A streamed body; never buffers the whole object. Errors are E_NOT_FOUND / E_STORAGE. */
  read(key: string, options?: ReadOptions): Promise<Readable>;

  /** A small object read whole (manifests). Undefined when it does not exist. */
  readSmall(key: string): Promise<Buffer | undefined>;

  /**
   * Writes an object from a stream of chunks. S3: multipart through lib-storage when larger than a
   * part, so memory is bounded by queueSize × partSize. Local: a temp file renamed into place, so
   * a reader never sees a partial file.
   */
  write(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, contentType?: string): Promise<WriteResult>;

  /**
   * Moves an object to another key of the same store, replacing what is there: S3 a server-side
   * CopyObject (single request, so objects up to 5 GiB) then a delete; local files a rename, after
   * which the directories it left empty are removed (as by `delete`).
   */
  move(sourceKey: string, targetKey: string): Promise<void>;

  /**
   * Writes a small object only when a condition holds, atomically where the store can: create only
   * when no object exists at `key` (`{ ifNoneMatch: '*' }`: S3 `If-None-Match: *`, local exclusive
   * create), or replace only when its ETag is still `ifMatch` (S3 `If-Match`). Returns the new
   * object's WriteResult, or undefined when the condition failed because another writer got there
   * first. A retried request whose first attempt was applied (response lost) is recognised by
   * reading the object back: if it holds exactly `body`, the write counts as ours.
   */
  writeConditional(key: string, body: Uint8Array, condition: WriteCondition): Promise<WriteResult | undefined>;

  /**
   * Deletes the keys; missing keys are not an error. Local files: directories the deletes leave
   * empty are removed up to (never including) the store root, as S3 has no empty folders.
   */
  delete(keys: readonly string[]): Promise<void>;

  /**
   * One level below the folder `prefix` (a non-empty key prefix ending in `/`): its sub-folders and
   * its direct objects. A sub-folder whose only content is partial writes (a process killed while
   * writing) is listed too, where the store can see them (local files always; S3 through
   * ListMultipartUploads where the store implements it, AWS S3 does), so that such leftovers can
   * be found and passed to deleteUnder.
   */
  listFolder(prefix: string): Promise<FolderListing>;

  /**
   * Deletes everything under the folder `prefix`: every object and every partial write (issue 5:
   * no debris after a crash). `prefix` must be a non-empty key prefix ending in `/`, so `run-1/`
   * never touches `run-10/`; anything else is an E_INTERNAL error (a bug in the caller). S3:
   * aborts the incomplete multipart uploads first (so none can complete afterwards), then lists
   * and deletes the objects 1000 per DeleteObjects request. Local: deletes the files (temp files
   * included), then the emptied directories bottom-up, and the parents it leaves empty, never the
   * store root nor a directory that still holds something; a file that vanishes or a directory
   * that fills meanwhile (a concurrent writer) is not an error.
   */
  deleteUnder(prefix: string): Promise<DeleteUnderResult>;
}
