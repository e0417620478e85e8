import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeContainer, readContainerHeader } from '../../src/avro/container-reader.js';
import { ContainerEncoder } from '../../src/avro/container-writer.js';
import { predictionType, schemaFingerprint } from '../../src/avro/schemas.js';
import {
  chunksOf,
  encodeFile,
  failure,
  rawBlock,
  rawHeader,
  readAll,
  readWithAvsc,
  samplePrediction,
  samplePredictions,
  varint,
  writeWithAvsc,
} from './avro-helpers.js';

const KEY = 'dt=2026-01-01/a.avro';
const predictionSchemaJson = JSON.stringify(predictionType.schema({ exportAttrs: true }));
const SYNC = Buffer.alloc(16, 7);

/** Expects a CorruptObjectError whose message names the key and the byte offset. */
async function expectCorrupt(bytes: Buffer, offset: number | undefined, detail: RegExp, chunkSize?: number): Promise<void> {
  const error = await failure(() => readAll(bytes, predictionType, { key: KEY, chunkSize }));
  expect(error.code, error.message).toBe('E_CORRUPT_OBJECT');
  expect(error.message).toContain(`"${KEY}"`);
  expect(error.message).toMatch(detail);
  expect(error.message).toContain('--on-corrupt skip');
  expect(error.context?.['key']).toBe(KEY);
  if (offset !== undefined) {
    expect(error.context?.['offset']).toBe(offset);
    expect(error.message).toContain(`at byte ${offset}`);
  }
}

describe('round trip', () => {
  const records = samplePredictions(500);

  it.each(['deflate', 'null'])('reads back what ContainerEncoder wrote (%s), block by block', async (codec) => {
    const file = encodeFile(records, { type: predictionType, codec, blockBytes: 4096 });
    expect(file.blockEnds.length).toBeGreaterThan(3);
    expect(await readAll(file.bytes, predictionType)).toEqual(records);
    const blocks: number[] = [];
    for await (const block of decodeContainer(chunksOf(file.bytes, 1000), { key: KEY, readerType: predictionType })) {
      blocks.push(block.length);
    }
    expect(blocks).toEqual(file.blockRecordCounts);
  });

  it.each(['deflate', 'null'])('writes files avsc BlockDecoder reads (%s)', async (codec) => {
    const file = encodeFile(records, { type: predictionType, codec, blockBytes: 4096 });
    expect(await readWithAvsc(file.bytes)).toEqual(records);
  });

  it.each(['deflate', 'null'])('reads files avsc BlockEncoder wrote (%s)', async (codec) => {
    const bytes = await writeWithAvsc(predictionType, records, { codec, blockSize: 2048 });
    expect(await readAll(bytes, predictionType, { chunkSize: 777 })).toEqual(records);
  });

  it('keeps timestamps as numbers and the header as written', async () => {
    const file = encodeFile(records.slice(0, 3), {
      type: predictionType,
      metadata: { 'model_metrics.stage': 'final', 'model_metrics.as_of': '2026-01-09T00:00:00Z' },
    });
    const [first] = (await readAll(file.bytes, predictionType)) as Record<string, unknown>[];
    expect(typeof first!['inference_ts']).toBe('number');
    const header = await readContainerHeader(chunksOf(file.bytes, 5), KEY);
    expect(header.codec).toBe('deflate');
    expect(header.headerBytes).toBe(file.headerBytes);
    expect(header.fingerprint).toBe(schemaFingerprint(predictionType));
    expect([...header.metadata.keys()]).toEqual([
      'avro.schema',
      'avro.codec',
      'model_metrics.as_of',
      'model_metrics.stage',
    ]);
    expect(header.metadata.get('avro.schema')!.toString()).toBe(predictionSchemaJson);
    expect(predictionSchemaJson).toContain('"logicalType":"timestamp-micros"');
    expect(predictionSchemaJson).toContain('"doc":');
  });

  it('keeps a "__proto__" map key as an own entry', async () => {
    // A computed key makes an own "__proto__" property instead of calling the prototype setter.
    const record = { ...samplePrediction(1), segment_keys: { ['__proto__']: 'x', region: 'eu' } };
    const [read] = (await readAll(encodeFile([record], { type: predictionType }).bytes, predictionType)) as {
      segment_keys: Record<string, string>;
    }[];
    expect(Object.keys(read!.segment_keys).sort()).toEqual(['__proto__', 'region']);
    expect(Object.getPrototypeOf(read!.segment_keys)).toBe(Object.prototype);
  });

  it('reports progress and stops pulling the source when the consumer stops', async () => {
    const file = encodeFile(records, { type: predictionType, blockBytes: 4096 });
    const progress: number[] = [];
    let pulled = 0;
    async function* counting(): AsyncGenerator<Uint8Array> {
      for await (const chunk of chunksOf(file.bytes, 100)) {
        pulled++;
        yield chunk;
      }
    }
    for await (const block of decodeContainer(counting(), {
      key: KEY,
      readerType: predictionType,
      onProgress: (bytes) => progress.push(bytes),
    })) {
      expect(block.length).toBeGreaterThan(0);
      break;
    }
    expect(progress).toEqual([file.headerBytes, file.blockEnds[0]]);
    expect(pulled).toBeLessThan(Math.ceil(file.bytes.length / 100));
  });
});

