/**
 * The S3 store under a flaky store (issue 5): every request goes through the fault-injecting proxy
 * to s3rver, which answers 500/503, resets or truncates bodies, stalls them, hangs before the
 * headers, or drops responses after the server applied the request. Below the attempt budget each
 * operation must give exactly the bytes written; beyond it, E_STORAGE naming the S3 call, the key
 * and the attempts. Objects replaced or deleted under a reader give E_CONCURRENT_CHANGE.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { ModelMetricsError } from '../../src/errors.js';
import { destroyStores, openStore } from '../../src/storage/index.js';
import { S3ObjectStore } from '../../src/storage/s3.js';
import type { ObjectStore, S3Settings } from '../../src/storage/types.js';
import { FaultProxy, faults, type Fault } from '../helpers/fault-proxy.js';
import { S3RVER_CREDENTIALS, createTestBucket, createTestS3Client } from '../helpers/s3rver.js';

const MiB = 1024 * 1024;
/** Attempts per operation in these tests: three faults in a row are survived, four are not. */
const MAX_ATTEMPTS = 4;
/**
 * Short enough that stall scenarios take about a second, long enough that s3rver on a loaded
 * 2-core machine never looks idle (a spurious timeout would only cost one retry anyway).
 */
const IDLE_TIMEOUT_MS = 1500;
const SETTINGS_BASE = { forcePathStyle: true, region: 'us-east-1', maxAttempts: MAX_ATTEMPTS, idleTimeoutMs: IDLE_TIMEOUT_MS, retryBaseDelayMs: 1 } satisfies S3Settings;

let proxy: FaultProxy;
let bucket: string;
let clients: Map<string, S3Client>;
/** The store under test: through the proxy. */
let store: ObjectStore;
/** The same bucket straight on s3rver, to prepare and inspect objects without faults. */
let direct: ObjectStore;
let directClient: S3Client;

beforeAll(async () => {
  const endpoint = inject('s3Endpoint');
  bucket = await createTestBucket(endpoint);
  proxy = await FaultProxy.start(endpoint);
  vi.stubEnv('AWS_ACCESS_KEY_ID', S3RVER_CREDENTIALS.accessKeyId);
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', S3RVER_CREDENTIALS.secretAccessKey);
  clients = new Map();
  store = openStore(`s3://${bucket}/root`, { ...SETTINGS_BASE, endpoint: proxy.endpoint, uploadPartSize: 5 * MiB }, '--root', clients);
  directClient = createTestS3Client(endpoint);
  direct = new S3ObjectStore(directClient, bucket, 'root');
});

afterAll(async () => {
  destroyStores(clients);
  directClient.destroy();
  vi.unstubAllEnvs();
  await proxy.close();
});

beforeEach(() => {
  proxy.reset();
});

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function digest(bytes: Buffer): { size: number; sha256: string } {
  return { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

async function failureOf(promise: Promise<unknown>): Promise<ModelMetricsError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof ModelMetricsError)) throw new Error(`expected a ModelMetricsError, got ${String(error)}`, { cause: error });
  return error;
}

/**
 * How many times a scenario injects its fault: as many as the budget survives, but a fault that
 * costs an idle timeout (hang, stall) once, to keep the suite fast; the budget is spent on the others.
 */
function timesFor(fault: Fault): number {
  return fault.kind === 'hang' || fault.kind === 'stall' ? 1 : MAX_ATTEMPTS - 1;
}

