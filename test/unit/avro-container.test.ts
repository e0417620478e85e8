/**
 * The container reader and writer on valid files: round trips, interop with avsc, header-only files,
 * chunking, progress. Damaged and hostile files are in avro-hostile.test.ts and avro-fuzz.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { decodeContainer, readContainerHeader } from '../../src/avro/container-reader.js';
import { ContainerEncoder } from '../../src/avro/container-writer.js';
import { schemaFingerprint } from '../../src/avro/schemas.js';
import {
  chunksOf,
  encodeFile,
  failure,
  predictionV1SchemaJson as predictionSchemaJson,
  predictionV1Type as predictionType,
  readAll,
  readWithAvsc,
  samplePrediction,
  samplePredictions,
  writeWithAvsc,
} from '../helpers/avro-helpers.js';

const KEY = 'dt=2026-01-01/a.avro';

describe('round trip', () => {
  const records = samplePredictions(500);

  it.each(['deflate', 'null'])('reads back what ContainerEncoder wrote (%s), block by block', async (codec) => {
    const file = encodeFile(records, { type: predictionType, codec, blockBytes: 4096 });
    expect(file.blockEnds.length).toBeGreaterThan(3);
    expect(await readAll(file.bytes, predictionType)).toEqual(records);
    const blocks: number[] = [];
    for await (const block of decodeContainer(chunksOf(file.bytes, 1000), { uri: KEY, readerType: predictionType })) {
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
      uri: KEY,
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

describe('header-only files and chunking', () => {
  it('reads a header-only file as a valid file with 0 records', async () => {
    const file = encodeFile([], { type: predictionType });
    expect(file.bytes.length).toBe(file.headerBytes);
    const progress: number[] = [];
    let headers = 0;
    const blocks: unknown[][] = [];
    for await (const block of decodeContainer(chunksOf(file.bytes), {
      uri: KEY,
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

  it('reads a file fed one byte per chunk', async () => {
    const records = samplePredictions(40);
    const file = encodeFile(records, { type: predictionType, blockBytes: 512 });
    expect(await readAll(file.bytes, predictionType, { chunkSize: 1 })).toEqual(records);
    const header = await readContainerHeader(chunksOf(file.bytes, 1), KEY);
    expect(header.headerBytes).toBe(file.headerBytes);
  });

  it('stops consuming the source once it has the header', async () => {
    const file = encodeFile(samplePredictions(200), { type: predictionType, codec: 'null', blockBytes: 512 });
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
    const header = await readContainerHeader(counting(), KEY);
    expect(header.headerBytes).toBe(file.headerBytes);
    // Each retried parse waits for twice the bytes of the last one (linear cost for big headers),
    // so it may read up to twice the header, never the records after it.
    expect(pulled).toBeGreaterThanOrEqual(Math.ceil(file.headerBytes / 64));
    expect(pulled * 64).toBeLessThanOrEqual(2 * file.headerBytes + 64);
    expect(file.bytes.length).toBeGreaterThan(4 * file.headerBytes);
    expect(closed).toBe(true);
  });
});

describe('expectedBytes: a cut at a block boundary is only visible against the listed size', () => {
  it('fails with E_STORAGE when the stream ends before the listed size, even at a block boundary', async () => {
    const { bytes, blockEnds } = encodeFile(samplePredictions(300), { type: predictionType, blockBytes: 4096 });
    expect(blockEnds.length).toBeGreaterThan(2);
    const cut = bytes.subarray(0, blockEnds[0]!);
    const records: unknown[] = [];
    const error = await failure(async () => {
      for await (const block of decodeContainer(chunksOf(cut), { uri: 'dt=2026-01-01/cut.avro', readerType: predictionType, expectedBytes: bytes.length })) records.push(...block);
    });
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain(`ended after ${blockEnds[0]} bytes but was listed with ${bytes.length}`);
  });

  it('accepts a whole file of exactly the listed size', async () => {
    const { bytes } = encodeFile(samplePredictions(50), { type: predictionType });
    let n = 0;
    for await (const block of decodeContainer(chunksOf(bytes), { uri: 'k', readerType: predictionType, expectedBytes: bytes.length })) n += block.length;
    expect(n).toBe(50);
  });
});
