/**
 * The order of a backfill's alerts (SPEC §8): a day's alerts are computed only once every earlier
 * day of the range that its baseline needs is committed, so the alerts do not depend on
 * `--concurrency`. Days still run their joins in parallel; only the alert step waits. Days start in
 * range order (one queue, FIFO), and a day waits only on earlier days, so the waits cannot cycle.
 */
import { addDays } from '../calendar.js';
import type { Stage } from '../join/records.js';

/** A gate over the days of one backfill. */
export interface BaselineGate {
  /** Resolves once the range's days in [date − baselineDays, date) have finished (committed, failed or not ready). */
  ready(date: string): Promise<void>;
  /** Marks a day finished, whatever its outcome. */
  finished(date: string): void;
}

/**
 * The gate of a backfill. Only a final backfill writes the baselines it reads (a baseline is made of
 * finals), so a preliminary backfill's days wait on nothing.
 */
export function baselineGate(dates: readonly string[], stage: Stage, baselineDays: number): BaselineGate {
  const done = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  for (const date of dates) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    done.set(date, { promise, resolve });
  }
  return {
    async ready(date) {
      if (stage !== 'final') return;
      const waits: Promise<void>[] = [];
      for (let back = 1; back <= baselineDays; back++) {
        const earlier = done.get(addDays(date, -back));
        if (earlier !== undefined) waits.push(earlier.promise);
      }
      await Promise.all(waits);
    },
    finished(date) {
      done.get(date)?.resolve();
    },
  };
}
