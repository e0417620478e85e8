/**
 * The one ObjectStore façade (issue 10): every store is this class over a StoreBackend (backend.ts),
 * so each rule every store must keep is written once, here, as a layer around the raw primitives:
 *
 * - validation: relative keys, byte ranges and folder prefixes (store-rules.ts) before any request;
 * - order: listings in UTF-8 byte order, S3's, whatever order the backend produced (SPEC §3);
 * - pinned reads: a body whose ETag is not the listed one is E_CONCURRENT_CHANGE (s3rver and others
 *   ignore If-Match on GET), a range must start inside the object;
 * - resumed reads: where the backend declares a retry policy, a body that breaks off or stalls is
 *   resumed from the next byte, pinned to its ETag (resumable-body.ts);
 * - the bounded whole-object read of small objects (manifests);
 * - conditional writes: where the store does not enforce `If-None-Match` / `If-Match`
 *   (StoreCapabilities), the PUT is bracketed by HEADs; a refusal after a retry is checked by
 *   reading the object back; conflicts are retried within the attempt budget;
 * - folders: one-level listings and recursive deletes built from the listing and partial writes.
 */
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { ConcurrentChangeError, NotFoundError, StorageError, describeError } from '../errors.js';
import { type GetResult, type PartialWrite, PartialWritesRefused, type StoreBackend, isMissingObjectError } from './backend.js';
import { resumableBody } from './resumable-body.js';
import { READ_SMALL_LIMIT_BYTES, assertFolderPrefix, assertRelativeKey, checkRange, sortByKeyBytes, sortedKeys } from './store-rules.js';
import type { DeleteUnderResult, FolderListing, ObjectInfo, ObjectStore, ReadOptions, StoreCapabilities, WriteCondition, WriteResult } from './types.js';

/** The E_NOT_FOUND of a missing object, the same words on every store. */
export function objectNotFound(uri: string, context: Record<string, unknown>, cause?: unknown): NotFoundError {
  return new NotFoundError(`${uri} does not exist; check the key and the dataset root`, { uri, ...context }, cause === undefined ? undefined : { cause });
}

/** The E_CONCURRENT_CHANGE of an object whose ETag is no longer the one it was listed with. */
export function objectChanged(uri: string, key: string, expected: string, actual?: string): ConcurrentChangeError {
  return new ConcurrentChangeError(
    `${uri} changed since it was listed: ETag ${actual === undefined ? 'no longer matches' : `is ${actual}`}, expected ${expected}; ` +
      'rerun the job to read a consistent snapshot',
    { operation: 'read', uri, key, expected, ...(actual === undefined ? {} : { actual }) },
  );
}

/** An ObjectStore over `backend`: the shared rules, then the backend's primitive. */
export class LayeredObjectStore implements ObjectStore {
  readonly uri: string;
  readonly capabilities: StoreCapabilities;

  constructor(protected readonly backend: StoreBackend) {
    this.uri = backend.uri;
    this.capabilities = backend.capabilities;
  }

  uriOf(key: string): string {
    return this.backend.uriOf(key);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertRelativeKey(prefix, this.uri, true);
    const objects: ObjectInfo[] = [];
    for await (const page of this.backend.listPages(prefix, 'list')) {
      for (const entry of page) if (entry.kind === 'object') objects.push({ key: entry.key, size: entry.size, etag: entry.etag });
    }
    // s3rver, some S3-compatible stores and every local disk list in another order; SPEC §3 needs S3's.
    return sortByKeyBytes(objects);
  }

  async hasAny(prefix: string): Promise<boolean> {
    assertRelativeKey(prefix, this.uri, true);
    // One key per page: usually a single request; markers and directories are not objects.
    for await (const page of this.backend.listPages(prefix, 'hasAny', 1)) {
      if (page.some((entry) => entry.kind === 'object')) return true;
    }
    return false;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertRelativeKey(key, this.uri);
    return this.backend.head(key);
  }

