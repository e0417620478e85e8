/**
 * Reads objects strictly in the given order (SPEC §3: key byte order decides "first" and "last")
 * while the next `readAhead` requests are already open, so store latency overlaps decoding. Each
 * GET is pinned to the listed ETag, so an object rewritten since the listing fails the run
 * instead of being silently mixed in.
 */
import type { Readable } from 'node:stream';
import type { Type } from 'avsc';
import { type DecodeLimits, decodeContainer } from '../avro/container-reader.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';

/** Callbacks for progress accounting. */
export interface ReadHooks {
  onObjectDone?: (info: ObjectInfo) => void;
  /** Bytes consumed since the previous call, across objects. */
  onBytes?: (delta: number) => void;
  /** Decoding limits (defaults where unset). */
  limits?: Partial<DecodeLimits>;
}

/** One decoded block of one object. */
export interface RecordBlock<T> {
  object: ObjectInfo;
  records: T[];
}

/** Streams the records of `objects` in order, one array per Avro block. */
export async function* readInOrder<T>(store: ObjectStore, objects: readonly ObjectInfo[], readerType: Type, readAhead: number, hooks: ReadHooks = {}): AsyncGenerator<RecordBlock<T>> {
  const opened: Array<Promise<Readable>> = [];
  const open = (index: number): void => {
    const info = objects[index]!;
    const pending = store.read(info.key, { ifMatch: info.etag }).then((stream) => {
      // Until it is consumed, a pre-opened stream's error is kept by the stream itself and
      // rethrown by its iterator; this listener only stops Node from treating it as unhandled.
      stream.on('error', () => undefined);
      return stream;
    });
    pending.catch(() => undefined);
    opened.push(pending);
  };
  let next = 0;
  const fill = (): void => {
    while (next < objects.length && opened.length < Math.max(1, readAhead)) open(next++);
  };
  try {
    fill();
    for (let i = 0; i < objects.length; i++) {
      const info = objects[i]!;
      const stream = await opened.shift()!;
      fill();
      let consumed = 0;
      try {
        const blocks = decodeContainer(stream, {
          uri: store.uriOf(info.key),
          readerType,
          expectedBytes: info.size,
          limits: hooks.limits ?? {},
          onProgress: (bytes) => {
            hooks.onBytes?.(bytes - consumed);
            consumed = bytes;
          },
        });
        for await (const records of blocks) yield { object: info, records: records as T[] };
      } finally {
        stream.destroy();
      }
      hooks.onObjectDone?.(info);
    }
  } finally {
    // On failure or early exit, close what was opened ahead.
    for (const pending of opened) void pending.then((stream) => stream.destroy(), () => undefined);
  }
}