describe('ContainerEncoder', () => {
  const records = samplePredictions(300);

  it('is deterministic: same records and options give the same bytes', () => {
    const a = encodeFile(records, { type: predictionType, blockBytes: 2048, syncSeed: 'curated/part-00000.avro' });
    const b = encodeFile(records, { type: predictionType, blockBytes: 2048, syncSeed: 'curated/part-00000.avro' });
    expect(a.bytes.equals(b.bytes)).toBe(true);
  });

  it('derives the sync marker from the seed', async () => {
    const a = encodeFile(records, { type: predictionType, syncSeed: 'one' });
    const b = encodeFile(records, { type: predictionType, syncSeed: 'two' });
    const syncA = (await readContainerHeader(chunksOf(a.bytes), KEY)).sync;
    const syncB = (await readContainerHeader(chunksOf(b.bytes), KEY)).sync;
    expect(syncA.length).toBe(16);
    expect(syncA.equals(syncB)).toBe(false);
    expect(a.bytes.subarray(a.bytes.length - 16).equals(syncA)).toBe(true);
  });

  it('closes a block once blockBytes of records are pending, and counts records and bytes', () => {
    const encoder = new ContainerEncoder({ type: predictionType, codec: 'null', blockBytes: 1000, syncSeed: 's' });
    let out = encoder.header().length;
    let blocks = 0;
    for (const record of records) {
      const block = encoder.append(record);
      if (block !== undefined) {
        blocks++;
        out += block.length;
      }
    }
    out += encoder.finish()?.length ?? 0;
    expect(blocks).toBeGreaterThan(10);
    expect(encoder.recordCount).toBe(records.length);
    expect(encoder.bytesOut).toBe(out);
    expect(encoder.finish()).toBeUndefined();
  });

  it('grows its block buffer for records larger than the block size', async () => {
    const big = { ...samplePrediction(1), prediction_id: 'x'.repeat(100_000) };
    const file = encodeFile([big, samplePrediction(2)], { type: predictionType, blockBytes: 1024 });
    expect(await readAll(file.bytes, predictionType)).toEqual([big, samplePrediction(2)]);
  });

  it('names the field of an invalid record and keeps the block usable', async () => {
    const encoder = new ContainerEncoder({ type: predictionType, syncSeed: 's' });
    const header = encoder.header();
    expect(encoder.append(samplePrediction(0))).toBeUndefined();
    let error: (Error & { code?: string; context?: Record<string, unknown> }) | undefined;
    try {
      encoder.append({ ...samplePrediction(1), y_pred: 'high' });
    } catch (caught) {
      error = caught as typeof error;
    }
    expect(error?.code).toBe('E_INTERNAL');
    expect(error?.context?.['field']).toBe('y_pred');
    expect(error?.message).toMatch(/field "y_pred" is "high" \(string\), expected "double"/);
    encoder.append(samplePrediction(2));
    const bytes = Buffer.concat([header, encoder.finish()!]);
    expect(await readAll(bytes, predictionType)).toEqual([samplePrediction(0), samplePrediction(2)]);
  });

  it('refuses an unknown codec as a usage error and reserved metadata keys', () => {
    expect(() => new ContainerEncoder({ type: predictionType, codec: 'lz4', syncSeed: 's' })).toThrow(
      expect.objectContaining({ code: 'E_USAGE', message: expect.stringContaining('deflate, null') }),
    );
    expect(() => new ContainerEncoder({ type: predictionType, metadata: { 'avro.codec': 'x' }, syncSeed: 's' })).toThrow(
      /reserved/,
    );
  });
});