/** A path pattern for one key under the store root. */
function keyPath(key: string): RegExp {
  return new RegExp(`^/${bucket}/root/${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

describe('GetObject bodies survive resets, truncation and stalls', () => {
  const body = randomBytes(3 * MiB + 12_345);
  beforeAll(async () => {
    await direct.write('get/object.bin', body);
  });

  const bodyFaults: Array<[string, Fault]> = [
    ['reset mid-body', faults.reset(700_000)],
    ['truncated body', faults.truncate(1_000_001)],
    ['stalled body', faults.stall(123_456)],
    ['reset before the first byte', faults.reset(0)],
  ];

  it.each(bodyFaults)('%s below the budget: the same bytes, resumed with ranged GETs', async (_name, fault) => {
    const times = timesFor(fault);
    proxy.inject({ method: 'GET', path: keyPath('get/object.bin'), fault, times });
    const read = await readAll(await store.read('get/object.bin'));
    expect(digest(read)).toEqual(digest(body));
    expect(proxy.count(fault.kind)).toBe(times);
    const gets = proxy.requests.filter((request) => request.method === 'GET');
    expect(gets).toHaveLength(times + 1);
    // Resumes continue from the next byte: each later GET asks for a range starting past the previous one.
    const starts = gets.slice(1).map((request) => Number(/^bytes=(\d+)-$/.exec(request.range ?? '')?.[1] ?? 0));
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
  });

  it('resumes a ranged read within its range', async () => {
    // Truncation (FIN) delivers every byte sent, so the resume points are exact; a reset (RST) may discard some.
    proxy.inject({ method: 'GET', path: keyPath('get/object.bin'), fault: faults.truncate(50_000), times: 2 });
    const read = await readAll(await store.read('get/object.bin', { start: 1000, end: 2 * MiB }));
    expect(digest(read)).toEqual(digest(body.subarray(1000, 2 * MiB + 1)));
    expect(proxy.requests.map((request) => request.range)).toEqual([`bytes=1000-${2 * MiB}`, `bytes=51000-${2 * MiB}`, `bytes=101000-${2 * MiB}`]);
  });

  it.each([
    ['500 InternalError', faults.internalError],
    ['503 SlowDown', faults.slowDown],
    ['a response dropped after the server answered', faults.drop],
    ['a request hanging before its headers', faults.hang],
  ] as Array<[string, Fault]>)('retries %s before the body', async (_name, fault) => {
    proxy.inject({ method: 'GET', path: keyPath('get/object.bin'), fault, times: timesFor(fault) });
    expect(digest(await readAll(await store.read('get/object.bin')))).toEqual(digest(body));
    expect(proxy.count()).toBe(timesFor(fault));
  });

  it('gives up after the budget with E_STORAGE naming GetObject, the key and the attempts', async () => {
    proxy.inject({ method: 'GET', path: keyPath('get/object.bin'), fault: faults.reset(10_000), times: Infinity });
    const error = await failureOf(readAll(await store.read('get/object.bin')));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain('GetObject');
    expect(error.message).toContain(`s3://${bucket}/root/get/object.bin`);
    expect(error.message).toContain(`after ${MAX_ATTEMPTS} attempts`);
    expect(error.context).toMatchObject({ operation: 'read', key: 'get/object.bin', attempts: MAX_ATTEMPTS });
    expect(error.cause).toBeDefined();
    expect(proxy.count('reset')).toBe(MAX_ATTEMPTS);
  });

  it('gives up on a store that keeps answering 503 SlowDown, naming the attempts', async () => {
    proxy.inject({ method: 'GET', path: keyPath('get/object.bin'), fault: faults.slowDown, times: Infinity });
    const error = await failureOf(store.read('get/object.bin'));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toMatch(new RegExp(`GetObject of s3://${bucket}/root/get/object.bin failed after ${MAX_ATTEMPTS} attempts: SlowDown \\(HTTP 503\\)`));
    expect(proxy.count()).toBe(MAX_ATTEMPTS);
  });
});

/** Faults every request kind must survive below the budget; body faults apply to the bodies S3 sends back. */
const requestFaults: Array<[string, Fault]> = [
  ['500 InternalError', faults.internalError],
  ['503 SlowDown', faults.slowDown],
  ['a response dropped after the server applied the request', faults.drop],
  ['a request hanging before its headers', faults.hang],
];
const responseBodyFaults: Array<[string, Fault]> = [
  ['a reset mid-body', faults.reset(40)],
  ['a truncated body', faults.truncate(40)],
  ['a stalled body', faults.stall(40)],
];

