/**
 * Stream plumbing shared by the stores: a body stream whose errors carry our codes and context, so a
 * reader several layers up sees E_STORAGE with the object's URI rather than a bare `ECONNRESET`.
 */
import { Readable, finished } from 'node:stream';

/** Read-ahead of the wrapper, in bytes; the source keeps its own buffer, so memory per reader stays small. */
const WRAPPER_HIGH_WATER_MARK = 256 * 1024;

/**
 * A byte stream with the same chunks as `source`, which fails with `mapError(e)` when `source`
 * fails or closes early. Backpressure passes through (the source is paused while the wrapper is
 * full); destroying the wrapper destroys the source, which releases its socket or file handle.
 */
export function mapStreamErrors(source: Readable, mapError: (error: unknown) => Error): Readable {
  const wrapper = new Readable({
    highWaterMark: WRAPPER_HIGH_WATER_MARK,
    read() {
      source.resume();
    },
    destroy(error, callback) {
      source.destroy();
      callback(error);
    },
  });
  // Paused before the 'data' listener is attached, so attaching it does not start the flow.
  source.pause();
  source.on('data', (chunk: Buffer) => {
    if (!wrapper.push(chunk)) source.pause();
  });
  finished(source, (error) => {
    if (wrapper.destroyed) return;
    if (error) wrapper.destroy(mapError(error));
    else wrapper.push(null);
  });
  return wrapper;
}
