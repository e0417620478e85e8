/**
 * The direct columnar decoder (src/workers/columnar-decoder.ts) against the avsc path it replaces
 * for known writer schemas: on real container bytes (hand-encoded Avro binary, and files written by
 * the product's encoder), both give deep-equal batches, and the same E_CORRUPT_OBJECT error (code,
 * message, context) for damaged blocks and values over the decode limits. Also: hashUtf8 is the
 * StringKeyTable hash, and the batches' idHash / signature columns.
 */
import { describe, expect, it } from 'vitest';
import type { Type } from 'avsc';
import { blockDecoder, readStoredBlocks, type DecodeLimits, type StoredBlock } from '../../src/avro/container-reader.js';
import { labelType, loadSchemaVersion, predictionType } from '../../src/avro/schemas.js';
import { hashUtf8, StringKeyTable } from '../../src/join/key-table.js';
import type { PredictionBatch } from '../../src/workers/batches.js';
import { ColumnarDecoder, directPlan } from '../../src/workers/columnar-decoder.js';
import { chunksOf, encodeFile, predictionV1Type, rawBlock, rawHeader, samplePredictions, varint } from '../helpers/avro-helpers.js';

const URI = 's3://bucket/predictions/dt=2026-01-01/part-0.avro';
type Dataset = 'predictions' | 'labels';

const v1Schema = predictionV1Type.schema({ exportAttrs: true });
const v2Schema = predictionType.schema({ exportAttrs: true });
const labelSchema = labelType.schema({ exportAttrs: true });

async function storedBlocks(bytes: Buffer, readerType: Type): Promise<StoredBlock[]> {
  const blocks: StoredBlock[] = [];
  for await (const block of readStoredBlocks(chunksOf(bytes), { uri: URI, readerType })) blocks.push({ ...block, stored: Buffer.from(block.stored) });
  return blocks;
}

/** The batch (or the error as plain data) of a file's blocks, decoded directly or by avsc. */
/** Blocks the avsc path decoded in the last direct decodeFile. */
let lastBlocksByAvsc = 0;

async function decodeFile(bytes: Buffer, dataset: Dataset, direct: boolean, limits: Partial<DecodeLimits> = {}): Promise<unknown> {
  const readerType = dataset === 'predictions' ? predictionType : labelType;
  const blocks = await storedBlocks(bytes, readerType);
  const header = blocks[0]!.header;
  const plan = direct ? directPlan(dataset, header.writerSchema) : undefined;
  if (direct) expect(plan).toBeDefined();
  const decoder = new ColumnarDecoder(dataset, plan, blockDecoder(readerType, header, URI, limits), blocks.reduce((n, b) => n + b.count, 0));
  try {
    for (const block of blocks) decoder.block(block);
    if (direct) lastBlocksByAvsc = decoder.blocksByAvsc;
    return decoder.take();
  } catch (error) {
    if (direct) lastBlocksByAvsc = decoder.blocksByAvsc;
    const e = error as Error & { code?: string; context?: unknown };
    return { failed: true, name: e.name, code: e.code, message: e.message, context: e.context };
  }
}

async function expectSameBothWays(bytes: Buffer, dataset: Dataset, limits: Partial<DecodeLimits> = {}): Promise<unknown> {
  const direct = await decodeFile(bytes, dataset, true, limits);
  const avsc = await decodeFile(bytes, dataset, false, limits);
  expect(direct).toEqual(avsc);
  return direct;
}

