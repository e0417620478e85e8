/**
 * The local-filesystem backend (the embedded default, SPEC §1) under the ObjectStore façade
 * (object-store.ts): keys are files under one root directory. It mimics what the job relies on
 * from S3: prefix semantics that are string prefixes (not directories), atomic writes, and an ETag
 * that changes on every rewrite; the façade adds byte-ordered listings and the shared rules.
 */
import type { Dirent, BigIntStats } from 'node:fs';
import { link, mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ModelMetricsError, NotFoundError, StorageError } from '../errors.js';
import type { ConditionalPutOutcome, GetResult, ListEntry, PartialWrite, StoreBackend } from './backend.js';
import { LOCAL_TEMP_PREFIX, isDirectory, isMissing, isNodeError, isOwnTempFile, localEtag, syncDirectory, tempNameOfThisProcess, writeBody } from './local-files.js';
import { LayeredObjectStore, objectNotFound } from './object-store.js';
import { mapStreamErrors } from './streams.js';
import type { ObjectInfo, WriteCondition, WriteResult } from './types.js';

export { LOCAL_TEMP_PREFIX } from './local-files.js';

/** Read chunk size: large enough that per-chunk overhead vanishes next to Avro decoding. */
const READ_HIGH_WATER_MARK = 256 * 1024;

/** How many files of one directory are stat'ed (listing) or unlinked (deleting) at once. */
const LIST_STAT_CONCURRENCY = 32;

/** Entries per listing page. */
const LIST_PAGE_SIZE = 1000;

/**
 * Attempts to create a file in a directory that a concurrent delete keeps removing as empty (the
 * windows inside mkdir and between mkdir and open are microseconds, so a second attempt
 * practically always succeeds).
 */
const CREATE_IN_DIRECTORY_ATTEMPTS = 5;

/** An object store rooted at an absolute local directory: the façade over a LocalBackend. */
export class LocalObjectStore extends LayeredObjectStore {
  constructor(readonly rootDir: string) {
    super(new LocalBackend(rootDir));
  }
}

/** The raw file operations of one root directory. */
export class LocalBackend implements StoreBackend {
  readonly uri: string;
  /** link(2) makes If-None-Match atomic, but If-Match is a stat then a rename (putConditional): not enforced. */
  readonly capabilities = { conditionalWrites: false, partialWriteListing: true } as const;
  readonly deleteBatchSize = 1000;

  constructor(readonly rootDir: string) {
    if (!isAbsolute(rootDir)) {
      throw new ModelMetricsError('E_INTERNAL', `local store root ${JSON.stringify(rootDir)} is not absolute; parseStoreUri resolves it first`, {
        uri: rootDir,
      });
    }
    const href = pathToFileURL(rootDir).href;
    // `file:///` (the filesystem root) keeps its slash; any other root URI has none at the end.
    this.uri = href === 'file:///' ? href : href.replace(/\/+$/, '');
  }

  uriOf(key: string): string {
    return key.length === 0 ? this.uri : pathToFileURL(join(this.rootDir, key)).href;
  }

  /**
   * As on S3, the prefix is a string prefix: `dt=2026-01` matches `dt=2026-01-01/…`, so the walk
   * starts at the prefix's directory part and filters names there by the rest. Directories are
   * entries too (a folder holding only temp files or nothing is debris to find).
   */
  async *listPages(prefix: string, operation: string, pageSize = LIST_PAGE_SIZE): AsyncGenerator<ListEntry[]> {
    const slash = prefix.lastIndexOf('/');
    let page: ListEntry[] = [];
    for await (const entry of this.walkDirectory(prefix.slice(0, slash + 1), prefix.slice(slash + 1), operation === 'deleteUnder' ? operation : 'list')) {
      page.push(entry);
      if (page.length >= pageSize) {
        yield page;
        page = [];
      }
    }
    if (page.length > 0) yield page;
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.statFile(key, 'head');
  }