describe('writes survive faults', () => {
  it.each(requestFaults)('PutObject through %s', async (_name, fault) => {
    const body = randomBytes(200_000);
    proxy.inject({ method: 'PUT', path: keyPath('put/one.bin'), fault, times: timesFor(fault) });
    const written = await store.write('put/one.bin', body);
    expect(proxy.count()).toBe(timesFor(fault));
    expect(written.size).toBe(body.length);
    expect(digest((await direct.readSmall('put/one.bin'))!)).toEqual(digest(body));
    expect((await direct.head('put/one.bin'))?.etag).toBe(written.etag);
  });

  it.each([...requestFaults, ...responseBodyFaults])('a multipart upload through %s on a part and on the completion', async (_name, fault) => {
    const body = randomBytes(11 * MiB);
    proxy.inject(
      { method: 'PUT', path: keyPath('put/multi.bin'), query: 'partNumber', skip: 1, fault, times: fault.kind === 'hang' ? 1 : 2 },
      { method: 'POST', path: keyPath('put/multi.bin'), query: 'uploadId', fault },
    );
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (let offset = 0; offset < body.length; offset += 777_777) yield body.subarray(offset, offset + 777_777);
    }
    const written = await store.write('put/multi.bin', chunks());
    expect(proxy.count()).toBe(fault.kind === 'hang' ? 2 : 3);
    expect(written.size).toBe(body.length);
    expect(digest((await direct.readSmall('put/multi.bin'))!)).toEqual(digest(body));
  });

  it('does not take another writer\'s object of the same size for its own after a failed completion', async () => {
    const body = randomBytes(11 * MiB);
    let theirs: Promise<unknown> | undefined;
    proxy.inject({
      method: 'POST',
      path: keyPath('put/other.bin'),
      query: 'uploadId',
      // Someone else's object of the same size lands while our completion keeps failing.
      before: () => (theirs ??= direct.write('put/other.bin', randomBytes(body.length))),
      fault: faults.internalError,
      times: Infinity,
    });
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield body;
    }
    const error = await failureOf(store.write('put/other.bin', chunks()));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain(`s3://${bucket}/root/put/other.bin failed after ${MAX_ATTEMPTS} attempts`);
    expect(digest((await direct.readSmall('put/other.bin'))!)).not.toEqual(digest(body));
  });

  it('gives up on a PutObject after the budget, naming the call, key and attempts', async () => {
    proxy.inject({ method: 'PUT', path: keyPath('put/never.bin'), fault: faults.internalError, times: Infinity });
    const error = await failureOf(store.write('put/never.bin', randomBytes(1000)));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain(`s3://${bucket}/root/put/never.bin failed after ${MAX_ATTEMPTS} attempts`);
    expect(error.message).toContain('PutObject');
    expect(proxy.count()).toBe(MAX_ATTEMPTS);
  });
});

describe('copy, delete and list survive faults', () => {
  it.each([...requestFaults, ...responseBodyFaults])('CopyObject (move) through %s', async (_name, fault) => {
    const body = randomBytes(50_000);
    await direct.write('copy/source.bin', body);
    proxy.inject({ method: 'PUT', path: keyPath('copy/target.bin'), header: 'x-amz-copy-source', fault, times: timesFor(fault) });
    await store.move('copy/source.bin', 'copy/target.bin');
    expect(proxy.count()).toBe(timesFor(fault));
    expect(digest((await direct.readSmall('copy/target.bin'))!)).toEqual(digest(body));
    expect(await direct.head('copy/source.bin')).toBeUndefined();
  });

  it.each([...requestFaults, ...responseBodyFaults])('DeleteObjects through %s', async (_name, fault) => {
    // A third object keeps the folder: s3rver 3.7.1 deletes a batch's keys concurrently and then
    // removes emptied folders, which races (ENOENT, 500) when two keys empty the same folder.
    await direct.write('delete/keep.bin', Buffer.from('k'));
    await direct.write('delete/a.bin', Buffer.from('a'));
    await direct.write('delete/b.bin', Buffer.from('b'));
    proxy.inject({ method: 'POST', query: 'delete', fault, times: timesFor(fault) });
    await store.delete(['delete/a.bin', 'delete/b.bin']);
    expect(proxy.count()).toBe(timesFor(fault));
    expect((await direct.list('delete/')).map((info) => info.key)).toEqual(['delete/keep.bin']);
  });

  it.each([...requestFaults, ...responseBodyFaults])('ListObjectsV2 through %s', async (_name, fault) => {
    const keys = ['list/a.avro', 'list/b.avro', 'list/c/d.avro'];
    for (const key of keys) await direct.write(key, Buffer.from(key));
    const expected = await direct.list('list/');
    proxy.inject({ method: 'GET', query: 'list-type', fault, times: timesFor(fault) });
    expect(await store.list('list/')).toEqual(expected);
    expect(proxy.count()).toBe(timesFor(fault));
    expect(expected.map((info) => info.key)).toEqual(keys);
  });

  it('gives up on a listing after the budget, naming ListObjectsV2 and the prefix', async () => {
    proxy.inject({ method: 'GET', query: 'list-type', fault: faults.reset(10), times: Infinity });
    const error = await failureOf(store.list('list/'));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain(`ListObjectsV2 of s3://${bucket}/root/list/ failed after ${MAX_ATTEMPTS} attempts`);
  });
});