describe('header-only, empty and truncated files', () => {
  it('reads a header-only file as a valid file with 0 records', async () => {
    const file = encodeFile([], { type: predictionType });
    expect(file.bytes.length).toBe(file.headerBytes);
    const progress: number[] = [];
    let headers = 0;
    const blocks: unknown[][] = [];
    for await (const block of decodeContainer(chunksOf(file.bytes), {
      key: KEY,
      readerType: predictionType,
      onHeader: () => headers++,
      onProgress: (bytes) => progress.push(bytes),
    })) {
      blocks.push(block);
    }
    expect(blocks).toEqual([]);
    expect(headers).toBe(1);
    expect(progress).toEqual([file.headerBytes]);
  });

  it('refuses a 0-byte object', async () => {
    await expectCorrupt(Buffer.alloc(0), 0, /empty \(0 bytes\)/);
    await expect(readContainerHeader(chunksOf(Buffer.alloc(0)), KEY)).rejects.toMatchObject({ code: 'E_CORRUPT_OBJECT' });
  });

  it('refuses a file cut at any byte, except at block boundaries where the cut file is valid', async () => {
    const records = samplePredictions(12);
    const file = encodeFile(records, { type: predictionType, codec: 'deflate', blockBytes: 300 });
    expect(file.blockEnds.length).toBeGreaterThanOrEqual(3);
    const boundaries = new Map<number, number>([[file.headerBytes, 0]]);
    file.blockEnds.forEach((end, i) => boundaries.set(end, file.blockRecordCounts.slice(0, i + 1).reduce((a, b) => a + b)));
    let corrupt = 0;
    for (let cut = 0; cut < file.bytes.length; cut++) {
      const truncated = file.bytes.subarray(0, cut);
      const valid = boundaries.get(cut);
      if (valid !== undefined) {
        // Avro files have no trailer: a cut exactly after a block's sync marker is a valid, shorter file.
        expect(await readAll(truncated, predictionType, { chunkSize: 50 })).toEqual(records.slice(0, valid));
        continue;
      }
      const error = await failure(() => readAll(truncated, predictionType, { chunkSize: 50 }));
      expect(error.code, `cut at ${cut}: ${error.message}`).toBe('E_CORRUPT_OBJECT');
      expect(error.message).toContain(KEY);
      corrupt++;
    }
    expect(corrupt).toBe(file.bytes.length - boundaries.size + (boundaries.has(file.bytes.length) ? 1 : 0));
  });

  it('reads a file fed one byte per chunk', async () => {
    const records = samplePredictions(40);
    const file = encodeFile(records, { type: predictionType, blockBytes: 512 });
    expect(await readAll(file.bytes, predictionType, { chunkSize: 1 })).toEqual(records);
    const header = await readContainerHeader(chunksOf(file.bytes, 1), KEY);
    expect(header.headerBytes).toBe(file.headerBytes);
  });

  it('stops consuming the source once it has the header', async () => {
    const file = encodeFile(samplePredictions(100), { type: predictionType, blockBytes: 512 });
    let pulled = 0;
    let closed = false;
    async function* counting(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of chunksOf(file.bytes, 64)) {
          pulled++;
          yield chunk;
        }
      } finally {
        closed = true;
      }
    }
    await readContainerHeader(counting(), KEY);
    expect(pulled).toBe(Math.ceil(file.headerBytes / 64));
    expect(closed).toBe(true);
  });
});

