/**
 * Bounded concurrency with the failure rule of lib-storage's Upload: on the first failure no new
 * task starts, every running task is waited for, then the first error is rethrown — no worker is
 * left running behind a rejected promise, and no error is swallowed.
 */
import pLimit from 'p-limit';

/** Marks tasks that never started because an earlier one failed. */
class Cancelled extends Error {}

/** Runs `task` over `items` with at most `concurrency` at once; results in item order. */
export async function mapBounded<T, R>(items: readonly T[], concurrency: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const limit = pLimit(Math.max(1, concurrency));
  let firstError: { error: unknown } | undefined;
  const settled = await Promise.allSettled(
    items.map((item, index) =>
      limit(async () => {
        if (firstError !== undefined) throw new Cancelled();
        try {
          return await task(item, index);
        } catch (error) {
          firstError ??= { error };
          throw error;
        }
      }),
    ),
  );
  if (firstError !== undefined) throw firstError.error;
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<R>).value);
}
