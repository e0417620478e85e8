/**
 * What readers find in the output partitions of a day (issue 5: crash safety, concurrent runs):
 * snapshots of `_SUCCESS` and data files, and a classification of a partition against two known
 * results — the old one, the new one, absent, or (never acceptable) a mix.
 */
import type { ObjectStore } from '../../src/storage/types.js';
import { type DatasetRoot, readBytes } from './cli.js';

/** The two output datasets. */
export const DATASETS = ['curated', 'metrics'] as const;

/** One of the output datasets. */
export type Dataset = (typeof DATASETS)[number];

/** What a dataset's partition holds: its `_SUCCESS` bytes and its data files by key. */
export interface PartitionState {
  success: Buffer | undefined;
  data: Map<string, Buffer>;
}

/** Both output partitions of a day and stage. */
export type Snapshot = Record<Dataset, PartitionState>;

/** Reads every object of a partition. */
export async function partitionState(store: ObjectStore, partition: string): Promise<PartitionState> {
  const data = new Map<string, Buffer>();
  let success: Buffer | undefined;
  for (const object of await store.list(partition)) {
    const bytes = await readBytes(store, object.key);
    if (object.key === `${partition}_SUCCESS`) success = bytes;
    else data.set(object.key, bytes);
  }
  return { success, data };
}

/** Both output partitions of a root. */
export async function snapshot(root: DatasetRoot, partition: string): Promise<Snapshot> {
  return { curated: await partitionState(root.store('curated'), partition), metrics: await partitionState(root.store('metrics'), partition) };
}

function sameFiles(a: Map<string, Buffer>, b: Map<string, Buffer>): boolean {
  return a.size === b.size && [...a].every(([key, bytes]) => b.get(key)?.equals(bytes) === true);
}

/** What identifies a result across runs and stores: the files it lists and its as-of (fingerprints differ by store, through the inputs' ETags). */
function resultOf(success: Buffer): string {
  const manifest = JSON.parse(success.toString('utf8')) as { outputs: unknown; as_of: string };
  return JSON.stringify([manifest.as_of, manifest.outputs]);
}

/**
 * What a reader finds in one dataset's partition: `old` or `new` (committed, whole), `absent`,
 * `absent (old files)` / `absent (new files)` (no `_SUCCESS`, files all from one run), or `mixed` /
 * `wrong: …` (never acceptable). `old` may be undefined when no earlier result exists.
 */
export function classify(state: PartitionState, old: PartitionState | undefined, fresh: PartitionState): string {
  if (state.success !== undefined) {
    if (old?.success !== undefined && state.success.equals(old.success)) return sameFiles(state.data, old.data) ? 'old' : 'wrong: old _SUCCESS over other files';
    if (resultOf(state.success) !== resultOf(fresh.success!)) return 'wrong: unknown _SUCCESS';
    return sameFiles(state.data, fresh.data) ? 'new' : 'wrong: new _SUCCESS over other files';
  }
  const files = [...state.data];
  if (files.length === 0) return 'absent';
  if (old !== undefined && files.every(([key, bytes]) => old.data.get(key)?.equals(bytes) === true)) return 'absent (old files)';
  if (files.every(([key, bytes]) => fresh.data.get(key)?.equals(bytes) === true)) return 'absent (new files)';
  return 'mixed';
}