describe('corrupt objects', () => {
  const records = samplePredictions(50);
  const file = encodeFile(records, { type: predictionType, blockBytes: 1024 });
  const firstBlockEnd = file.blockEnds[0]!;

  it('bad magic', async () => {
    const bytes = Buffer.from(file.bytes);
    bytes[3] = 0x02;
    await expectCorrupt(bytes, 0, /expected magic bytes 4f 62 6a 01 .* found 4f 62 6a 02/);
    await expectCorrupt(Buffer.from('PAR1 this is parquet'), 0, /not an Avro container file/, 1);
  });

  it('bad sync marker after a block', async () => {
    const bytes = Buffer.from(file.bytes);
    bytes[firstBlockEnd - 3] ^= 0xff;
    await expectCorrupt(bytes, firstBlockEnd - 16, /\(block 0\): sync marker mismatch: expected/);
  });

  it('bad sync marker in a later block names that block', async () => {
    const bytes = Buffer.from(file.bytes);
    bytes[file.blockEnds[1]! - 1] ^= 0x01;
    await expectCorrupt(bytes, file.blockEnds[1]! - 16, /\(block 1\): sync marker mismatch/);
  });

  it('flipped bytes inside a deflate block', async () => {
    const bytes = Buffer.from(file.bytes);
    const middle = Math.floor((file.headerBytes + firstBlockEnd) / 2);
    for (let i = middle; i < middle + 8; i++) bytes[i] ^= 0x5a;
    await expectCorrupt(bytes, file.headerBytes, /\(block 0\)/);
  });

  it('flipped bytes inside a null-codec block', async () => {
    const plain = encodeFile(records, { type: predictionType, codec: 'null', blockBytes: 1024 });
    const bytes = Buffer.from(plain.bytes);
    // The first record's prediction_id length varint: claims far more bytes than the block has.
    const dataStart = plain.headerBytes + varint(plain.blockRecordCounts[0]!).length + 2;
    bytes[dataStart] = 0x7e;
    await expectCorrupt(bytes, plain.headerBytes, /\(block 0\): (block declares|record \d+ of \d+ cannot be decoded)/);
  });

  it('a corrupt map count fails at once instead of spinning', async () => {
    // One record whose segment_keys map claims 2^62 entries (avsc 5.7 would loop over them).
    const valid = predictionType.toBuffer({ ...samplePrediction(0), segment_keys: {} });
    const data = Buffer.concat([valid.subarray(0, valid.length - 1), Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])]);
    const bytes = Buffer.concat([rawHeader({ 'avro.schema': predictionSchemaJson }, SYNC), rawBlock(1, data, SYNC)]);
    const started = Date.now();
    await expectCorrupt(bytes, undefined, /record 0 of 1 cannot be decoded \(map block claims \d+ items/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('unknown codec', async () => {
    const bytes = rawHeader({ 'avro.schema': predictionSchemaJson, 'avro.codec': 'lzo' });
    await expectCorrupt(bytes, 0, /unknown codec "lzo" in avro.codec, expected one of deflate, null/);
  });

  it.each(['__proto__', 'toString', 'constructor', 'hasOwnProperty'])('codec named %s', async (codec) => {
    const bytes = Buffer.concat([rawHeader({ 'avro.schema': predictionSchemaJson, 'avro.codec': codec }), rawBlock(1, Buffer.alloc(4))]);
    await expectCorrupt(bytes, 0, new RegExp(`unknown codec "${codec}"`));
  });

  it('overlong varint in a block header', async () => {
    const header = rawHeader({ 'avro.schema': predictionSchemaJson }, SYNC);
    const bytes = Buffer.concat([header, Buffer.alloc(11, 0xff), Buffer.from([0x01]), Buffer.alloc(64)]);
    await expectCorrupt(bytes, header.length, /block record count is a varint longer than 10 bytes/);
  });

  it('overlong varint in the header metadata', async () => {
    const bytes = Buffer.concat([Buffer.from('Obj\x01', 'latin1'), Buffer.alloc(12, 0x80), Buffer.alloc(64)]);
    await expectCorrupt(bytes, 4, /metadata block count is a varint longer than 10 bytes/);
  });

  it('huge record count', async () => {
    const header = rawHeader({ 'avro.schema': predictionSchemaJson }, SYNC);
    const bytes = Buffer.concat([header, rawBlock(100_000_000, Buffer.alloc(10), SYNC)]);
    await expectCorrupt(bytes, header.length, /block declares 100000000 records, more than maxBlockRecords \(10000000\)/);
  });

  it('record count larger than the block holds', async () => {
    const header = rawHeader({ 'avro.schema': predictionSchemaJson }, SYNC);
    const one = predictionType.toBuffer(samplePrediction(0));
    const bytes = Buffer.concat([header, rawBlock(5_000, one, SYNC)]);
    await expectCorrupt(bytes, header.length, /block declares 5000 records but its \d+ bytes end inside record 1/);
  });

  it('records that do not fill the block', async () => {
    const header = rawHeader({ 'avro.schema': predictionSchemaJson }, SYNC);
    const two = Buffer.concat([predictionType.toBuffer(samplePrediction(0)), predictionType.toBuffer(samplePrediction(1))]);
    const bytes = Buffer.concat([header, rawBlock(1, two, SYNC)]);
    await expectCorrupt(bytes, header.length, /block declares 1 records that take \d+ bytes, but it holds \d+/);
  });

  it('negative and oversized block sizes', async () => {
    const header = rawHeader({ 'avro.schema': predictionSchemaJson }, SYNC);
    await expectCorrupt(Buffer.concat([header, varint(1), varint(-5), Buffer.alloc(40)]), header.length, /negative block size -5/);
    const error = await failure(() =>
      readAll(Buffer.concat([header, varint(1), varint(5_000_000), Buffer.alloc(40)]), predictionType, {
        key: KEY,
        limits: { maxBlockBytes: 1_000_000 },
      }),
    );
    expect(error.code).toBe('E_CORRUPT_OBJECT');
    expect(error.message).toMatch(/block declares 5000000 bytes, more than maxBlockBytes \(1000000\)/);
  });

  it('decompression bomb: 100 MiB of zeros in a small deflate block', async () => {
    const header = rawHeader({ 'avro.schema': predictionSchemaJson, 'avro.codec': 'deflate' }, SYNC);
    const bomb = zlib.deflateRawSync(Buffer.alloc(100 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(200_000);
    const bytes = Buffer.concat([header, rawBlock(1, bomb, SYNC)]);
    const error = await failure(() => readAll(bytes, predictionType, { key: KEY, limits: { maxDecompressedBlockBytes: 1024 * 1024 } }));
    expect(error.code).toBe('E_CORRUPT_OBJECT');
    expect(error.context).toMatchObject({ key: KEY, offset: header.length, block: 0 });
    expect(error.message).toMatch(/decompresses to more than maxDecompressedBlockBytes \(1048576\)/);
  });

  it('missing avro.schema', async () => {
    await expectCorrupt(rawHeader({ 'avro.codec': 'null' }), 0, /no avro.schema entry/);
  });

  it('invalid schema JSON', async () => {
    await expectCorrupt(rawHeader({ 'avro.schema': '{"type": "record", "name": ' }), 0, /avro.schema is not valid JSON/);
  });

  it('schema JSON that is not an Avro schema', async () => {
    await expectCorrupt(rawHeader({ 'avro.schema': '{"type": "recordz"}' }), 0, /avro.schema is not a valid Avro schema \(unknown type/);
  });

  it('header larger than maxHeaderBytes', async () => {
    const bytes = rawHeader({ 'avro.schema': predictionSchemaJson, padding: 'x'.repeat(10_000) });
    const error = await failure(() => readAll(bytes, predictionType, { key: KEY, limits: { maxHeaderBytes: 4096 } }));
    expect(error.code).toBe('E_CORRUPT_OBJECT');
    expect(error.message).toMatch(/larger than maxHeaderBytes \(4096\)/);
  });

  it('trailing garbage after the last block', async () => {
    await expectCorrupt(Buffer.concat([file.bytes, Buffer.from('garbage!')]), file.bytes.length, /block/);
    await expectCorrupt(Buffer.concat([file.bytes, Buffer.from([0x02])]), file.bytes.length, /inside a block header/);
  });

  it('two files concatenated', async () => {
    await expectCorrupt(Buffer.concat([file.bytes, file.bytes]), file.bytes.length, /concatenated files are not valid Avro/);
  });

  it('header split across 1-byte chunks is still checked byte by byte', async () => {
    const bytes = Buffer.from(file.bytes);
    bytes[file.headerBytes - 1] ^= 0xff; // last byte of the header's sync marker
    await expectCorrupt(bytes, firstBlockEnd - 16, /sync marker mismatch/, 1);
    await expectCorrupt(file.bytes.subarray(0, file.headerBytes - 1), file.headerBytes - 1, /inside its header/, 1);
  });

  it('a record that cannot be decoded', async () => {
    // Four one-letter strings, y_pred, then y_true's union index 7, which the schema does not have.
    const data = Buffer.concat([Buffer.from([0x02, 0x61, 0x02, 0x61, 0x02, 0x61, 0x02, 0x61]), Buffer.alloc(8), varint(7)]);
    const bytes = Buffer.concat([rawHeader({ 'avro.schema': predictionSchemaJson }, SYNC), rawBlock(1, data, SYNC)]);
    await expectCorrupt(bytes, undefined, /\(block 0\): record 0 of 1 cannot be decoded \(invalid union index: 7\)/);
  });
});

describe('expectedBytes: a cut at a block boundary is only visible against the listed size', () => {
  it('fails with E_STORAGE when the stream ends before the listed size, even at a block boundary', async () => {
    const { bytes, blockEnds } = encodeFile(samplePredictions(300), { type: predictionType, blockBytes: 4096 });
    expect(blockEnds.length).toBeGreaterThan(2);
    const cut = bytes.subarray(0, blockEnds[0]!);
    const records: unknown[] = [];
    const error = await failure(async () => {
      for await (const block of decodeContainer(chunksOf(cut), { key: 'dt=2026-01-01/cut.avro', readerType: predictionType, expectedBytes: bytes.length })) records.push(...block);
    });
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain(`ended after ${blockEnds[0]} bytes but was listed with ${bytes.length}`);
  });

  it('accepts a whole file of exactly the listed size', async () => {
    const { bytes } = encodeFile(samplePredictions(50), { type: predictionType });
    let n = 0;
    for await (const block of decodeContainer(chunksOf(bytes), { key: 'k', readerType: predictionType, expectedBytes: bytes.length })) n += block.length;
    expect(n).toBe(50);
  });
});
