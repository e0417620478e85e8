/**
 * The ObjectStore façade (storage/object-store.ts) over an in-memory backend that keeps the raw
 * contract only (unsorted listings, no ETag checks, no emulation): every shared rule must come from
 * the façade, so a third backend gets them for free. The two real backends run the same rules in
 * test/integ/storage.integ.test.ts.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/errors.js';
import { type BackendRetry, type ConditionalPutOutcome, type GetResult, type ListEntry, type PartialWrite, PartialWritesRefused, type StoreBackend } from '../../src/storage/backend.js';
import { LayeredObjectStore } from '../../src/storage/object-store.js';
import { READ_SMALL_LIMIT_BYTES } from '../../src/storage/store-rules.js';
import type { ObjectInfo, StoreCapabilities, WriteCondition, WriteResult } from '../../src/storage/types.js';

/** Objects in a Map, listed in reverse insertion order; every call is recorded by name. */
class MemoryBackend implements StoreBackend {
  readonly uri = 'mem://root';
  readonly deleteBatchSize = 2;
  readonly calls: string[] = [];
  readonly objects = new Map<string, { bytes: Buffer; etag: string; kind: ListEntry['kind'] }>();
  partial: PartialWrite[] = [];
  /** Answers of the next putConditional calls, in order; a write when none is left. */
  putAnswers: Array<'refused-after-retry' | 'conflict'> = [];
  /** Size the next get announces instead of the real one. */
  announcedLength: number | undefined;
  private version = 0;

  readonly capabilities: StoreCapabilities;
  readonly partialUnlisted = 'mem lists no partial writes';
  /** When set, listPartial refuses with this reason after yielding the first write (a store that declared the listing wrongly). */
  refusePartial: string | undefined;

  constructor(
    declared: Partial<StoreCapabilities> = {},
    readonly retry?: BackendRetry,
  ) {
    this.capabilities = { conditionalWrites: false, partialWriteListing: true, ...declared };
  }

  uriOf(key: string): string {
    return `${this.uri}/${key}`;
  }

  set(key: string, text: string, kind: ListEntry['kind'] = 'object'): string {
    const etag = `e${++this.version}`;
    this.objects.set(key, { bytes: Buffer.from(text), etag, kind });
    return etag;
  }

  async *listPages(prefix: string, operation: string, pageSize = 3): AsyncGenerator<ListEntry[]> {
    this.calls.push(`list:${operation}`);
    const entries = [...this.objects].filter(([key]) => key.startsWith(prefix)).reverse();
    for (let i = 0; i < entries.length; i += pageSize) {
      yield entries.slice(i, i + pageSize).map(([key, o]) => ({ kind: o.kind, key, size: o.bytes.length, etag: o.etag }));
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    this.calls.push(`head:${key}`);
    const o = this.objects.get(key);
    return o === undefined ? undefined : { key, size: o.bytes.length, etag: o.etag };
  }

  async get(key: string, start: number | undefined, end: number | undefined): Promise<GetResult> {
    this.calls.push(`get:${key}`);
    const o = this.objects.get(key);
    if (o === undefined) throw new NotFoundError(`${this.uriOf(key)} does not exist`, { key });
    const bytes = o.bytes.subarray(start ?? 0, end === undefined ? undefined : end + 1);
    return { body: Readable.from([bytes]), length: this.announcedLength ?? bytes.length, etag: o.etag, size: o.bytes.length };
  }

  async put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array): Promise<WriteResult> {
    this.calls.push(`put:${key}`);
    const chunks: Uint8Array[] = body instanceof Uint8Array ? [body] : [];
    if (!(body instanceof Uint8Array)) for await (const chunk of body) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString();
    return { key, size: text.length, etag: this.set(key, text) };
  }

  async putConditional(key: string, body: Uint8Array, _condition: WriteCondition, attempt: number): Promise<ConditionalPutOutcome> {
    this.calls.push(`putConditional:${key}:${attempt}`);
    const answer = this.putAnswers.shift();
    if (answer === 'refused-after-retry') return { refused: true, afterRetry: true };
    if (answer === 'conflict') return { conflict: new Error('409 ConditionalRequestConflict') };
    return { written: { key, size: body.byteLength, etag: this.set(key, Buffer.from(body).toString()) } };
  }

  async rename(sourceKey: string, targetKey: string): Promise<void> {
    this.calls.push(`rename:${sourceKey}`);
    this.objects.set(targetKey, this.objects.get(sourceKey)!);
    this.objects.delete(sourceKey);
  }

  async deleteBatch(keys: readonly string[]): Promise<void> {
    this.calls.push(`delete:${keys.join(',')}`);
    for (const key of keys) this.objects.delete(key);
  }

