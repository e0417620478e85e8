/**
 * The local-filesystem object store (the embedded default, SPEC §1): keys are files under one root
 * directory. It mimics what the job relies on from S3: byte-ordered listings, prefix semantics that
 * are string prefixes (not directories), atomic writes, and an ETag that changes on every rewrite.
 */
import { randomBytes } from 'node:crypto';
import type { Dirent, BigIntStats } from 'node:fs';
import { link, mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { mapBounded } from '../concurrency.js';
import { ConcurrentChangeError, ModelMetricsError, NotFoundError, StorageError } from '../errors.js';
import { READ_SMALL_LIMIT_BYTES, assertFolderPrefix, assertRelativeKey, checkRange, sortByKeyBytes, sortedKeys } from './store-rules.js';
import { mapStreamErrors } from './streams.js';
import type { DeleteUnderResult, FolderListing, ObjectInfo, ObjectStore, ReadOptions, WriteCondition, WriteResult } from './types.js';

/** Name prefix of in-flight write files; listings never show them (nor orphans left by a crash). */
export const LOCAL_TEMP_PREFIX = '.tmp-model-metrics-';

/**
 * The temp name of one write: LOCAL_TEMP_PREFIX, this process's pid, random hex. The pid lets
 * listFolder leave this process's own writes in flight out of `partial` (the lease heartbeat may be
 * renewing right beside the folder being cleaned), while those of a dead process are reported.
 */
function tempNameOfThisProcess(): string {
  return `${LOCAL_TEMP_PREFIX}${process.pid}-${randomBytes(8).toString('hex')}`;
}

/** True for a temp file that a write of this process may still be filling. */
function isOwnTempFile(name: string): boolean {
  return name.startsWith(`${LOCAL_TEMP_PREFIX}${process.pid}-`);
}

/** Read chunk size: large enough that per-chunk overhead vanishes next to Avro decoding. */
const READ_HIGH_WATER_MARK = 256 * 1024;

/** Writes smaller than this are coalesced, so a writer yielding small chunks does not cost a syscall each. */
const WRITE_COALESCE_BYTES = 256 * 1024;

/** How many files of one directory are stat'ed (listing) or unlinked (deleting) at once. */
const LIST_STAT_CONCURRENCY = 32;

/**
 * Attempts to create a file in a directory that a concurrent delete keeps removing as empty (the
 * window between mkdir and open is microseconds, so a second attempt practically always succeeds).
 */
const CREATE_IN_DIRECTORY_ATTEMPTS = 5;

/** An object store rooted at an absolute local directory. */
export class LocalObjectStore implements ObjectStore {
  readonly uri: string;
  /** link(2) makes If-None-Match atomic, but If-Match is a stat then a rename (writeConditional): not enforced. */
  readonly capabilities = { conditionalWrites: false } as const;

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

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertRelativeKey(prefix, this.uri, true);
    const objects: ObjectInfo[] = [];
    for await (const info of this.walkPrefix(prefix)) objects.push(info);
    return sortByKeyBytes(objects);
  }

  async hasAny(prefix: string): Promise<boolean> {
    assertRelativeKey(prefix, this.uri, true);
    const walk = this.walkPrefix(prefix);
    const first = await walk.next();
    await walk.return(undefined);
    return first.done !== true;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertRelativeKey(key, this.uri);
    let stats: BigIntStats;
    try {
      stats = await stat(this.pathOf(key), { bigint: true });
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.fsError(error, 'head', key);
    }
    return stats.isFile() ? { key, size: Number(stats.size), etag: localEtag(stats) } : undefined;
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    assertRelativeKey(key, this.uri);
    const { start, end } = checkRange(options, this.uriOf(key), key);
    const handle = await this.openForRead(key, 'read');
    try {
      // fstat of the open handle: the ETag checked is the one of the bytes we are about to stream,
      // even if a writer renames a new version into place right now.
      const stats = await handle.stat({ bigint: true });
      const size = Number(stats.size);
      if (options.ifMatch !== undefined) {
        const etag = localEtag(stats);
        if (etag !== options.ifMatch) {
          throw new ConcurrentChangeError(
            `${this.uriOf(key)} changed since it was listed: ETag is ${etag}, expected ${options.ifMatch}; rerun the job to read a consistent snapshot`,
            { operation: 'read', uri: this.uriOf(key), key, expected: options.ifMatch, actual: etag },
          );
        }
      }
      if (start !== undefined && start >= size) {
        // Same rule as S3 (HTTP 416 InvalidRange): a range must start inside the object.
        throw new StorageError(
          `cannot read ${this.uriOf(key)} from byte ${start}: the object has ${size} bytes; expected a range starting below ${size}`,
          { operation: 'read', uri: this.uriOf(key), key, offset: start, size },
        );
      }
      const stream = handle.createReadStream({
        start: start ?? 0,
        ...(end === undefined ? {} : { end }),
        highWaterMark: READ_HIGH_WATER_MARK,
      });
      return mapStreamErrors(stream, (error) => this.fsError(error, 'read', key));
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  async readSmall(key: string): Promise<Buffer | undefined> {
    assertRelativeKey(key, this.uri);
    let handle: FileHandle;
    try {
      handle = await this.openForRead(key, 'readSmall');
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      if (size > READ_SMALL_LIMIT_BYTES) {
        throw new StorageError(
          `${this.uriOf(key)} has ${size} bytes, more than the ${READ_SMALL_LIMIT_BYTES} bytes expected of a small object such as a manifest; ` +
            'check that the key names a manifest',
          { operation: 'readSmall', uri: this.uriOf(key), key, size },
        );
      }
      return await handle.readFile();
    } catch (error) {
      if (error instanceof ModelMetricsError) throw error;
      throw this.fsError(error, 'readSmall', key);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  async write(key: string, body: AsyncIterable<Uint8Array> | Uint8Array): Promise<WriteResult> {
    assertRelativeKey(key, this.uri);
    const target = this.pathOf(key);
    const directory = dirname(target);
    // Same directory as the target, so the rename below stays on one filesystem and is atomic (POSIX rename(2)).
    const temp = join(directory, tempNameOfThisProcess());
    let handle: FileHandle | undefined;
    try {
      handle = await this.inDirectory(directory, () => open(temp, 'wx')).catch((error: unknown) => {
        throw this.fsError(error, 'write', key);
      });
      const size = await this.writeBody(handle, body, key);
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
  async writeConditional(key: string, body: Uint8Array, condition: WriteCondition): Promise<WriteResult | undefined> {
    assertRelativeKey(key, this.uri);
    const operation = 'writeConditional';
    if ('ifMatch' in condition && (await this.head(key))?.etag !== condition.ifMatch) return undefined;
    const target = this.pathOf(key);
    const directory = dirname(target);
    const temp = join(directory, tempNameOfThisProcess());
    let handle: FileHandle | undefined;
    try {
      handle = await this.inDirectory(directory, () => open(temp, 'wx'));
      const size = await this.writeBody(handle, body, key);
      const stats = await handle.stat({ bigint: true });
      await handle.close();
      handle = undefined;
      if ('ifNoneMatch' in condition) {
        try {
          await link(temp, target);
        } catch (error) {
          if (isNodeError(error) && error.code === 'EEXIST') return undefined;
          throw error;
        }
      } else {
        // Re-checked right before the rename to keep the window small (see the method comment).
        if ((await this.head(key))?.etag !== condition.ifMatch) return undefined;
        await rename(temp, target);
      }
      await syncDirectory(directory);
      return { key, size, etag: localEtag(stats) };
    } catch (error) {
      if (error instanceof ModelMetricsError) throw error;
      throw this.fsError(error, operation, key);
    } finally {
      await handle?.close().catch(() => undefined);
      // After link(2) the temp name is a second name of the target: removing it leaves the target.
      await unlink(temp).catch(() => undefined);
    }
  }

  async move(sourceKey: string, targetKey: string): Promise<void> {
    assertRelativeKey(sourceKey, this.uri);
    assertRelativeKey(targetKey, this.uri);
    const source = this.pathOf(sourceKey);
    const target = this.pathOf(targetKey);
    try {
      // POSIX rename(2): atomic, and it replaces an existing target.
      await this.inDirectory(dirname(target), () => rename(source, target));
      await syncDirectory(dirname(target));
    } catch (error) {
      throw this.fsError(error, 'move', sourceKey);
    }
    // The commit moves every staged file out of the run's staging folder: drop the emptied folders.
    await this.pruneEmptyDirectories(dirname(source));
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) assertRelativeKey(key, this.uri);
    const directories = new Set<string>();
    for (let i = 0; i < keys.length; i += LIST_STAT_CONCURRENCY) {
      await Promise.all(
        keys.slice(i, i + LIST_STAT_CONCURRENCY).map(async (key) => {
          try {
            await unlink(this.pathOf(key));
          } catch (error) {
            if (!isMissing(error)) throw this.fsError(error, 'delete', key);
          }
          directories.add(dirname(this.pathOf(key)));
        }),
      );
    }
    // Once per directory, after all unlinks: a thousand keys of one folder cost one rmdir, not a thousand.
    for (const directory of directories) await this.pruneEmptyDirectories(directory);
  }

  async listFolder(prefix: string): Promise<FolderListing> {
    assertFolderPrefix(prefix, this.uri, 'listFolder');
    let entries: Dirent[];
    try {
      entries = await readdir(this.pathOf(prefix), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return { folders: [], objects: [] };
      throw this.fsError(error, 'list', prefix);
    }
    const folders: string[] = [];
    const objects: string[] = [];
    const partial: string[] = [];
    for (const entry of entries) {
      const key = prefix + entry.name;
      // A directory is a folder even when it holds only temp files or nothing: both are debris to find.
      if (entry.isDirectory()) folders.push(`${key}/`);
      else if (entry.name.startsWith(LOCAL_TEMP_PREFIX)) {
        if (!isOwnTempFile(entry.name)) partial.push(key);
      } else if (entry.isFile() || (entry.isSymbolicLink() && (await this.statFile(key)) !== undefined)) objects.push(key);
    }
    return { folders: sortedKeys(folders), objects: sortedKeys(objects), ...(partial.length === 0 ? {} : { partial: sortedKeys(partial) }) };
  }

  async deleteUnder(prefix: string): Promise<DeleteUnderResult> {
    assertFolderPrefix(prefix, this.uri, 'deleteUnder');
    const removed = { objects: 0, partial: 0 };
    await this.removeTree(prefix, removed);
    // The folder's parents, where it was their last entry (S3 has no empty folders; nor do we).
    await this.pruneEmptyDirectories(dirname(this.pathOf(prefix)));
    return removed;
  }

  private pathOf(key: string): string {
    return join(this.rootDir, key);
  }

  /**
   * Deletes the files under `directoryKey` (a key prefix ending in `/`), depth first, then the
   * directory itself. Symlinks are unlinked, never followed. A file that is already gone, or a
   * directory that is gone or holds something new (a concurrent writer), is not an error.
   */
  private async removeTree(directoryKey: string, removed: { objects: number; partial: number }): Promise<void> {
    const directory = this.pathOf(directoryKey);
    let entries: Dirent[];
    try {
      entries = await readdir(directory, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw this.fsError(error, 'deleteUnder', directoryKey);
    }
    const files: string[] = [];
    for (const entry of entries) {
      if (entry.isDirectory()) await this.removeTree(`${directoryKey}${entry.name}/`, removed);
      else files.push(entry.name);
    }
    await mapBounded(files, LIST_STAT_CONCURRENCY, async (name) => {
      try {
        await unlink(join(directory, name));
      } catch (error) {
        if (isMissing(error)) return;
        throw this.fsError(error, 'deleteUnder', directoryKey + name);
      }
      if (name.startsWith(LOCAL_TEMP_PREFIX)) removed.partial++;
      else removed.objects++;
    });
    try {
      await rmdir(directory);
    } catch (error) {
      if (!isNodeError(error) || !['ENOENT', 'ENOTEMPTY', 'EEXIST'].includes(error.code ?? '')) throw this.fsError(error, 'deleteUnder', directoryKey);
    }
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
   * concurrent delete removed the directory as empty between the two (ENOENT while the directory
   * is gone; an ENOENT with the directory in place is the caller's, e.g. a missing move source).
   */
  private async inDirectory<T>(directory: string, create: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await mkdir(directory, { recursive: true });
      try {
        return await create();
      } catch (error) {
        const retry = attempt < CREATE_IN_DIRECTORY_ATTEMPTS && isMissing(error) && !(await isDirectory(directory));
        if (!retry) throw error;
      }
    }
  }

  /** Writes every chunk, fsyncs, and returns the byte count. Body errors propagate as thrown. */
  private async writeBody(handle: FileHandle, body: AsyncIterable<Uint8Array> | Uint8Array, key: string): Promise<number> {
    let size = 0;
    const pending = Buffer.allocUnsafe(WRITE_COALESCE_BYTES);
    let pendingLength = 0;
    const writeFully = async (bytes: Uint8Array): Promise<void> => {
      try {
        let offset = 0;
        while (offset < bytes.byteLength) {
          const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
          offset += bytesWritten;
        }
      } catch (error) {
        throw this.fsError(error, 'write', key);
      }
    };
    const chunks: AsyncIterable<Uint8Array> | Uint8Array[] = body instanceof Uint8Array ? [body] : body;
    for await (const chunk of chunks) {
      size += chunk.byteLength;
      if (pendingLength + chunk.byteLength <= WRITE_COALESCE_BYTES) {
        pending.set(chunk, pendingLength);
        pendingLength += chunk.byteLength;
        continue;
      }
      if (pendingLength > 0) {
        await writeFully(pending.subarray(0, pendingLength));
        pendingLength = 0;
      }
      if (chunk.byteLength < WRITE_COALESCE_BYTES) {
        pending.set(chunk, 0);
        pendingLength = chunk.byteLength;
      } else {
        await writeFully(chunk);
      }
    }
    if (pendingLength > 0) await writeFully(pending.subarray(0, pendingLength));
    try {
      await handle.sync();
    } catch (error) {
      throw this.fsError(error, 'write', key);
    }
    return size;
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

  /**
   * Every object whose key starts with `prefix`, unsorted. As on S3, the prefix is a string prefix:
   * `dt=2026-01` matches `dt=2026-01-01/…`, so the walk starts at the prefix's directory part and
   * filters names there by the rest.
   */
  private async *walkPrefix(prefix: string): AsyncGenerator<ObjectInfo> {
    const slash = prefix.lastIndexOf('/');
    yield* this.walkDirectory(prefix.slice(0, slash + 1), prefix.slice(slash + 1));
  }

  private async *walkDirectory(directoryKey: string, namePrefix: string): AsyncGenerator<ObjectInfo> {
    let entries: Dirent[];
    try {
      entries = await readdir(join(this.rootDir, directoryKey), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw this.fsError(error, 'list', directoryKey);
    }
    const files: string[] = [];
    for (const entry of entries) {
      const name = entry.name;
      if (!name.startsWith(namePrefix) || name.startsWith(LOCAL_TEMP_PREFIX)) continue;
      const key = directoryKey + name;
      if (entry.isDirectory()) {
        yield* this.walkDirectory(`${key}/`, '');
      } else if (entry.isFile() || entry.isSymbolicLink()) {
        files.push(key);
      }
    }
    for (let i = 0; i < files.length; i += LIST_STAT_CONCURRENCY) {
      const batch = await Promise.all(files.slice(i, i + LIST_STAT_CONCURRENCY).map((key) => this.statFile(key)));
      for (const info of batch) if (info !== undefined) yield info;
    }
  }

  /**
   * Info of a regular file (symlinks to files are followed), undefined when it vanished mid-walk or
   * is not a file. Symlinks to directories are not descended into, like `find` without `-L`, so a
   * link cycle cannot make a listing endless.
   */
  private async statFile(key: string): Promise<ObjectInfo | undefined> {
    let stats: BigIntStats;
    try {
      stats = await stat(this.pathOf(key), { bigint: true });
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.fsError(error, 'list', key);
    }
    return stats.isFile() ? { key, size: Number(stats.size), etag: localEtag(stats) } : undefined;
  }

  private notFound(key: string, operation: string, cause?: unknown): NotFoundError {
    return new NotFoundError(
      `${this.uriOf(key)} does not exist; check the key and the dataset root`,
      { operation, uri: this.uriOf(key), key },
      cause === undefined ? undefined : { cause },
    );
  }

  private fsError(error: unknown, operation: string, key: string): StorageError {
    const code = isNodeError(error) ? error.code : undefined;
    const detail = error instanceof Error ? error.message : String(error);
    return new StorageError(
      `local ${operation} of ${this.uriOf(key)} failed: ${detail}; check that the path is a directory tree this user can read and write`,
      { operation, uri: this.uriOf(key), key, ...(code === undefined ? {} : { errno: code }) },
      { cause: error },
    );
  }
}

/**
 * `<size>-<mtime in ms>`: changes whenever the file is rewritten (every write renames a new file
 * into place). Sub-millisecond digits are kept when the filesystem has them, so two rewrites within
 * one millisecond still differ.
 */
function localEtag(stats: BigIntStats): string {
  const ms = stats.mtimeNs / 1_000_000n;
  const fraction = stats.mtimeNs % 1_000_000n;
  const fractionDigits = fraction === 0n ? '' : `.${fraction.toString().padStart(6, '0').replace(/0+$/, '')}`;
  return `${stats.size}-${ms}${fractionDigits}`;
}

/** Flushes the directory entry of a rename, so a crash right after cannot lose the new file. */
async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(directory, 'r');
    await handle.sync();
  } catch {
    // Some filesystems (and Windows) cannot fsync a directory; the rename itself already happened.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
}

function isNodeError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}

/** ENOENT, or ENOTDIR when a path component is a file: both mean "no such object". */
function isMissing(error: unknown): boolean {
  return isNodeError(error) && (error.code === 'ENOENT' || error.code === 'ENOTDIR');
}