// --- Avro binary by hand (Avro 1.11 "Binary Encoding"), so maps may repeat keys and strings may be any bytes.
const bytesOf = (value: string | Buffer): Buffer => (typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
const str = (value: string | Buffer): Buffer => Buffer.concat([varint(bytesOf(value).length), bytesOf(value)]);
function dbl(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeDoubleLE(value);
  return out;
}
const nullable = (value: Buffer | null): Buffer => (value === null ? Buffer.from([0]) : Buffer.concat([Buffer.from([2]), value]));

interface Row {
  id: string | Buffer;
  name?: string | Buffer;
  version?: string;
  featureset?: string;
  yPred?: number;
  yTrue?: number | null;
  residual?: number | null;
  ts?: number;
  segments?: Array<[string | Buffer, string | Buffer]>;
  /** Map blocks written with a negative count and their byte size (valid Avro). */
  sizedMapBlocks?: boolean;
  requestId?: string | null;
}

function segmentBytes(row: Row): Buffer {
  const pairs = row.segments ?? [];
  if (pairs.length === 0) return Buffer.from([0]);
  const body = Buffer.concat(pairs.map(([k, v]) => Buffer.concat([str(k), str(v)])));
  const head = row.sizedMapBlocks ? Buffer.concat([varint(-pairs.length), varint(body.length)]) : varint(pairs.length);
  return Buffer.concat([head, body, Buffer.from([0])]);
}

function predictionBytes(row: Row, version: 1 | 2): Buffer {
  const yTrue = row.yTrue === undefined ? null : row.yTrue;
  const residual = row.residual === undefined ? null : row.residual;
  const parts = [
    str(row.id),
    str(row.name ?? 'churn'),
    str(row.version ?? 'v3'),
    str(row.featureset ?? 'fs-1'),
    dbl(row.yPred ?? 0.5),
    nullable(yTrue === null ? null : dbl(yTrue)),
    nullable(residual === null ? null : dbl(residual)),
    varint(row.ts ?? 1_736_899_200_000_000),
    segmentBytes(row),
  ];
  if (version === 2) parts.push(nullable(row.requestId === undefined || row.requestId === null ? null : str(row.requestId)));
  return Buffer.concat(parts);
}

function container(schema: unknown, blocks: Buffer[][]): Buffer {
  const header = rawHeader({ 'avro.schema': JSON.stringify(schema), 'avro.codec': 'null' });
  return Buffer.concat([header, ...blocks.map((records) => rawBlock(records.length, Buffer.concat(records)))]);
}

function variedRows(): Row[] {
  const rows: Row[] = [
    { id: '' },
    { id: 'x'.repeat(65), segments: [['region', 'eu'], ['device', 'ios']] },
    { id: 'p-' + 'abcdefghij'.repeat(20), yTrue: 1.25, residual: 0.75 },
    { id: 'nan', yPred: NaN, yTrue: Infinity, residual: -Infinity },
    { id: 'inf', yPred: -Infinity, yTrue: NaN, residual: null },
    { id: 'ünïcødé-id-✓', name: 'modèle', segments: [['région', 'Zürich'], ['device', '📱']] },
    { id: Buffer.from([0x61, 0xff, 0x62, 0xc3]), segments: [['k', Buffer.from([0xe2, 0x82])]] },
    { id: 'ints', segments: [['b', '1'], ['10', 'x'], ['2', 'y'], ['a', 'z'], ['0', 'w']] },
    { id: 'dups', segments: [['region', 'eu'], ['device', 'ios'], ['region', 'us']] },
    { id: 'dup-value-unused', segments: [['only', 'first-value-never-kept'], ['only', 'kept']] },
    { id: 'proto', segments: [['__proto__', 'p'], ['constructor', 'c']] },
    { id: 'empty-strings', name: '', version: '', featureset: '', segments: [['', '']] },
    { id: 'sized', segments: [['region', 'eu'], ['zone', 'b']], sizedMapBlocks: true },
    // Two byte strings that decode to one string (both invalid UTF-8 → U+FFFD) are one code.
    { id: 'fffd-a', name: Buffer.from([0xff]) },
    { id: 'fffd-b', name: Buffer.from([0xfe]) },
    { id: 'ts', ts: -1, requestId: 'req-1' },
    { id: 'big-ts', ts: 2 ** 53 - 2, requestId: '' },
    { id: 'neg-ts', ts: -(2 ** 52) },
  ];
  for (let i = 0; i < 60; i++) {
    rows.push({
      id: `pred-${i}`,
      name: `m${i % 3}`,
      version: `v${i % 2}`,
      yTrue: i % 4 === 0 ? null : i / 7,
      residual: i % 4 === 0 ? null : i / 11,
      ts: 1_736_899_200_000_000 + i * 1_000_003,
      segments: i % 5 === 0 ? [] : [['region', `r${i % 4}`], ['device', `d${i % 3}`]],
      requestId: i % 2 === 0 ? null : `req-${i}`,
    });
  }
  return rows;
}

/** Rows in blocks of 7 (so the dictionaries span blocks). */
function blocksOf(rows: Row[], version: 1 | 2): Buffer[][] {
  const blocks: Buffer[][] = [];
  for (let i = 0; i < rows.length; i += 7) blocks.push(rows.slice(i, i + 7).map((row) => predictionBytes(row, version)));
  return blocks;
}

describe('directPlan', () => {
  it('knows the product schemas and refuses any other shape', () => {
    expect(directPlan('predictions', v1Schema)).toBeDefined();
    expect(directPlan('predictions', v2Schema)).toBeDefined();
    expect(directPlan('labels', labelSchema)).toBeDefined();
    const fields = (v2Schema as { fields: Array<{ name: string; type: unknown }> }).fields;
    const withFields = (changed: Array<{ name: string; type: unknown }>): unknown => ({ ...(v2Schema as object), fields: changed });
    expect(directPlan('predictions', withFields(fields.map((f) => (f.name === 'y_true' ? { ...f, type: ['double', 'null'] } : f))))).toBeUndefined();
    expect(directPlan('predictions', withFields(fields.filter((f) => f.name !== 'residual')))).toBeUndefined();
    expect(directPlan('predictions', withFields([...fields, { name: 'extra', type: 'int' }]))).toBeUndefined();
    expect(directPlan('predictions', withFields(fields.map((f) => (f.name === 'inference_ts' ? { ...f, type: 'int' } : f))))).toBeUndefined();
    expect(directPlan('predictions', withFields([...fields, { name: 'featureset_version', type: 'string' }]))).toBeUndefined();
    expect(directPlan('labels', v2Schema)).toBeUndefined();
  });
});

describe('ColumnarDecoder: the same batches as the avsc path', () => {
  it('v2 writer: nulls, NaN/±Infinity, empty/long/non-ASCII/invalid-UTF-8 ids, integer-like and repeated keys, request_id', async () => {
    const batch = (await expectSameBothWays(container(v2Schema, blocksOf(variedRows(), 2)), 'predictions')) as PredictionBatch;
    expect(batch.count).toBe(variedRows().length);
    // Only the block with the size-prefixed map block (rows 7-13) is left to avsc.
    expect(lastBlocksByAvsc).toBe(1);
    // Invalid UTF-8 in an id is stored as avsc's string writes back: U+FFFD as EF BF BD.
    const id6 = Buffer.from(batch.ids.subarray(batch.idEnds[5]!, batch.idEnds[6]!));
    expect(id6).toEqual(Buffer.from('a\ufffdb\ufffd', 'utf8'));
    // Integer-like keys first, ascending, as avsc's JS object enumerates them.
    const row = 7;
    const keys = [];
    for (let p = batch.segStart[row]!; p < batch.segStart[row + 1]!; p++) keys.push(batch.strings[batch.segPairs[p * 2]!]);
    expect(keys).toEqual(['0', '2', '10', 'b', 'a']);
    expect(batch.strings).not.toContain('first-value-never-kept');
  });

  it('v1 writer (featureset_version, no request_id)', async () => {
    await expectSameBothWays(container(v1Schema, blocksOf(variedRows(), 1)), 'predictions');
    expect(lastBlocksByAvsc).toBe(1);
  });

  it('files written by the product encoder, deflate, v1 and v2', async () => {
    const records = samplePredictions(2000);
    await expectSameBothWays(encodeFile(records, { type: predictionV1Type, codec: 'deflate', blockBytes: 8192 }).bytes, 'predictions');
    const v2 = records.map((r, i) => {
      const { featureset_version: fs, ...rest } = r as Record<string, unknown>;
      return { ...rest, feature_set_version: fs, request_id: i % 3 === 0 ? null : `r${i}` };
    });
    const v2Type = loadSchemaVersion('prediction', 2);
    await expectSameBothWays(encodeFile(v2, { type: v2Type, codec: 'deflate', blockBytes: 8192 }).bytes, 'predictions');
    expect(lastBlocksByAvsc).toBe(0);
  });

  it('labels', async () => {
    const label = (id: string | Buffer, yTrue: number, ts: number): Buffer => Buffer.concat([str(id), dbl(yTrue), varint(ts)]);
    const rows = [label('', 1, 0), label('é', NaN, -5), label(Buffer.from([0xff, 0x41]), Infinity, 2 ** 52), label('z'.repeat(70), 0.5, 1)];
    for (let i = 0; i < 50; i++) rows.push(label(`p-${i}`, i / 3, 1_736_899_200_000_000 + i));
    await expectSameBothWays(container(labelSchema, [rows.slice(0, 20), rows.slice(20)]), 'labels');
    expect(lastBlocksByAvsc).toBe(0);
  });
});

describe('ColumnarDecoder: the same errors as the avsc path', () => {
  const good = (i: number): Buffer => predictionBytes({ id: `p-${i}`, segments: [['region', 'eu']] }, 2);
  const block = (records: Buffer[], data: Buffer = Buffer.concat(records), count = records.length): Buffer => rawBlock(count, data);
  const header = rawHeader({ 'avro.schema': JSON.stringify(v2Schema), 'avro.codec': 'null' });

  async function expectSameError(blocks: Buffer[], limits: Partial<DecodeLimits> = {}, detail?: RegExp): Promise<void> {
    const result = (await expectSameBothWays(Buffer.concat([header, ...blocks]), 'predictions', limits)) as { failed?: boolean; code?: string; message?: string; context?: Record<string, unknown> };
    expect(result.failed).toBe(true);
    expect(result.code).toBe('E_CORRUPT_OBJECT');
    expect(result.context?.['uri']).toBe(URI);
    expect(result.context?.['block']).toBe(1);
    if (detail) expect(result.message).toMatch(detail);
  }

  const first = block([good(0), good(1)]);

  it('a block whose bytes end inside a record', async () => {
    const records = [good(2), good(3)];
    const data = Buffer.concat(records);
    await expectSameError([first, block(records, data.subarray(0, data.length - 3))], {}, /record 1 of 2, which starts at byte \d+ of the block's \d+ decoded bytes, cannot be decoded/);
  });

  it('trailing bytes after the declared records', async () => {
    await expectSameError([first, block([good(2)], Buffer.concat([good(2), Buffer.from([0, 0])]))], {}, /holds/);
  });

  it('a corrupt varint, a string length past the block, a bad union index', async () => {
    const corruptLength = Buffer.concat([good(2), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), Buffer.from('rest')]);
    await expectSameError([first, block([], corruptLength, 2)]);
    const pastEnd = Buffer.concat([good(2), varint(1000), Buffer.from('short')]);
    await expectSameError([first, block([], pastEnd, 2)], {}, /string claims 1000 bytes/);
    const badUnion = predictionBytes({ id: 'u' }, 2);
    const at = str('u').length + str('churn').length + str('v3').length + str('fs-1').length + 8;
    badUnion[at] = 8;
    await expectSameError([first, block([good(2), badUnion])], {}, /invalid union index/);
  });

  it('a string over maxStringBytes and a map over maxCollectionItems', async () => {
    await expectSameError([first, block([good(2), predictionBytes({ id: 'i'.repeat(40) }, 2)])], { maxStringBytes: 32 }, /maxStringBytes/);
    const wide = predictionBytes({ id: 'wide', segments: [['a', '1'], ['b', '2'], ['c', '3']] }, 2);
    await expectSameError([block([good(0)]), block([good(2), wide])], { maxCollectionItems: 2 }, /maxCollectionItems/);
    const sized = predictionBytes({ id: 'wide', segments: [['a', '1'], ['b', '2'], ['c', '3']], sizedMapBlocks: true }, 2);
    await expectSameError([block([good(0)]), block([good(2), sized])], { maxCollectionItems: 2 }, /maxCollectionItems/);
  });

  it('a map block count beyond the bytes left', async () => {
    const rec = Buffer.concat([predictionBytes({ id: 'm' }, 2).subarray(0, -2), varint(500), str('k'), str('v'), Buffer.from([0, 0])]);
    await expectSameError([first, block([rec])], {}, /map block claims 500 items/);
  });
});

describe('hashUtf8', () => {
  it('is the StringKeyTable hash of the string the bytes encode', () => {
    const table = new StringKeyTable();
    const ids: string[] = [];
    for (let length = 0; length <= 70; length++) {
      ids.push('a'.repeat(length), 'é'.repeat(length).slice(0, length), `pred-${'x'.repeat(length)}`, '中文✓🙂'.repeat(length).slice(0, length));
    }
    const padded = Buffer.alloc(400);
    for (const id of ids) {
      const bytes = Buffer.from(id, 'utf8');
      for (const offset of [0, 1, 3]) {
        bytes.copy(padded, offset);
        expect(hashUtf8(padded, offset, offset + bytes.length)).toBe(table.hashKey(id));
      }
    }
  });
});

describe('batch idHash and signature columns', () => {
  it('idHash per row, signatures dense in order of first occurrence with their first row', async () => {
    const rows: Row[] = [
      { id: 'a', segments: [['r', 'eu']] },
      { id: 'b', segments: [['r', 'us']] },
      { id: 'c', segments: [['r', 'eu']] },
      { id: 'd', name: 'other', segments: [['r', 'eu']] },
      { id: 'e', segments: [] },
      { id: 'f', segments: [['r', 'us']] },
      { id: 'g', segments: [['r', 'eu'], ['d', 'x']] },
      { id: 'h', segments: [['d', 'x'], ['r', 'eu']] },
    ];
    const batch = (await expectSameBothWays(container(v2Schema, blocksOf(rows, 2)), 'predictions')) as PredictionBatch;
    expect([...batch.signature]).toEqual([0, 1, 0, 2, 3, 1, 4, 5]);
    expect([...batch.signatureRow]).toEqual([0, 1, 3, 4, 6, 7]);
    const table = new StringKeyTable();
    expect([...batch.idHash]).toEqual(rows.map((r) => table.hashKey(r.id as string)));
  });
});
