/**
 * File plumbing of the local backend (local.ts): temp-file names, the ETag of a file, durable
 * directory entries, a body written whole with fsync, and the errno tests.
 */
import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';

/** Name prefix of in-flight write files; listings never show them (nor orphans left by a crash). */
export const LOCAL_TEMP_PREFIX = '.tmp-model-metrics-';

/** Writes smaller than this are coalesced, so a writer yielding small chunks does not cost a syscall each. */
const WRITE_COALESCE_BYTES = 256 * 1024;

/**
 * The temp name of one write: LOCAL_TEMP_PREFIX, this process's pid, random hex. The pid lets
 * listFolder leave this process's own writes in flight out of `partial` (the lease heartbeat may be
 * renewing right beside the folder being cleaned), while those of a dead process are reported.
 */
export function tempNameOfThisProcess(): string {
  return `${LOCAL_TEMP_PREFIX}${process.pid}-${randomBytes(8).toString('hex')}`;
}

/** True for a temp file that a write of this process may still be filling. */
export function isOwnTempFile(name: string): boolean {
  return name.startsWith(`${LOCAL_TEMP_PREFIX}${process.pid}-`);
}

/**
 * `<size>-<mtime in ms>`: changes whenever the file is rewritten (every write renames a new file
 * into place). Sub-millisecond digits are kept when the filesystem has them, so two rewrites within
 * one millisecond still differ.
 */
export function localEtag(stats: BigIntStats): string {
  const ms = stats.mtimeNs / 1_000_000n;
  const fraction = stats.mtimeNs % 1_000_000n;
  const fractionDigits = fraction === 0n ? '' : `.${fraction.toString().padStart(6, '0').replace(/0+$/, '')}`;
  return `${stats.size}-${ms}${fractionDigits}`;
}

/**
 * Writes every chunk of `body` to `handle`, fsyncs, and returns the byte count. Errors of the file
 * go through `fsError`; errors of the caller's body propagate as thrown.
 */
export async function writeBody(handle: FileHandle, body: AsyncIterable<Uint8Array> | Uint8Array, fsError: (error: unknown) => Error): Promise<number> {
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
      throw fsError(error);
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
    throw fsError(error);
  }
  return size;
}

/** Flushes the directory entry of a rename, so a crash right after cannot lose the new file. */
export async function syncDirectory(directory: string): Promise<void> {
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

export async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
}

export function isNodeError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}

/** ENOENT, or ENOTDIR when a path component is a file: both mean "no such object". */
export function isMissing(error: unknown): boolean {
  return isNodeError(error) && (error.code === 'ENOENT' || error.code === 'ENOTDIR');
}
