/**
 * The local folder of a spilled run (`--spill-dir`, SPEC §9): `model-metrics-spill-<run id>/`
 * holding the bucket files and an owner file (process space, pid, start), removed when the run
 * ends (success, failure, SIGTERM; on a sudden `process.exit` by an exit hook). A run that was
 * killed outright (SIGKILL, OOM) cannot remove its own: the next run that opens a spill area in
 * the same folder removes every folder whose owner ran on this host and is gone.
 */
import { rmSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelMetricsError, UsageError } from '../errors.js';
import type { Logger } from '../observability/log.js';
import { processRunning, thisProcess } from '../pipeline/lease.js';
import { LocalObjectStore } from '../storage/local.js';

/** Every spill folder's name starts with this; nothing else in the spill dir is ever touched. */
export const SPILL_FOLDER_PREFIX = 'model-metrics-spill-';
/** The owner file inside a spill folder. */
export const OWNER_FILE = 'owner.json';
/** A folder without a readable owner file this old is debris of a run killed while creating it. */
const OWNERLESS_GRACE_MS = 10 * 60 * 1000;

/** What the owner file says. */
export interface SpillOwner {
  /** Where pids are comparable (lease.ts thisProcess: host, boot and pid namespace). */
  process_space: string;
  host: string;
  pid: number;
  started_at: string;
}

/** Spill folders of this process still on disk, for the exit hook. */
const openFolders = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const folder of openFolders) rmSync(folder, { recursive: true, force: true });
  });
}

/** The errno code of an error or of one of its causes. */
export function errnoOf(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code) && !code.startsWith('E_')) return code;
  }
  return undefined;
}

/** The error of a spill dir that filled up: what, where, and the ways out. */
export function spillFullError(dir: string, cause: unknown): ModelMetricsError {
  return new ModelMetricsError(
    'E_STORAGE',
    `the spill dir ${dir} is full (ENOSPC) while writing a spilled day's bucket files; nothing was published. Free space there, give --spill-dir a larger local disk (on Kubernetes an emptyDir with a larger sizeLimit), or raise --memory-budget so fewer days spill`,
    { option: '--spill-dir', path: dir, operation: 'spill' },
    { cause },
  );
}

/** A failure of writing a file of `area` with the disk full, as spillFullError; any other error as it is. */
export function explainSpillFailure(area: SpillArea, error: unknown): unknown {
  const uri = error instanceof ModelMetricsError ? error.context.uri : undefined;
  const inArea = typeof uri === 'string' && uri.startsWith(`${area.store.uri}/`);
  return inArea && errnoOf(error) === 'ENOSPC' ? spillFullError(area.dir, error) : error;
}

/** One run's spill folder and the store rooted at it. */
export class SpillArea {
  private removed = false;

  private constructor(
    /** The --spill-dir it lives in. */
    readonly dir: string,
    /** The run's own folder. */
    readonly path: string,
    /** A local store rooted at `path`, where the bucket files are written and read back. */
    readonly store: LocalObjectStore,
  ) {}

  /**
   * Creates the run's folder under `dir` (created if missing), after removing the folders of dead
   * runs of this host. An unusable dir is a UsageError naming --spill-dir (exit 2), before any work.
   */
  static async open(dir: string, runId: string, logger: Logger): Promise<SpillArea> {
    const path = join(dir, `${SPILL_FOLDER_PREFIX}${runId}`);
    try {
      await mkdir(dir, { recursive: true });
      await removeDeadFolders(dir, logger);
      await mkdir(path);
      const me = thisProcess();
      const owner: SpillOwner = { process_space: me.process_space, host: me.host, pid: me.pid, started_at: new Date().toISOString() };
      openFolders.add(path);
      installExitHook();
      await writeFile(join(path, OWNER_FILE), `${JSON.stringify(owner)}\n`);
    } catch (error) {
      openFolders.delete(path);
      await rm(path, { recursive: true, force: true }).catch(() => undefined);
      if (errnoOf(error) === 'ENOSPC') throw spillFullError(dir, error);
      throw new UsageError(
        `--spill-dir ${dir} cannot hold this run's bucket files (${errnoOf(error) ?? (error instanceof Error ? error.message : String(error))}); nothing was read or published. Give --spill-dir a writable local folder (on Kubernetes an emptyDir), or raise --memory-budget so the day is joined in memory`,
        { option: '--spill-dir', path: dir },
        { cause: error },
      );
    }
    return new SpillArea(dir, path, new LocalObjectStore(path));
  }

  /** Removes the folder and everything in it; safe to call twice. */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await rm(this.path, { recursive: true, force: true });
    openFolders.delete(this.path);
  }
}

/** Removes the spill folders under `dir` whose owner ran in this process space and is gone; returns how many. */
export async function removeDeadFolders(dir: string, logger: Logger): Promise<number> {
  const me = thisProcess();
  let removed = 0;
  for (const name of await readdir(dir)) {
    if (!name.startsWith(SPILL_FOLDER_PREFIX)) continue;
    const folder = join(dir, name);
    let owner: SpillOwner | undefined;
    try {
      owner = JSON.parse(await readFile(join(folder, OWNER_FILE), 'utf8')) as SpillOwner;
    } catch {
      owner = undefined;
    }
    let dead: boolean;
    if (owner === undefined) {
      // No owner file yet (a run between mkdir and its write) or a torn one: only when old.
      const info = await stat(folder).catch(() => undefined);
      dead = info !== undefined && info.isDirectory() && Date.now() - info.mtimeMs > OWNERLESS_GRACE_MS;
    } else {
      dead = owner.process_space === me.process_space && owner.pid !== me.pid && !processRunning(owner.pid);
    }
    if (!dead) continue;
    await rm(folder, { recursive: true, force: true });
    removed++;
    logger.info({ event: 'spill_stale_removed', path: folder, owner_pid: owner?.pid, owner_started_at: owner?.started_at }, 'removed the spill folder of a run that is gone');
  }
  return removed;
}