describe('conditional writes', () => {
  it('s3rver 3.7.1 ignores If-None-Match and If-Match on PutObject (why the store checks around the PUT)', async () => {
    await direct.write('cond/ignored.json', Buffer.from('first'));
    // A store honouring the headers answers 412 to both; s3rver applies both writes.
    await directClient.send(new PutObjectCommand({ Bucket: bucket, Key: 'root/cond/ignored.json', Body: 'second', IfNoneMatch: '*' }));
    await directClient.send(new PutObjectCommand({ Bucket: bucket, Key: 'root/cond/ignored.json', Body: 'third', IfMatch: '"0123456789abcdef0123456789abcdef"' }));
    expect((await direct.readSmall('cond/ignored.json'))?.toString()).toBe('third');
  });

  it('counts a create as ours when its response was lost and the retry got 412 for our own bytes', async () => {
    const body = Buffer.from('{"run":"ours"}');
    proxy.inject(
      { method: 'PUT', path: keyPath('cond/lost.json'), fault: faults.drop },
      { method: 'PUT', path: keyPath('cond/lost.json'), fault: faults.preconditionFailed },
    );
    const result = await store.writeConditional('cond/lost.json', body, { ifNoneMatch: '*' });
    expect(proxy.injected.map((fault) => fault.kind)).toEqual(['drop', 'status']);
    expect(result).toEqual({ key: 'cond/lost.json', size: body.length, etag: (await direct.head('cond/lost.json'))?.etag });
  });

  it('reports a lost create when the 412 after a retry answers someone else\'s bytes', async () => {
    // Our first PUT fails (500, not applied); another writer creates the object; our retry gets the
    // 412 that S3 would send.
    proxy.inject(
      { method: 'PUT', path: keyPath('cond/theirs.json'), fault: faults.internalError },
      { method: 'PUT', path: keyPath('cond/theirs.json'), before: () => direct.write('cond/theirs.json', Buffer.from('theirs')), fault: faults.preconditionFailed },
    );
    const result = await store.writeConditional('cond/theirs.json', Buffer.from('ours, longer'), { ifNoneMatch: '*' });
    expect(result).toBeUndefined();
    expect(proxy.count()).toBe(2);
    expect((await direct.readSmall('cond/theirs.json'))?.toString()).toBe('theirs');
  });

  it('retries 409 ConditionalRequestConflict and then succeeds', async () => {
    proxy.inject({ method: 'PUT', path: keyPath('cond/conflict.json'), fault: faults.conditionalConflict, times: 2 });
    const result = await store.writeConditional('cond/conflict.json', Buffer.from('x'), { ifNoneMatch: '*' });
    expect(result?.size).toBe(1);
    expect(proxy.count()).toBe(2);
  });

  it('gives up on endless 409 conflicts after the budget, naming the key and the attempts', async () => {
    proxy.inject({ method: 'PUT', path: keyPath('cond/busy.json'), fault: faults.conditionalConflict, times: Infinity });
    const error = await failureOf(store.writeConditional('cond/busy.json', Buffer.from('x'), { ifNoneMatch: '*' }));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain(`conditional PutObject of s3://${bucket}/root/cond/busy.json failed after ${MAX_ATTEMPTS} attempts`);
  });

  it('survives 503 and dropped responses on a conditional replace', async () => {
    const first = await store.writeConditional('cond/replace.json', Buffer.from('v1'), { ifNoneMatch: '*' });
    expect(first).toBeDefined();
    proxy.inject({ method: 'PUT', path: keyPath('cond/replace.json'), fault: faults.slowDown }, { method: 'PUT', path: keyPath('cond/replace.json'), fault: faults.drop });
    const second = await store.writeConditional('cond/replace.json', Buffer.from('v2'), { ifMatch: first!.etag });
    expect(second).toBeDefined();
    expect((await direct.readSmall('cond/replace.json'))?.toString()).toBe('v2');
    expect(await store.writeConditional('cond/replace.json', Buffer.from('v3'), { ifMatch: first!.etag })).toBeUndefined();
  });
});