  /** A streamed body pinned to `ifMatch` (when given), resumed where the backend declares a retry policy. */
  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    assertRelativeKey(key, this.uri);
    const { start, end } = checkRange(options, this.uriOf(key), key);
    return (await this.openRead(key, start, end, options.ifMatch, 'read')).stream;
  }

  async readSmall(key: string): Promise<Buffer | undefined> {
    assertRelativeKey(key, this.uri);
    const uri = this.uriOf(key);
    let opened: { stream: Readable; length: number | undefined };
    try {
      opened = await this.openRead(key, undefined, undefined, undefined, 'readSmall');
    } catch (error) {
      if (isMissingObjectError(error)) return undefined;
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

  write(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, contentType?: string): Promise<WriteResult> {
    assertRelativeKey(key, this.uri);
    return this.backend.put(key, body, contentType);
  }

  move(sourceKey: string, targetKey: string): Promise<void> {
    assertRelativeKey(sourceKey, this.uri);
    assertRelativeKey(targetKey, this.uri);
    return this.backend.rename(sourceKey, targetKey);
  }

  /**
   * Where the store enforces the condition, the PUT's answer is the verdict. Where it does not
   * (s3rver 3.7.1 evaluates no precondition on PUT; a local If-Match is a stat then a rename), a HEAD
   * before (a condition that already fails costs no write) and a HEAD after (the object must still
   * carry our ETag): two writers can then both win only when their PUTs and HEADs interleave within
   * one round trip. A refusal that answers a retry of ours is checked by reading the object back.
   */
  async writeConditional(key: string, body: Uint8Array, condition: WriteCondition): Promise<WriteResult | undefined> {
    assertRelativeKey(key, this.uri);
    const enforced = this.capabilities.conditionalWrites;
    if (!enforced) {
      const before = await this.backend.head(key);
      if ('ifNoneMatch' in condition ? before !== undefined : before?.etag !== condition.ifMatch) return undefined;
    }
    const retry = this.backend.retry;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.backend.putConditional(key, body, condition, attempt);
      if ('refused' in outcome) return outcome.afterRetry ? this.readBackIfSame(key, body) : undefined;
      if ('conflict' in outcome) {
        // 409 ConditionalRequestConflict: S3 asks for a retry, which then sees the winner or the key free.
        if (retry === undefined || attempt >= retry.maxAttempts) throw outcome.conflict;
        await delay(retry.delayMs(attempt));
        continue;
      }
      const { written } = outcome;
      if (enforced && written.etag !== '') return written;
      const after = await this.backend.head(key);
      if (after === undefined || (written.etag !== '' && after.etag !== written.etag)) return undefined;
      return { key, size: body.byteLength, etag: after.etag };
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) assertRelativeKey(key, this.uri);
    const batch = this.backend.deleteBatchSize;
    for (let i = 0; i < keys.length; i += batch) await this.backend.deleteBatch(keys.slice(i, i + batch), 'delete');
  }

  /**
   * Built from the recursive listing, not from a store's delimiter listing: s3rver 3.7.1 leaves out
   * a common prefix whose keys all lie two or more levels down (a dead run's
   * `<run>/stage=…/dt=…/part-00000.avro`), and the folders this serves (staging areas) hold few keys.
   * A folder whose only content is partial writes shows through them.
   */
  async listFolder(prefix: string): Promise<FolderListing> {
    assertFolderPrefix(prefix, this.uri, 'listFolder');
    const folders = new Set<string>();
    const objects: string[] = [];
    const partial: string[] = [];
    /** Files `key` under the folder; false when it lies directly in it. */
    const inSubFolder = (key: string): boolean => {
      const rest = key.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash !== -1) folders.add(prefix + rest.slice(0, slash + 1));
      return slash !== -1 || rest.length === 0;
    };
    for await (const page of this.backend.listPages(prefix, 'listFolder')) {
      for (const entry of page) if (!inSubFolder(entry.key) && entry.kind === 'object') objects.push(entry.key);
    }
    await this.eachPartial(prefix, async (write) => {
      if (!inSubFolder(write.key) && write.deletableByKey && !write.live) partial.push(write.key);
    });
    return { folders: sortedKeys([...folders]), objects: sortedKeys(objects), ...(partial.length === 0 ? {} : { partial: sortedKeys(partial) }) };
  }

  /**
   * Partial writes first (an aborted upload can no longer complete into an object behind the
   * delete), then the objects a page at a time (memory bounded by one page; S3 continues a listing
   * after the last key returned, so deleting what a page listed does not disturb the next), then
   * the directories, deepest first.
   */
  async deleteUnder(prefix: string): Promise<DeleteUnderResult> {
    assertFolderPrefix(prefix, this.uri, 'deleteUnder');
    let partial = 0;
    const unlisted = await this.eachPartial(prefix, async (write) => {
      if (await this.backend.abortPartial(write)) partial++;
    });
    let objects = 0;
    const directories: string[] = [];
    const batch = this.backend.deleteBatchSize;
    for await (const page of this.backend.listPages(prefix, 'deleteUnder')) {
      const keys: string[] = [];
      for (const entry of page) (entry.kind === 'directory' ? directories : keys).push(entry.key);
      for (let i = 0; i < keys.length; i += batch) await this.backend.deleteBatch(keys.slice(i, i + batch), 'deleteUnder');
      objects += keys.length;
    }
    const deepestFirst = sortedKeys(directories).reverse();
    for (let i = 0; i < deepestFirst.length; i += batch) await this.backend.deleteBatch(deepestFirst.slice(i, i + batch), 'deleteUnder');
    return { objects, partial, ...(unlisted === undefined ? {} : { partialUnlisted: unlisted }) };
  }

  /**
   * Calls `visit` on each partial write under the folder, when the store declares their listing
   * (StoreCapabilities.partialWriteListing). Returns why they were not (all) visited: the store
   * does not declare the listing, or refused a call (PartialWritesRefused); undefined otherwise.
   */
  private async eachPartial(prefix: string, visit: (write: PartialWrite) => Promise<void>): Promise<string | undefined> {
    if (!this.capabilities.partialWriteListing) return this.backend.partialUnlisted ?? 'the store is not declared to list partial writes';
    try {
      for await (const write of this.backend.listPartial(prefix)) await visit(write);
      return undefined;
    } catch (error) {
      if (error instanceof PartialWritesRefused) return error.reason;
      throw error;
    }
  }

  /** The first body of a read, checked, and wrapped so that failures later in the body are resumed. */
  private async openRead(
    key: string,
    start: number | undefined,
    end: number | undefined,
    ifMatch: string | undefined,
    operation: string,
  ): Promise<{ stream: Readable; length: number | undefined }> {
    const first = await this.pinnedGet(key, start, end, ifMatch, operation);
    const retry = this.backend.retry;
    if (retry === undefined) return { stream: first.body, length: first.length };
    const uri = this.uriOf(key);
    // The rest must come from the same version: the caller's ETag, else the one the first body had.
    const pin = ifMatch ?? (first.etag === '' ? undefined : first.etag);
    const stream = resumableBody({
      uri,
      start: start ?? 0,
      first,
      maxAttempts: retry.maxAttempts,
      idleTimeoutMs: retry.idleTimeoutMs,
      retryDelay: (failures) => retry.delayMs(failures),
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
          return await this.pinnedGet(key, resumeStart, end, pin, operation);
        } catch (error) {
          if (!isMissingObjectError(error)) throw error;
          throw new ConcurrentChangeError(
            `${uri} was deleted while being read (ETag ${pin}, at byte ${position}); rerun the job to read a consistent snapshot`,
            { operation, uri, key, expected: pin, offset: position },
            { cause: error },
          );
        }
      },
      exhausted: (attempts, position, cause) =>
        new StorageError(
          `${retry.callName(operation)} of ${uri} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: the response body broke off or stalled ` +
            `(last at byte ${position}: ${retry.redact(describeError(cause))}); check the network and the store, then rerun the job (--s3-max-attempts raises the budget)`,
          { operation, uri, key, attempts, offset: position },
          { cause },
        ),
    });
    return { stream, length: first.length };
  }

  /** One backend GET, its ETag checked against `ifMatch` and its range against the object's size. */
  private async pinnedGet(key: string, start: number | undefined, end: number | undefined, ifMatch: string | undefined, operation: string): Promise<GetResult> {
    const got = await this.backend.get(key, start, end, ifMatch, operation);
    const uri = this.uriOf(key);
    if (ifMatch !== undefined && got.etag !== '' && got.etag !== ifMatch) {
      got.body.destroy();
      throw objectChanged(uri, key, ifMatch, got.etag);
    }
    if (start !== undefined && got.size !== undefined && start >= got.size) {
      got.body.destroy();
      // Same rule as S3 (HTTP 416 InvalidRange): a range must start inside the object.
      throw new StorageError(
        `cannot read ${uri} from byte ${start}: the object has ${got.size} bytes; expected a range starting below ${got.size}`,
        { operation, uri, key, offset: start, size: got.size },
      );
    }
    return got;
  }

  /** The WriteResult when `key` holds exactly `body` (our write landed after all), else undefined. */
  private async readBackIfSame(key: string, body: Uint8Array): Promise<WriteResult | undefined> {
    let got: GetResult;
    try {
      got = await this.backend.get(key, undefined, undefined, undefined, 'writeConditional');
    } catch (error) {
      if (isMissingObjectError(error)) return undefined;
      throw error;
    }
    if (got.length !== undefined && got.length !== body.byteLength) {
      got.body.destroy();
      return undefined;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of got.body) {
      size += (chunk as Buffer).length;
      if (size > body.byteLength) {
        got.body.destroy();
        return undefined;
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks, size).equals(body) ? { key, size: body.byteLength, etag: got.etag } : undefined;
  }
}

