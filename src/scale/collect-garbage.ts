/**
 * A full garbage collection between two buckets of a spilled day. A bucket's label index and join
 * hold their columns in ArrayBuffers, outside the JS heap; V8 frees those only at a mark-compact,
 * which it schedules by heap growth, not by how much a finished bucket left behind. Measured on the
 * kit's 2M day at `--memory-budget 256MiB` (README "Memory budget and spill"): without it, the
 * second bucket's tables were allocated while the first bucket's were still held, and peak RSS grew
 * by a whole bucket per bucket. `--expose-gc` is set at run time (v8.setFlagsFromString, before the
 * first call) so the job needs no node flag; the collection itself takes tens of milliseconds
 * once a bucket's tables are garbage.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

/** Runs a full, synchronous garbage collection. */
export function collectGarbage(): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
