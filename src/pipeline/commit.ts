/**
 * The data-file steps of a day's commit (SPEC §1): whether a committed result is still whole,
 * removing a partition's old data files, and moving staged files into place under the lease.
 */
import type { AvroFilesWriter } from '../dataset/avro-writer.js';
import { SUCCESS_FILE } from '../dataset/layout.js';
import { type Manifest, type ManifestOutput, parseManifest } from '../dataset/manifest.js';
import { mapBounded } from '../concurrency.js';
import type { ObjectStore } from '../storage/types.js';
import type { RunLease } from './lease.js';

/** Whether every output a manifest lists still exists with its size (a deleted part means recompute). */
export async function outputsIntact(stores: { curated: ObjectStore; metrics: ObjectStore }, curated: Manifest, metrics: Manifest): Promise<boolean> {
  const checks = [
    ...curated.outputs.map((o) => ({ store: stores.curated, o })),
    ...metrics.outputs.map((o) => ({ store: stores.metrics, o })),
  ];
  const found = await mapBounded(checks, 16, async ({ store, o }) => (await store.head(o.key))?.size === o.size);
  return found.every(Boolean);
}

/** Moves a writer's staged files into place, recording each moved key for cleanup after a failure. */
export async function promote(store: ObjectStore, writer: Pick<AvroFilesWriter, 'stagedKey'>, outputs: readonly ManifestOutput[], moved: string[], lease: RunLease): Promise<void> {
  for (const output of outputs) {
    await lease.ensureHeld();
    await store.move(writer.stagedKey(output.key), output.key);
    moved.push(output.key);
  }
}

/** Deletes every data file of a partition (its _SUCCESS is already gone); returns how many. */
export async function removeData(store: ObjectStore, partition: string): Promise<number> {
  const data = (await store.list(partition)).map((o) => o.key).filter((key) => !key.endsWith(SUCCESS_FILE));
  if (data.length > 0) await store.delete(data);
  return data.length;
}

/** A partition's manifest, or undefined when it has none (or not one of ours). */
export async function readManifest(store: ObjectStore, key: string): Promise<Manifest | undefined> {
  const bytes = await store.readSmall(key);
  return bytes === undefined ? undefined : parseManifest(bytes);
}

/** Both manifests of the committed result, when it has this fingerprint and every file it lists is still there. */
export async function committedWith(stores: { curated: ObjectStore; metrics: ObjectStore }, successKey: string, fingerprint: string): Promise<{ curated: Manifest; metrics: Manifest } | undefined> {
  const [curated, metrics] = await Promise.all([readManifest(stores.curated, successKey), readManifest(stores.metrics, successKey)]);
  if (curated?.fingerprint !== fingerprint || metrics?.fingerprint !== fingerprint || !(await outputsIntact(stores, curated, metrics))) return undefined;
  return { curated, metrics };
}