  async get(key: string, start: number | undefined, end: number | undefined, _ifMatch: string | undefined, operation: string): Promise<GetResult> {
    const handle = await this.openForRead(key, operation);
    try {
      // fstat of the open handle: the ETag the façade checks is the one of the bytes about to be
      // streamed, even if a writer renames a new version into place right now.
      const stats = await handle.stat({ bigint: true });
      const size = Number(stats.size);
      const first = start ?? 0;
      const last = Math.min(end ?? size - 1, size - 1);
      const stream = handle.createReadStream({ start: first, ...(end === undefined ? {} : { end }), highWaterMark: READ_HIGH_WATER_MARK });
      const body = mapStreamErrors(stream, (error) => this.fsError(error, operation, key));
      return { body, length: Math.max(0, last - first + 1), etag: localEtag(stats), size };
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw this.fsError(error, operation, key);
    }
  }

  /** A temp file beside the target, renamed into place, so a reader never sees a partial file. */
  async put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array): Promise<WriteResult> {
    const target = this.pathOf(key);
    const directory = dirname(target);
    // Same directory as the target, so the rename below stays on one filesystem and is atomic (POSIX rename(2)).
    const temp = join(directory, tempNameOfThisProcess());
    let handle: FileHandle | undefined;
    try {
      handle = await this.inDirectory(directory, () => open(temp, 'wx')).catch((error: unknown) => {
        throw this.fsError(error, 'write', key);
      });
      const size = await writeBody(handle, body, (error) => this.fsError(error, 'write', key));
      const stats = await handle.stat({ bigint: true });
      await handle.close();
      handle = undefined;
      await rename(temp, target);
      await syncDirectory(directory);
      return { key, size, etag: localEtag(stats) };
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      // Errors from the caller's body pass through unchanged; ours are already StorageErrors.
      if (error instanceof ModelMetricsError || !isNodeError(error)) throw error;
      throw this.fsError(error, 'write', key);
    }
  }

  /**
   * `{ ifNoneMatch: '*' }`: the body goes to a temp file, which link(2) then gives the target name;
   * link fails with EEXIST when the name is taken, atomically, so of several writers exactly one
   * wins (rename(2) would silently replace). `{ ifMatch }`: compare the current ETag, then rename
   * the temp file over the target. POSIX has no compare-and-rename, so a writer that replaces the
   * file between our stat and our rename (a window of microseconds) is overwritten; runs that
   * coordinate through ifMatch on one local disk should not rely on that window being empty.
   */
  async putConditional(key: string, body: Uint8Array, condition: WriteCondition): Promise<ConditionalPutOutcome> {
    const operation = 'writeConditional';
    const refused = { refused: true, afterRetry: false } as const;
    const target = this.pathOf(key);
    const directory = dirname(target);
    const temp = join(directory, tempNameOfThisProcess());
    let handle: FileHandle | undefined;
    try {
      handle = await this.inDirectory(directory, () => open(temp, 'wx'));
      const size = await writeBody(handle, body, (error) => this.fsError(error, 'write', key));
      const stats = await handle.stat({ bigint: true });
      await handle.close();
      handle = undefined;
      if ('ifNoneMatch' in condition) {
        try {
          await link(temp, target);
        } catch (error) {
          if (isNodeError(error) && error.code === 'EEXIST') return refused;
          throw error;
        }
      } else {
        // Checked right before the rename to keep the window small (see the method comment).
        if ((await this.head(key))?.etag !== condition.ifMatch) return refused;
        await rename(temp, target);
      }
      await syncDirectory(directory);
      return { written: { key, size, etag: localEtag(stats) } };
    } catch (error) {
      if (error instanceof ModelMetricsError) throw error;
      throw this.fsError(error, operation, key);
    } finally {
      await handle?.close().catch(() => undefined);
      // After link(2) the temp name is a second name of the target: removing it leaves the target.
      await unlink(temp).catch(() => undefined);
    }
  }

  /** POSIX rename(2): atomic, replacing an existing target; then the directories it left empty go. */
  async rename(sourceKey: string, targetKey: string): Promise<void> {
    const source = this.pathOf(sourceKey);
    const target = this.pathOf(targetKey);
    try {
      await this.inDirectory(dirname(target), () => rename(source, target));
      await syncDirectory(dirname(target));
    } catch (error) {
      throw this.fsError(error, 'move', sourceKey);
    }
    // The commit moves every staged file out of the run's staging folder: drop the emptied folders.
    await this.pruneEmptyDirectories(dirname(source));
  }

  /**
   * Unlinks the files (a key ending in `/` names a directory, removed when empty), then removes the
   * directories the deletes left empty up to (never including) the root, as S3 has no empty folders.
   */
  async deleteBatch(keys: readonly string[], operation: string): Promise<void> {
    const directories = new Set<string>();
    for (let i = 0; i < keys.length; i += LIST_STAT_CONCURRENCY) {
      await Promise.all(
        keys.slice(i, i + LIST_STAT_CONCURRENCY).map(async (key) => {
          if (key.endsWith('/')) {
            directories.add(this.pathOf(key));
            return;
          }
          try {
            await unlink(this.pathOf(key));
          } catch (error) {
            if (!isMissing(error)) throw this.fsError(error, operation, key);
          }
          directories.add(dirname(this.pathOf(key)));
        }),
      );
    }
    // Once per directory, after all unlinks: a thousand keys of one folder cost one rmdir, not a thousand.
    for (const directory of directories) await this.pruneEmptyDirectories(directory);
  }

  /** The temp files under the folder: the unfinished writes of this process (live) and of dead ones. */
  async *listPartial(prefix: string): AsyncGenerator<PartialWrite> {
    let entries: Dirent[];
    try {
      entries = await readdir(this.pathOf(prefix), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw this.fsError(error, 'list', prefix);
    }
    for (const entry of entries) {
      const key = prefix + entry.name;
      if (entry.isDirectory()) yield* this.listPartial(`${key}/`);
      else if (entry.name.startsWith(LOCAL_TEMP_PREFIX)) yield { key, id: key, live: isOwnTempFile(entry.name), deletableByKey: true };
    }
  }

  async abortPartial(write: PartialWrite): Promise<boolean> {
    try {
      await unlink(this.pathOf(write.key));
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw this.fsError(error, 'deleteUnder', write.key);
    }
  }

  private pathOf(key: string): string {
    return join(this.rootDir, key);
  }

  /**
   * Removes `directory` and then each parent while it is empty, stopping below the store root
   * (never the root itself). rmdir(2) removes only empty directories, atomically, so a directory a
   * concurrent writer just filled stays. Best effort: a directory is not an object, and one left
   * behind (permissions, a mount point) changes nothing for readers.
   */
  private async pruneEmptyDirectories(directory: string): Promise<void> {
    for (let current = directory; this.isBelowRoot(current); current = dirname(current)) {
      try {
        await rmdir(current);
      } catch (error) {
        // Gone already (another delete pruned it): its parent may be empty now too.
        if (isNodeError(error) && error.code === 'ENOENT') continue;
        return;
      }
    }
  }

  private isBelowRoot(path: string): boolean {
    const fromRoot = relative(this.rootDir, path);
    return fromRoot !== '' && !fromRoot.startsWith('..') && !isAbsolute(fromRoot);
  }

  /**
   * Runs `create` (open or rename a file into `directory`) after making the directory, again when a
   * concurrent delete removed the directory as empty meanwhile. Two windows: inside mkdir, whose
   * recursive form answers an existing path with EEXIST and then stats it to check it is a
   * directory, so a prune between the two makes mkdir itself fail with ENOENT (ENOTDIR for a parent);
   * and between mkdir and `create` (ENOENT while the directory is gone; an ENOENT with the directory
   * in place is the caller's, e.g. a missing move source).
   */
  private async inDirectory<T>(directory: string, create: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const lastAttempt = attempt >= CREATE_IN_DIRECTORY_ATTEMPTS;
      try {
        await mkdir(directory, { recursive: true });
      } catch (error) {
        if (lastAttempt || !isMissing(error)) throw error;
        continue;
      }
      try {
        return await create();
      } catch (error) {
        const retry = !lastAttempt && isMissing(error) && !(await isDirectory(directory));
        if (!retry) throw error;
      }
    }
  }

  private async openForRead(key: string, operation: string): Promise<FileHandle> {
    let handle: FileHandle;
    try {
      handle = await open(this.pathOf(key), 'r');
    } catch (error) {
      if (isMissing(error)) throw this.notFound(key, operation, error);
      throw this.fsError(error, operation, key);
    }
    // open(2) succeeds on a directory; reading it would fail later with a less helpful EISDIR.
    const isFile = await handle.stat().then(
      (stats) => stats.isFile(),
      () => false,
    );
    if (!isFile) {
      await handle.close().catch(() => undefined);
      throw this.notFound(key, operation);
    }
    return handle;
  }

  /** Entries under `directoryKey` whose names there start with `namePrefix`, unsorted; the directory itself first. */
  private async *walkDirectory(directoryKey: string, namePrefix: string, operation: string): AsyncGenerator<ListEntry> {
    let entries: Dirent[];
    try {
      entries = await readdir(join(this.rootDir, directoryKey), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw this.fsError(error, operation, directoryKey);
    }
    if (namePrefix === '' && directoryKey !== '') yield { kind: 'directory', key: directoryKey, size: 0, etag: '' };
    const files: { key: string; link: boolean }[] = [];
    for (const entry of entries) {
      const name = entry.name;
      if (!name.startsWith(namePrefix) || name.startsWith(LOCAL_TEMP_PREFIX)) continue;
      const key = directoryKey + name;
      if (entry.isDirectory()) {
        yield* this.walkDirectory(`${key}/`, '', operation);
      } else if (entry.isFile() || entry.isSymbolicLink()) {
        files.push({ key, link: entry.isSymbolicLink() });
      }
    }
    for (let i = 0; i < files.length; i += LIST_STAT_CONCURRENCY) {
      const batch = files.slice(i, i + LIST_STAT_CONCURRENCY);
      const infos = await Promise.all(batch.map(({ key }) => this.statFile(key, operation)));
      for (let j = 0; j < batch.length; j++) {
        const info = infos[j];
        // A symlink to a directory or to nothing is no object, but it goes with its folder (never followed).
        if (info !== undefined) yield { kind: 'object', ...info };
        else if (batch[j]!.link) yield { kind: 'marker', key: batch[j]!.key, size: 0, etag: '' };
      }
    }
  }

  /**
   * Info of a regular file (symlinks to files are followed), undefined when it vanished mid-walk or
   * is not a file. Symlinks to directories are not descended into, like `find` without `-L`, so a
   * link cycle cannot make a listing endless.
   */
  private async statFile(key: string, operation: string): Promise<ObjectInfo | undefined> {
    let stats: BigIntStats;
    try {
      stats = await stat(this.pathOf(key), { bigint: true });
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.fsError(error, operation, key);
    }
    return stats.isFile() ? { key, size: Number(stats.size), etag: localEtag(stats) } : undefined;
  }

  private notFound(key: string, operation: string, cause?: unknown): NotFoundError {
    return objectNotFound(this.uriOf(key), { operation, key }, cause);
  }

  private fsError(error: unknown, operation: string, key: string): StorageError {
    if (error instanceof StorageError) return error;
    const code = isNodeError(error) ? error.code : undefined;
    const detail = error instanceof Error ? error.message : String(error);
    return new StorageError(
      `local ${operation} of ${this.uriOf(key)} failed: ${detail}; check that the path is a directory tree this user can read and write`,
      { operation, uri: this.uriOf(key), key, ...(code === undefined ? {} : { errno: code }) },
      { cause: error },
    );
  }
}
