/**
 * The backend interface under the one ObjectStore façade (object-store.ts, issue 10), after Apache
 * OpenDAL's split of a service's raw access from the layers that every service shares: a backend
 * (s3.ts, local.ts) offers a few raw primitives on keys it may trust, and the façade applies the
 * rules common to every store once: key, range and folder validation, UTF-8 byte-order listings,
 * the bounded whole-object read, ETag-pinned and resumed reads, conditional-write emulation where
 * the store does not enforce the condition, and the "not found" / "changed" / "too large" errors.
 */
import type { Readable } from 'node:stream';
import { NotFoundError } from '../errors.js';
import type { ObjectInfo, StoreCapabilities, WriteCondition, WriteResult } from './types.js';

/**
 * One entry of a recursive listing. `object`: a readable object. `marker`: a key that is no object
 * but is deleted with its folder and counted (a zero-byte S3 key ending in `/`, a console's folder
 * marker; a local symlink to a directory or to nothing, unlinked, never followed).
 * `directory`: a local directory (`key` ends in `/`): shows a folder that holds no object (only
 * partial writes, or nothing), removed after its contents, not counted as an object.
 */
export interface ListEntry extends ObjectInfo {
  kind: 'object' | 'marker' | 'directory';
}

/** An unfinished write a killed process left (S3: a multipart upload; local: a temp file). */
export interface PartialWrite {
  /** Key relative to the store root (the upload's target key; the temp file's own key). */
  key: string;
  /** The upload id on S3; the key again on local files. */
  id: string;
  /** True when a write of this process may still be filling it (local temp files carry the pid). */
  live: boolean;
  /** True when `delete([key])` removes it like an object (a local temp file); false for S3 uploads. */
  deletableByKey: boolean;
}

/** What a backend's ranged GET returns; the façade checks the ETag and the range against the size. */
export interface GetResult {
  body: Readable;
  /** Bytes this body announced (Content-Length), when known. */
  length: number | undefined;
  /** The ETag of the object the body comes from, '' when the store sent none. */
  etag: string;
  /** The whole object's size, when the backend knows it before reading (local fstat). */
  size?: number;
}

/**
 * The answer of one conditional PUT: written (the store's ETag, '' when it sent none), refused by
 * the precondition (`afterRetry`: a retry of ours got the refusal, so our own first attempt may be
 * what is there), or a conflict with another conditional write in flight (S3 409), to retry.
 */
export type ConditionalPutOutcome = { written: WriteResult } | { refused: true; afterRetry: boolean } | { conflict: Error };

/** How a backend's reads resume and its conflicts retry (absent: the backend does neither). */
export interface BackendRetry {
  /** Bodies per read and conditional PUTs per write, the first included. */
  maxAttempts: number;
  /** A body that moves no byte for this long while the reader waits is abandoned and reopened. */
  idleTimeoutMs: number;
  /** Milliseconds to wait before attempt `failures + 1` (retry-policy.ts). */
  delayMs(failures: number): number;
  /** The store call behind an operation, for messages (`S3 GetObject`). */
  callName(operation: string): string;
  /** Removes signed-URL parameters and key ids from a message. */
  redact(message: string): string;
}

/** The raw primitives of one store; keys are validated relative keys (store-rules.ts) when they arrive. */
export interface StoreBackend {
  readonly uri: string;
  readonly capabilities: StoreCapabilities;
  readonly retry?: BackendRetry;
  /** Keys per deleteBatch call. */
  readonly deleteBatchSize: number;
  uriOf(key: string): string;
  /**
   * Every entry whose key starts with `prefix` (a string prefix, as on S3), a page at a time, in no
   * particular order; `operation` names the store operation in errors.
   */
  listPages(prefix: string, operation: string, pageSize?: number): AsyncIterable<ListEntry[]>;
  /** The object's info, or undefined when there is none. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** One GET of `[start, end]` (start undefined: the whole object); E_NOT_FOUND when missing. */
  get(key: string, start: number | undefined, end: number | undefined, ifMatch: string | undefined, operation: string): Promise<GetResult>;
  /** Writes an object whole (atomically: readers see the old object or the new one). */
  put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, contentType?: string): Promise<WriteResult>;
  /** One conditional PUT, `attempt` counting from 1 (the façade retries conflicts). */
  putConditional(key: string, body: Uint8Array, condition: WriteCondition, attempt: number): Promise<ConditionalPutOutcome>;
  /** Moves an object to another key, replacing what is there. */
  rename(sourceKey: string, targetKey: string): Promise<void>;
  /** Deletes up to deleteBatchSize keys (a key ending in `/` is a marker or a directory); missing ones are not an error. */
  deleteBatch(keys: readonly string[], operation: string): Promise<void>;
  /**
   * The partial writes under the folder `prefix`; called only when capabilities.partialWriteListing.
   * A store that refuses the call (not implemented, not allowed) throws PartialWritesRefused.
   */
  listPartial(prefix: string): AsyncIterable<PartialWrite>;
  /** Removes one partial write; false when it was gone already. A refusal throws PartialWritesRefused. */
  abortPartial(write: PartialWrite): Promise<boolean>;
  /** Why this store lists no partial writes, when its capabilities leave out partialWriteListing. */
  readonly partialUnlisted?: string;
}

/**
 * A store that declares partialWriteListing refused to list or abort partial writes (the
 * declaration is wrong for it, or a policy forbids the call): the caller leaves them to the
 * bucket's own cleanup and reports `reason`, with the way out.
 */
export class PartialWritesRefused extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'PartialWritesRefused';
  }
}

/** True for "this object does not exist" (E_NOT_FOUND naming a key), not for a missing bucket. */
export function isMissingObjectError(error: unknown): boolean {
  return error instanceof NotFoundError && error.context.errorName !== 'NoSuchBucket';
}
