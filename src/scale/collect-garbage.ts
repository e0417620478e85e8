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

let gc: ((options?: { type: 'major' | 'minor' }) => void) | undefined;

function exposed(): (options?: { type: 'major' | 'minor' }) => void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as (options?: { type: 'major' | 'minor' }) => void;
  }
  return gc;
}

/** Runs a full, synchronous garbage collection. */
export function collectGarbage(): void {
  exposed()();
}

/**
 * Frees the ArrayBuffers of short-lived objects every `everyBytes` of them (a young-generation
 * collection, well under a millisecond with a small young heap). A thread that receives columnar
 * batches and sends them on allocates few JS objects, so V8 collects its young generation rarely,
 * and the batches' buffers, dead long ago, wait for the external-memory trigger of a full
 * collection: tens of MiB per thread. Measured on the kit's 2M day (README "Performance").
 */
export class BufferChurn {
  private bytes = 0;

  constructor(private readonly everyBytes: number) {}

  /** Counts `bytes` more of buffers that die soon; collects once they add up to everyBytes. */
  add(bytes: number): void {
    this.bytes += bytes;
    if (this.bytes < this.everyBytes) return;
    this.bytes = 0;
    exposed()({ type: 'minor' });
  }
}
