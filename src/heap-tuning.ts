/**
 * How the run's V8 heaps grow (process-wide: the worker threads share the setting). Each heap here
 * holds little (the join's columns, batches and blocks are ArrayBuffers), but every ArrayBuffer
 * allocated counts towards the heap's next collection, so with V8's default growth a run did a
 * full mark-compact every 15–30 MiB of batches: about 60 on the main thread and 55 on each worker
 * for the 2M-prediction day, ~12 % of the run's CPU (`perf`, `--trace-incremental-marking`).
 * Letting a heap grow to 4× its live size before the next one cuts the 2M final day's wall time by
 * about 12 % with the workers and 14 % with `--workers 0` (README, Performance), for ~35 MiB more
 * peak RSS with the workers and ~45 MiB less without.
 */
import { setFlagsFromString } from 'node:v8';

/** Heap growth factor 1 + HEAP_GROWING_PERCENT / 100 (V8's default adapts it between 1.1 and 4). */
export const HEAP_GROWING_PERCENT = 300;

/** Applies the setting; call once at start, before the worker pool exists. */
export function tuneHeap(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