  async *listPartial(prefix: string): AsyncGenerator<PartialWrite> {
    this.calls.push(`listPartial:${prefix}`);
    for (const write of this.partial.filter((w) => w.key.startsWith(prefix))) {
      yield write;
      if (this.refusePartial !== undefined) throw new PartialWritesRefused(this.refusePartial);
    }
  }

  async abortPartial(write: PartialWrite): Promise<boolean> {
    this.calls.push(`abort:${write.key}`);
    return true;
  }
}

const noWait: BackendRetry = { maxAttempts: 3, idleTimeoutMs: 1000, delayMs: () => 0, callName: (op) => `MEM ${op}`, redact: (m) => m };

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe('the ObjectStore façade over any backend', () => {
  it('lists objects only, in UTF-8 byte order, whatever order the backend gives', async () => {
    const backend = new MemoryBackend();
    for (const key of ['b/2.avro', 'a/\u{1F600}.avro', 'a/\uFFFD.avro', 'a/1.avro']) backend.set(key, 'x');
    backend.set('a/', '', 'marker');
    backend.set('a/sub/', '', 'directory');
    const store = new LayeredObjectStore(backend);
    expect((await store.list('')).map((o) => o.key)).toEqual(['a/1.avro', 'a/\uFFFD.avro', 'a/\u{1F600}.avro', 'b/2.avro']);
    expect(await store.hasAny('a/sub/')).toBe(false);
    expect(await store.hasAny('b')).toBe(true);
  });

  it('refuses bad keys, ranges and folder prefixes before any backend call', async () => {
    const backend = new MemoryBackend();
    const store = new LayeredObjectStore(backend);
    await expect(store.read('../escape.avro')).rejects.toMatchObject({ code: 'E_INTERNAL' });
    await expect(store.read('a.avro', { start: 5, end: 2 })).rejects.toMatchObject({ code: 'E_INTERNAL' });
    await expect(store.deleteUnder('stage=final/dt=2026-03-0')).rejects.toMatchObject({ code: 'E_INTERNAL' });
    await expect(store.listFolder('')).rejects.toMatchObject({ code: 'E_INTERNAL' });
    expect(backend.calls).toEqual([]);
  });

  it('pins reads to the listed ETag and keeps ranges inside the object', async () => {
    const backend = new MemoryBackend();
    const etag = backend.set('a.avro', 'hello');
    const store = new LayeredObjectStore(backend);
    expect(await text(await store.read('a.avro', { start: 1, end: 3, ifMatch: etag }))).toBe('ell');
    backend.set('a.avro', 'HELLO');
    await expect(store.read('a.avro', { ifMatch: etag })).rejects.toMatchObject({ code: 'E_CONCURRENT_CHANGE', context: { uri: 'mem://root/a.avro', expected: etag } });
    await expect(store.read('a.avro', { start: 5 })).rejects.toMatchObject({ code: 'E_STORAGE', context: { offset: 5, size: 5 } });
  });

  it('reads small objects whole, absent ones as undefined, and refuses one announced past the limit', async () => {
    const backend = new MemoryBackend();
    backend.set('_SUCCESS', '{}');
    const store = new LayeredObjectStore(backend);
    expect((await store.readSmall('_SUCCESS'))?.toString()).toBe('{}');
    expect(await store.readSmall('missing')).toBeUndefined();
    backend.announcedLength = READ_SMALL_LIMIT_BYTES + 1;
    await expect(store.readSmall('_SUCCESS')).rejects.toMatchObject({ code: 'E_STORAGE', context: { size: READ_SMALL_LIMIT_BYTES + 1 } });
  });

  it('emulates a condition the store does not enforce with a HEAD before and after; sends the PUT alone where it does', async () => {
    const emulating = new MemoryBackend();
    const created = await new LayeredObjectStore(emulating).writeConditional('lease', Buffer.from('a'), { ifNoneMatch: '*' });
    expect(created).toMatchObject({ key: 'lease', size: 1 });
    expect(emulating.calls).toEqual(['head:lease', 'putConditional:lease:1', 'head:lease']);
    // A condition that already fails costs no write.
    expect(await new LayeredObjectStore(emulating).writeConditional('lease', Buffer.from('b'), { ifNoneMatch: '*' })).toBeUndefined();
    expect(emulating.calls.filter((c) => c.startsWith('putConditional'))).toHaveLength(1);

    const enforcing = new MemoryBackend({ conditionalWrites: true });
    await new LayeredObjectStore(enforcing).writeConditional('lease', Buffer.from('a'), { ifNoneMatch: '*' });
    expect(enforcing.calls).toEqual(['putConditional:lease:1']);
  });

  it('retries conflicts within the attempt budget and recognises its own write behind a refusal after a retry', async () => {
    const backend = new MemoryBackend({ conditionalWrites: true }, noWait);
    const store = new LayeredObjectStore(backend);
    backend.putAnswers = ['conflict', 'conflict'];
    expect(await store.writeConditional('lease', Buffer.from('a'), { ifNoneMatch: '*' })).toMatchObject({ key: 'lease' });
    expect(backend.calls).toEqual(['putConditional:lease:1', 'putConditional:lease:2', 'putConditional:lease:3']);
    backend.putAnswers = ['conflict', 'conflict', 'conflict'];
    await expect(store.writeConditional('other', Buffer.from('a'), { ifNoneMatch: '*' })).rejects.toThrow('409');
    // The refusal answers our own earlier attempt: the object holds exactly our bytes.
    backend.putAnswers = ['refused-after-retry'];
    expect(await store.writeConditional('lease', Buffer.from('a'), { ifNoneMatch: '*' })).toMatchObject({ key: 'lease', size: 1 });
    backend.putAnswers = ['refused-after-retry'];
    expect(await store.writeConditional('lease', Buffer.from('z'), { ifNoneMatch: '*' })).toBeUndefined();
  });

  it('lists a folder one level down, folders of partial writes included, and deletes it partial writes first, directories last', async () => {
    const backend = new MemoryBackend();
    backend.set('s/_lease.json', '{}');
    backend.set('s/run-1/p.avro', 'x');
    backend.set('s/run-1/q.avro', 'x');
    backend.set('s/run-1/', '', 'directory');
    backend.set('s/run-1/deep/', '', 'directory');
    backend.set('s/run-1/marker/', '', 'marker');
    backend.partial = [
      { key: 's/run-2/part.avro', id: 'u1', live: false, deletableByKey: false },
      { key: 's/.tmp-dead', id: 's/.tmp-dead', live: false, deletableByKey: true },
      { key: 's/.tmp-mine', id: 's/.tmp-mine', live: true, deletableByKey: true },
      { key: 's/upload.avro', id: 'u2', live: false, deletableByKey: false },
    ];
    const store = new LayeredObjectStore(backend);
    expect(await store.listFolder('s/')).toEqual({ folders: ['s/run-1/', 's/run-2/'], objects: ['s/_lease.json'], partial: ['s/.tmp-dead'] });
    backend.calls.length = 0;
    expect(await store.deleteUnder('s/run-1/')).toEqual({ objects: 3, partial: 0 });
    expect(backend.calls.filter((c) => c.startsWith('delete:')).at(-1)).toBe('delete:s/run-1/deep/,s/run-1/');
    expect([...backend.objects.keys()]).toEqual(['s/_lease.json']);
    expect(await store.deleteUnder('s/')).toEqual({ objects: 1, partial: 4 });
    expect(backend.calls.slice(-6, -2)).toEqual(['abort:s/run-2/part.avro', 'abort:s/.tmp-dead', 'abort:s/.tmp-mine', 'abort:s/upload.avro']);
  });

  it('asks for partial writes only where the store declares their listing, and says why not otherwise', async () => {
    const undeclared = new MemoryBackend({ partialWriteListing: false });
    undeclared.set('s/run-1/p.avro', 'x');
    undeclared.partial = [{ key: 's/run-1/part.avro', id: 'u1', live: false, deletableByKey: false }];
    const store = new LayeredObjectStore(undeclared);
    expect(await store.listFolder('s/')).toEqual({ folders: ['s/run-1/'], objects: [] });
    expect(await store.deleteUnder('s/run-1/')).toEqual({ objects: 1, partial: 0, partialUnlisted: 'mem lists no partial writes' });
    expect(undeclared.calls.filter((c) => c.startsWith('listPartial') || c.startsWith('abort'))).toEqual([]);
  });

  it('deletes the objects when a store that declared the listing refuses it, and reports the refusal each time', async () => {
    const backend = new MemoryBackend();
    backend.refusePartial = 'ListMultipartUploads answered AccessDenied (HTTP 403)';
    const store = new LayeredObjectStore(backend);
    for (const run of ['run-1', 'run-2']) {
      backend.set(`s/${run}/p.avro`, 'x');
      backend.partial = [
        { key: `s/${run}/a.avro`, id: 'u1', live: false, deletableByKey: false },
        { key: `s/${run}/b.avro`, id: 'u2', live: false, deletableByKey: false },
      ];
      // Not remembered: every call asks again, as the declaration says it may.
      expect(await store.deleteUnder(`s/${run}/`)).toEqual({ objects: 1, partial: 1, partialUnlisted: backend.refusePartial });
    }
    expect(backend.calls.filter((c) => c.startsWith('listPartial'))).toEqual(['listPartial:s/run-1/', 'listPartial:s/run-2/']);
    expect([...backend.objects.keys()]).toEqual([]);
  });
});
