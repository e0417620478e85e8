/**
 * The reliability tally (issue 5): every fault, crash and hostile-input scenario of the test suite
 * records what it did here, one JSON line per scenario, and the global teardown prints the table
 * (`printReliabilityTable`). Scenarios run in several vitest workers, so the tally is a file the
 * global setup names (`inject('reliabilityLog')`) rather than memory.
 */
import fs from 'node:fs';
import { inject } from 'vitest';

/** What one scenario did. Counts are of that scenario only; the table sums them by category and kind. */
export interface ReliabilityEntry {
  /** fault: the store misbehaved; crash: the process was killed; hostile: a damaged or malicious input. */
  category: 'fault' | 'crash' | 'hostile';
  /** The kind of fault, kill point or input, e.g. "503 SlowDown", "SIGKILL after data files", "overlong varint". */
  kind: string;
  /** Faults injected, kills sent or hostile inputs tried. */
  injected: number;
  /** Runs that ended with exit 0 (or a clean, expected refusal for hostile inputs and exhausted retries). */
  completed: number;
  /** Completed runs whose outputs were byte-identical to the fault-free run (or equal to the expected answer). */
  identical: number;
  /** Runs that outlived the scenario's deadline. Must be 0. */
  hangs: number;
  /** Runs that died of an uncaught error or an exit code outside 0/1/2/3 (kills we sent excepted). Must be 0. */
  crashes: number;
  /** Runs that published a number, a file or an exit code that differs from the expected one. Must be 0. */
  wrong: number;
}

/** Appends one scenario's outcome to the run's tally file. */
export function recordReliability(entry: ReliabilityEntry): void {
  fs.appendFileSync(inject('reliabilityLog'), `${JSON.stringify(entry)}\n`);
}

/**
 * Runs `work` with a deadline: resolves with its value, or with 'hang' once `ms` pass first. The
 * caller records the hang; the work itself is abandoned (pass an AbortSignal to stop it for real).
 */
export async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T | 'hang'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'hang'>((resolve) => {
    timer = setTimeout(() => resolve('hang'), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    reliabilityLog: string;
  }
}