describe('inputs that change under a reader', () => {
  const oldBody = randomBytes(2 * MiB);

  it('detects an object overwritten between listing and reading, naming the key and both ETags', async () => {
    await direct.write('change/listed.avro', oldBody);
    const [listed] = await store.list('change/listed');
    const replaced = await direct.write('change/listed.avro', randomBytes(1000));
    const error = await failureOf(store.read('change/listed.avro', { ifMatch: listed!.etag }));
    expect(error.code).toBe('E_CONCURRENT_CHANGE');
    expect(error.message).toContain(`s3://${bucket}/root/change/listed.avro`);
    expect(error.message).toContain(listed!.etag);
    expect(error.message).toContain(replaced.etag);
  });

  it('never splices two versions: an overwrite before a resume fails the read, after only old bytes', async () => {
    const written = await direct.write('change/mid.avro', oldBody);
    let replacedEtag = '';
    proxy.inject(
      { method: 'GET', path: keyPath('change/mid.avro'), withoutHeader: 'range', fault: faults.reset(300_000) },
      {
        method: 'GET',
        path: keyPath('change/mid.avro'),
        header: 'range',
        before: async () => {
          replacedEtag = (await direct.write('change/mid.avro', randomBytes(oldBody.length))).etag;
        },
        fault: faults.pass,
      },
    );
    const stream = await store.read('change/mid.avro', { ifMatch: written.etag });
    const delivered: Buffer[] = [];
    const error = await failureOf(
      (async () => {
        for await (const chunk of stream) delivered.push(chunk as Buffer);
      })(),
    );
    expect(error.code).toBe('E_CONCURRENT_CHANGE');
    expect(error.message).toContain(`s3://${bucket}/root/change/mid.avro`);
    expect(error.message).toContain(written.etag);
    expect(error.message).toContain(replacedEtag);
    // The resume asked for the rest of the old version (from the byte the client had received: a
    // reset may discard some of the 300,000 sent) and got the new one: refused. What the consumer
    // saw (less what the stream still buffered when it failed) is old bytes only.
    const ranges = proxy.requests.map((request) => request.range);
    expect(ranges).toEqual([undefined, expect.stringMatching(/^bytes=\d+-$/)]);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(ranges[1]!)![1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(300_000);
    const bytes = Buffer.concat(delivered);
    expect(bytes.length).toBeLessThanOrEqual(resumedAt);
    expect(bytes.equals(oldBody.subarray(0, bytes.length))).toBe(true);
  });

  it('reports an object deleted before a resume as a concurrent change naming the key', async () => {
    const written = await direct.write('change/deleted.avro', oldBody);
    proxy.inject(
      { method: 'GET', path: keyPath('change/deleted.avro'), withoutHeader: 'range', fault: faults.truncate(100_000) },
      { method: 'GET', path: keyPath('change/deleted.avro'), header: 'range', before: () => direct.delete(['change/deleted.avro']), fault: faults.pass },
    );
    const error = await failureOf(readAll(await store.read('change/deleted.avro', { ifMatch: written.etag })));
    expect(error.code).toBe('E_CONCURRENT_CHANGE');
    expect(error.message).toContain(`s3://${bucket}/root/change/deleted.avro was deleted while being read`);
    expect(error.context).toMatchObject({ key: 'change/deleted.avro', expected: written.etag, offset: 100_000 });
  });
});

describe('credentials in failures', () => {
  it('keeps signatures, session tokens and access keys out of messages and JSON', async () => {
    const signedUrl =
      `http://127.0.0.1/${bucket}/root/secret.avro?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request` +
      '&X-Amz-Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLESESSIONTOKEN';
    proxy.inject({ method: 'GET', fault: { kind: 'status', status: 403, code: 'AccessDenied', message: `Access Denied for ${signedUrl}` }, times: Infinity });
    const error = await failureOf(store.read('secret.avro'));
    expect(error.code).toBe('E_STORAGE');
    const exposed = `${error.message}\n${JSON.stringify(error.toJSON())}\n${JSON.stringify(error.context)}`;
    for (const secret of ['5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7', 'FQoGZXIvYXdzEXAMPLESESSIONTOKEN', 'AKIAIOSFODNN7EXAMPLE', S3RVER_CREDENTIALS.secretAccessKey + '/']) {
      expect(exposed).not.toContain(secret);
    }
    expect(error.message).toContain('X-Amz-Signature=[redacted]');
    expect(error.message).toContain(`s3://${bucket}/root/secret.avro`);
  });
});
