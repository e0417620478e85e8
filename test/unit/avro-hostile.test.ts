/**
 * Hostile Avro (issue 5): one test per kind of damaged or malicious container file. Each must fail
 * that object alone with E_CORRUPT_OBJECT naming the key, the block index (or "header") and the byte
 * offset, without a crash, a hang or memory in proportion to a length the file only claims.
 */
import zlib from 'node:zlib';
import type { Type } from 'avsc';
import { describe, expect, it } from 'vitest';
import { parseAvroType } from '../../src/avro/avro-types.js';
import { decodeContainer, defaultDecodeLimits, type DecodeLimits } from '../../src/avro/container-reader.js';
import {
  chunksOf,
  encodeFile,
  expectCorrupt,
  failure,
  predictionV1SchemaJson,
  predictionV1Type,
  rawBlock,
  rawHeader,
  readAll,
  samplePrediction,
  samplePredictions,
  varint,
} from '../helpers/avro-helpers.js';

const KEY = 'dt=2026-01-01/hostile.avro';
const SYNC = Buffer.alloc(16, 7);
const v1Fields = (JSON.parse(predictionV1SchemaJson) as { fields: unknown[] }).fields;

/** A writer schema: PredictionEvent v1 plus `extra` fields (which the v1 reader skips). */
function writerWith(extra: unknown[], name = 'PredictionEvent'): Record<string, unknown> {
  return { type: 'record', name, namespace: 'ml.monitoring', fields: [...v1Fields, ...extra] };
}

/** The bytes of one v1 record (its fields in v1 order), to which a test appends extra fields. */
function v1RecordBytes(i = 0): Buffer {
  return predictionV1Type.toBuffer(samplePrediction(i));
}

/** A header with `schema` and `codec`, and one block of `count` records holding `data`. */
function oneBlockFile(schema: unknown, count: number, data: Buffer, codec = 'null'): { bytes: Buffer; headerBytes: number } {
  const header = rawHeader({ 'avro.schema': typeof schema === 'string' ? schema : JSON.stringify(schema), 'avro.codec': codec }, SYNC);
  return { bytes: Buffer.concat([header, rawBlock(count, data, SYNC)]), headerBytes: header.length };
}

/** A header only, with the given metadata. */
function headerOnly(metadata: Record<string, string>): Buffer {
  return rawHeader(metadata, SYNC);
}

/** `text` nested `levels` deep by `wrap`. */
function nest(levels: number, inner: string, wrap: (inside: string, level: number) => string): string {
  let text = inner;
  for (let level = 0; level < levels; level++) text = wrap(text, level);
  return text;
}

const v1Header = headerOnly({ 'avro.schema': predictionV1SchemaJson });
const records = samplePredictions(50);
const file = encodeFile(records, { type: predictionV1Type, blockBytes: 1024 });

describe('header', () => {
  it('bad magic', async () => {
    const bytes = Buffer.from(file.bytes);
    bytes[3] = 0x02;
    await expectCorrupt(bytes, { offset: 0, block: 'header', detail: /expected magic bytes 4f 62 6a 01 .* found 4f 62 6a 02/ });
    await expectCorrupt(Buffer.from('PAR1 this is parquet'), { offset: 0, block: 'header', detail: /not an Avro container file/, chunkSizes: [1] });
  });

  it('missing avro.schema', async () => {
    await expectCorrupt(headerOnly({ 'avro.codec': 'null' }), { offset: 0, block: 'header', detail: /no avro.schema entry/ });
  });

  it('invalid schema JSON', async () => {
    await expectCorrupt(headerOnly({ 'avro.schema': '{"type": "record", "name": ' }), { offset: 0, block: 'header', detail: /avro.schema is not valid JSON/ });
  });

  it('schema JSON that is not an Avro schema', async () => {
    await expectCorrupt(headerOnly({ 'avro.schema': '{"type": "recordz"}' }), { offset: 0, block: 'header', detail: /avro.schema is not a valid Avro schema \(unknown type/ });
  });

  it.each([
    ['a bare name', '"toString"'],
    ['a bare name', '"__proto__"'],
    ['a type keyword', '{"type": "constructor"}'],
    ['a type keyword', '{"type": "hasOwnProperty"}'],
    ['a field type', JSON.stringify(writerWith([{ name: 'x', type: 'valueOf' }]))],
    ['an items type', JSON.stringify(writerWith([{ name: 'x', type: { type: 'array', items: '__proto__' } }]))],
  ])('a writer schema naming an Object.prototype member as %s (%s) is refused, not half-built', async (_, schema) => {
    await expectCorrupt(Buffer.concat([headerOnly({ 'avro.schema': schema }), rawBlock(1, Buffer.alloc(8), SYNC)]), {
      offset: 0,
      block: 'header',
      detail: /avro.schema is not a valid Avro schema \((undefined type name|unknown type)/,
    });
  });

  it('records and fields named like Object.prototype members decode without touching any prototype', async () => {
    const writer = parseAvroType(
      writerWith([
        { name: '__proto__', type: { type: 'map', values: 'string' } },
        { name: 'constructor', type: { type: 'record', name: 'toString', fields: [{ name: 'hasOwnProperty', type: 'string' }] } },
      ]),
    );
    // v1 fields, then the map {"polluted": "yes"}, then the record {hasOwnProperty: "x"}.
    const data = Buffer.concat([v1RecordBytes(3), varint(1), varint(8), Buffer.from('polluted'), varint(3), Buffer.from('yes'), varint(0), varint(1), Buffer.from('x')]);
    const { bytes } = oneBlockFile(writer.schema(), 1, data);
    expect(await readAll(bytes, predictionV1Type, { uri: KEY })).toEqual([samplePrediction(3)]);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('a metadata map declaring a huge entry count', async () => {
    const bytes = Buffer.concat([Buffer.from('Obj\x01', 'latin1'), varint(2 ** 40), Buffer.alloc(64)]);
    await expectCorrupt(bytes, { offset: 4, block: 'header', detail: /metadata entry count 1099511627776 makes the header larger than maxHeaderBytes \(16777216; raise it with --avro-max-header-mb/ });
    // A negative count announces the block's byte size (Avro 1.11 "Maps"): a huge one is refused too.
    const sized = Buffer.concat([Buffer.from('Obj\x01', 'latin1'), varint(-1), varint(2 ** 50), Buffer.alloc(64)]);
    await expectCorrupt(sized, { offset: 4, block: 'header', detail: /metadata block size 1125899906842624 makes the header larger than maxHeaderBytes/ });
  });

  it('overlong varints in the header', async () => {
    const count = Buffer.concat([Buffer.from('Obj\x01', 'latin1'), Buffer.alloc(12, 0x80), Buffer.alloc(64)]);
    await expectCorrupt(count, { offset: 4, block: 'header', detail: /metadata block count is a varint longer than 10 bytes/ });
    const keyLength = Buffer.concat([Buffer.from('Obj\x01', 'latin1'), varint(1), Buffer.alloc(11, 0xff), Buffer.from([0x01]), Buffer.alloc(64)]);
    await expectCorrupt(keyLength, { offset: 5, block: 'header', detail: /metadata key length is a varint longer than 10 bytes/ });
    const beyond53Bits = Buffer.concat([Buffer.from('Obj\x01', 'latin1'), varint(1), Buffer.alloc(9, 0xff), Buffer.from([0x01]), Buffer.alloc(64)]);
    await expectCorrupt(beyond53Bits, { offset: 5, block: 'header', detail: /metadata key length does not fit in 53 bits/ });
  });

  it('a metadata value past maxHeaderBytes fails at its length, before it is buffered', async () => {
    const schema = Buffer.from(predictionV1SchemaJson);
    const bytes = headerOnly({ 'avro.schema': predictionV1SchemaJson, padding: 'x'.repeat(10_000) });
    // magic, entry count, "avro.schema" and its value, "padding": then the padding's length.
    const paddingLengthAt = 4 + 1 + 1 + 11 + varint(schema.length).length + schema.length + 1 + 7;
    await expectCorrupt(bytes, {
      offset: paddingLengthAt,
      block: 'header',
      limits: { maxHeaderBytes: 4096 },
      detail: /metadata value length 10000 makes the header larger than maxHeaderBytes \(4096; raise it with --avro-max-header-mb/,
    });
  });

  it('a header of many small entries past maxHeaderBytes fails at the entry that crosses it', async () => {
    const entries: Record<string, string> = { 'avro.schema': predictionV1SchemaJson };
    for (let i = 0; i < 3000; i++) entries[`k${i}`] = '';
    const bytes = headerOnly(entries);
    // Entries after avro.schema are "k<i>" (length byte, key) then an empty value (one byte).
    let at = 4 + varint(3001).length + 1 + 11 + varint(Buffer.byteLength(predictionV1SchemaJson)).length + Buffer.byteLength(predictionV1SchemaJson);
    let crossing = -1;
    for (let i = 0; i < 3000 && crossing < 0; i++) {
      const keyLength = `k${i}`.length;
      if (at + 1 + keyLength > 8192) crossing = at;
      at += 1 + keyLength + 1;
    }
    await expectCorrupt(bytes, { offset: crossing, block: 'header', limits: { maxHeaderBytes: 8192 }, detail: /metadata key length \d makes the header larger than maxHeaderBytes \(8192;/ });
  });

  it('a header whose sync marker would end past maxHeaderBytes', async () => {
    let padding = 0;
    const sized = () => headerOnly({ 'avro.schema': predictionV1SchemaJson, padding: 'x'.repeat(padding) });
    while (sized().length < 8200) padding++;
    expect(sized().length).toBe(8200);
    await expectCorrupt(sized(), { offset: 0, block: 'header', limits: { maxHeaderBytes: 8192 }, detail: /the header is larger than maxHeaderBytes \(8192; raise it with --avro-max-header-mb/ });
  });

  it.each(['__proto__', 'toString', 'constructor', 'hasOwnProperty', 'valueOf'])('codec named %s', async (codec) => {
    const bytes = Buffer.concat([headerOnly({ 'avro.schema': predictionV1SchemaJson, 'avro.codec': codec }), rawBlock(1, Buffer.alloc(4), SYNC)]);
    await expectCorrupt(bytes, { offset: 0, block: 'header', detail: new RegExp(`unknown codec "${codec}" in avro.codec`) });
  });

  it('unknown codec', async () => {
    await expectCorrupt(headerOnly({ 'avro.schema': predictionV1SchemaJson, 'avro.codec': 'lzo' }), { offset: 0, block: 'header', detail: /unknown codec "lzo" in avro.codec, expected one of .*deflate/ });
  });
});

describe('absurd nesting', () => {
  const tooDeep = /avro.schema nests deeper than maxSchemaDepth \(128; raise it with --avro-max-schema-depth/;

  it('10 000 nested arrays', async () => {
    const schema = nest(10_000, '"long"', (inside) => `{"type":"array","items":${inside}}`);
    await expectCorrupt(headerOnly({ 'avro.schema': schema }), { offset: 0, block: 'header', detail: tooDeep });
  });

  it('10 000 nested records', async () => {
    const schema = nest(10_000, '"long"', (inside, level) => `{"type":"record","name":"R${level}","fields":[{"name":"f","type":${inside}}]}`);
    await expectCorrupt(headerOnly({ 'avro.schema': schema }), { offset: 0, block: 'header', detail: tooDeep });
  });

  it('10 000 nested unions and maps', async () => {
    const schema = nest(10_000, '"long"', (inside, level) => (level % 2 === 0 ? `["null",${inside}]` : `{"type":"map","values":${inside}}`));
    await expectCorrupt(headerOnly({ 'avro.schema': schema }), { offset: 0, block: 'header', detail: tooDeep });
  });

  it('JSON a million levels deep in an attribute costs neither stack nor seconds of parsing', async () => {
    const deep = '['.repeat(1_000_000) + ']'.repeat(1_000_000);
    const schema = predictionV1SchemaJson.replace(/^\{/, `{"x-deep":${deep},`);
    await expectCorrupt(headerOnly({ 'avro.schema': schema }), { offset: 0, block: 'header', detail: tooDeep, chunkSizes: [64 * 1024] });
  });

  it('brackets inside a string are not nesting', async () => {
    const schema = predictionV1SchemaJson.replace(/^\{/, `{"doc":${JSON.stringify('[{\\"'.repeat(50_000))},`);
    const bytes = Buffer.concat([headerOnly({ 'avro.schema': schema }), rawBlock(1, v1RecordBytes(1), SYNC)]);
    expect(await readAll(bytes, predictionV1Type)).toEqual([samplePrediction(1)]);
  });

  it('maxSchemaDepth counts levels of types: a schema exactly at the limit is read, one level more is refused', async () => {
    // PredictionEvent v1 is 3 deep (record, union, double); a field of k nested arrays of long is k + 2.
    const withMatrix = (k: number) => writerWith([{ name: 'matrix', type: JSON.parse(nest(k, '"long"', (inside) => `{"type":"array","items":${inside}}`)) as unknown, default: [] }]);
    const data = Buffer.concat([v1RecordBytes(2), varint(0)]);
    const { bytes } = oneBlockFile(withMatrix(4), 1, data);
    expect(await readAll(bytes, predictionV1Type, { limits: { maxSchemaDepth: 6 } })).toEqual([samplePrediction(2)]);
    await expectCorrupt(bytes, { offset: 0, block: 'header', limits: { maxSchemaDepth: 5 }, detail: /nests deeper than maxSchemaDepth \(5;/ });
    expect(await readAll(v1Header, predictionV1Type, { limits: { maxSchemaDepth: 3 } })).toEqual([]);
    await expectCorrupt(v1Header, { offset: 0, block: 'header', limits: { maxSchemaDepth: 2 }, detail: /nests deeper than maxSchemaDepth \(2;/ });
  });

  it('data nested deeper than the stack in a recursive writer type fails the object, not the process', async () => {
    const node = { type: 'record', name: 'Node', fields: [{ name: 'next', type: ['null', 'Node'] }] };
    const schema = writerWith([{ name: 'chain', type: node }]);
    // Each level is the union index 1 (zig-zag 0x02); the last is null (0x00).
    const data = Buffer.concat([v1RecordBytes(4), Buffer.alloc(1_000_000, 0x02), Buffer.from([0x00])]);
    const { bytes, headerBytes } = oneBlockFile(schema, 1, data);
    await expectCorrupt(bytes, {
      offset: headerBytes,
      block: 0,
      detail: /record 0 of 1, which starts at byte 0 of the block's 1000\d+ decoded bytes, cannot be decoded \(RangeError: Maximum call stack size exceeded\)/,
      chunkSizes: [64 * 1024],
    });
  });
});

describe('blocks', () => {
  const firstBlockEnd = file.blockEnds[0]!;

  it('bad sync marker after block 0', async () => {
    const bytes = Buffer.from(file.bytes);
    bytes[firstBlockEnd - 3] ^= 0xff;
    await expectCorrupt(bytes, { offset: firstBlockEnd - 16, block: 0, detail: /sync marker mismatch: expected ([0-9a-f]{2} ){15}[0-9a-f]{2}, found/ });
  });

  it('bad sync marker after a later block names that block', async () => {
    const bytes = Buffer.from(file.bytes);
    bytes[file.blockEnds[1]! - 1] ^= 0x01;
    await expectCorrupt(bytes, { offset: file.blockEnds[1]! - 16, block: 1, detail: /sync marker mismatch/ });
  });

  it("the header's own sync marker damaged", async () => {
    const bytes = Buffer.from(file.bytes);
    bytes[file.headerBytes - 1] ^= 0xff;
    await expectCorrupt(bytes, { offset: firstBlockEnd - 16, block: 0, detail: /sync marker mismatch/, chunkSizes: [1, 4096] });
  });

  it('concatenated files: a second header after the last block', async () => {
    await expectCorrupt(Buffer.concat([file.bytes, file.bytes]), {
      offset: file.bytes.length,
      block: file.blockEnds.length,
      detail: /negative block record count -40 \(the bytes are the magic of another container file: concatenated files are not valid Avro\)/,
    });
  });

  it('a block declaring more records than its bytes hold', async () => {
    const { bytes, headerBytes } = oneBlockFile(predictionV1SchemaJson, 5000, v1RecordBytes());
    await expectCorrupt(bytes, { offset: headerBytes, block: 0, detail: /block declares 5000 records but its \d+ bytes end inside record 1/ });
  });

  it('a block declaring fewer records than its bytes hold', async () => {
    const { bytes, headerBytes } = oneBlockFile(predictionV1SchemaJson, 1, Buffer.concat([v1RecordBytes(0), v1RecordBytes(1)]));
    await expectCorrupt(bytes, { offset: headerBytes, block: 0, detail: /block declares 1 records that take \d+ bytes, but it holds \d+/ });
  });

  it('a block declaring 0 records that holds bytes, in any codec', async () => {
    const plain = oneBlockFile(predictionV1SchemaJson, 0, v1RecordBytes());
    await expectCorrupt(plain.bytes, { offset: plain.headerBytes, block: 0, detail: /block declares 0 records that take 0 bytes, but it holds \d+/ });
    const deflated = oneBlockFile(predictionV1SchemaJson, 0, zlib.deflateRawSync(v1RecordBytes()), 'deflate');
    await expectCorrupt(deflated.bytes, { offset: deflated.headerBytes, block: 0, detail: /block declares 0 records that take 0 bytes, but it holds \d+/ });
    // An empty deflate stream is an empty block, as some writers flush one.
    const empty = oneBlockFile(predictionV1SchemaJson, 0, zlib.deflateRawSync(Buffer.alloc(0)), 'deflate');
    expect(await readAll(empty.bytes, predictionV1Type)).toEqual([]);
  });

  it('a record that cannot be decoded names its index and where it starts', async () => {
    // Four one-letter strings, y_pred, then y_true's union index 7, which the schema does not have.
    const bad = Buffer.concat([Buffer.from([0x02, 0x61, 0x02, 0x61, 0x02, 0x61, 0x02, 0x61]), Buffer.alloc(8), varint(7)]);
    const good = v1RecordBytes(0);
    const { bytes, headerBytes } = oneBlockFile(predictionV1SchemaJson, 2, Buffer.concat([good, bad]));
    await expectCorrupt(bytes, {
      offset: headerBytes,
      block: 0,
      detail: new RegExp(`record 1 of 2, which starts at byte ${good.length} of the block's \\d+ decoded bytes, cannot be decoded \\(invalid union index: 7\\)`),
    });
  });

  it('flipped bytes inside a deflate block', async () => {
    const bytes = Buffer.from(file.bytes);
    const middle = Math.floor((file.headerBytes + firstBlockEnd) / 2);
    for (let i = middle; i < middle + 8; i++) bytes[i] ^= 0x5a;
    await expectCorrupt(bytes, { offset: file.headerBytes, block: 0, detail: /./ });
  });

  it('a corrupt deflate stream keeps the codec message as the reason', async () => {
    const { bytes, headerBytes } = oneBlockFile(predictionV1SchemaJson, 1, Buffer.from([0xff, 0xff, 0xff, 0xff]), 'deflate');
    await expectCorrupt(bytes, { offset: headerBytes, block: 0, detail: /deflate block cannot be decompressed \(.*invalid/ });
  });

  it('overlong varints in a block header', async () => {
    const count = Buffer.concat([v1Header, Buffer.alloc(11, 0xff), Buffer.from([0x01]), Buffer.alloc(64)]);
    await expectCorrupt(count, { offset: v1Header.length, block: 0, detail: /block record count is a varint longer than 10 bytes/ });
    const size = Buffer.concat([v1Header, varint(1), Buffer.alloc(11, 0x80), Buffer.from([0x01]), Buffer.alloc(64)]);
    await expectCorrupt(size, { offset: v1Header.length, block: 0, detail: /block size is a varint longer than 10 bytes/ });
    const later = Buffer.concat([file.bytes, Buffer.alloc(11, 0xff), Buffer.from([0x01])]);
    await expectCorrupt(later, { offset: file.bytes.length, block: file.blockEnds.length, detail: /block record count is a varint longer than 10 bytes/ });
  });

  it('negative and oversized record counts and block sizes', async () => {
    const at = { offset: v1Header.length, block: 0 } as const;
    await expectCorrupt(Buffer.concat([v1Header, varint(1), varint(-5), Buffer.alloc(40)]), { ...at, detail: /negative block size -5/ });
    await expectCorrupt(Buffer.concat([v1Header, varint(-3), varint(5), Buffer.alloc(40)]), { ...at, detail: /negative block record count -3/ });
    await expectCorrupt(Buffer.concat([v1Header, rawBlock(100_000_000, Buffer.alloc(10), SYNC)]), {
      ...at,
      detail: /block declares 100000000 records, more than maxBlockRecords \(10000000; raise it with --avro-max-block-records/,
    });
    await expectCorrupt(Buffer.concat([v1Header, varint(1), varint(2 ** 40), Buffer.alloc(40)]), {
      ...at,
      detail: /block declares 1099511627776 bytes, more than maxBlockBytes \(268435456; raise it with --avro-max-block-mb/,
    });
    await expectCorrupt(Buffer.concat([v1Header, varint(1), varint(5_000_000), Buffer.alloc(40)]), {
      ...at,
      limits: { maxBlockBytes: 1_000_000 },
      detail: /block declares 5000000 bytes, more than maxBlockBytes \(1000000;/,
    });
  });

  it('decompression bomb: 100 MiB of zeros in a small deflate block', async () => {
    const bomb = zlib.deflateRawSync(Buffer.alloc(100 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(200_000);
    const { bytes, headerBytes } = oneBlockFile(predictionV1SchemaJson, 1, bomb, 'deflate');
    await expectCorrupt(bytes, {
      offset: headerBytes,
      block: 0,
      limits: { maxDecompressedBlockBytes: 1024 * 1024 },
      detail: /block decompresses to more than maxDecompressedBlockBytes \(1048576; raise it with --avro-max-inflated-block-mb/,
      chunkSizes: [64 * 1024],
    });
  });
});

describe('collections and strings', () => {
  /** One record of a writer with extra fields: v1 record bytes followed by `extra`. */
  function fileWithExtra(extraFields: unknown[], extra: Buffer, codec = 'null'): { bytes: Buffer; headerBytes: number } {
    const data = Buffer.concat([v1RecordBytes(5), extra]);
    return oneBlockFile(writerWith(extraFields), 1, codec === 'deflate' ? zlib.deflateRawSync(data) : data, codec);
  }

  const itemsLimit = /more than maxCollectionItems \(10000000\).*raise it with --avro-max-items if the object is genuine/;

  it.each([
    ['array<long>', { type: 'array', items: 'long' }],
    ['array<null>, whose items take no bytes', { type: 'array', items: 'null' }],
    ['map<string>', { type: 'map', values: 'string' }],
  ])('a block claiming 10^8 items of %s is refused before anything is allocated', async (_, type) => {
    const { bytes, headerBytes } = fileWithExtra([{ name: 'tags', type }], Buffer.concat([varint(100_000_000), Buffer.alloc(32)]));
    const before = process.memoryUsage().heapUsed;
    await expectCorrupt(bytes, { offset: headerBytes, block: 0, detail: new RegExp(`record 0 of 1, .*block declares 100000000 items, ${itemsLimit.source}`) });
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(256 * 1024 * 1024);
  });

  it('2 * 10^7 array items that are really there (20 MB of zeros, deflated) are refused by maxCollectionItems', async () => {
    const { bytes, headerBytes } = fileWithExtra([{ name: 'tags', type: { type: 'array', items: 'int' } }], Buffer.concat([varint(20_000_000), Buffer.alloc(20_000_000), varint(0)]), 'deflate');
    expect(bytes.length).toBeLessThan(100_000);
    const before = process.memoryUsage().heapUsed;
    await expectCorrupt(bytes, { offset: headerBytes, block: 0, detail: new RegExp(`block declares 20000000 items, ${itemsLimit.source}`), chunkSizes: [64 * 1024] });
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(100 * 1024 * 1024);
  });

  it('an item count the remaining bytes cannot hold, with a negative count and its byte size', async () => {
    const doubles = fileWithExtra([{ name: 'xs', type: { type: 'array', items: 'double' } }], Buffer.concat([varint(-1000), varint(8000), Buffer.alloc(100)]));
    await expectCorrupt(doubles.bytes, { offset: doubles.headerBytes, block: 0, detail: /array block claims 1000 items of at least 8 bytes but only \d+ bytes remain/ });
    const map = fileWithExtra([{ name: 'm', type: { type: 'map', values: 'long' } }], Buffer.concat([varint(5000), Buffer.alloc(100)]));
    await expectCorrupt(map.bytes, { offset: map.headerBytes, block: 0, detail: /map block claims 5000 items of at least 1 bytes but only \d+ bytes remain/ });
  });

  it('maxCollectionItems bounds one block, all collections of one record, and zero-byte items of a batch', async () => {
    const limits: Partial<DecodeLimits> = { maxCollectionItems: 1000 };
    const twoArrays = [
      { name: 'a', type: { type: 'array', items: 'long' } },
      { name: 'b', type: { type: 'array', items: 'long' } },
    ];
    const array = (n: number) => Buffer.concat([varint(n), Buffer.alloc(n), varint(0)]);
    // The record's segment_keys map holds 3 entries: 3 + 2 * 498 is the most it may hold.
    const within = fileWithExtra(twoArrays, Buffer.concat([array(498), array(499)]));
    expect(await readAll(within.bytes, predictionV1Type, { limits })).toEqual([samplePrediction(5)]);
    const full = fileWithExtra(twoArrays, Buffer.concat([array(498), array(500)]));
    await expectCorrupt(full.bytes, { offset: full.headerBytes, block: 0, limits, detail: /array block declares 500 items, which makes the record's arrays and maps hold more than maxCollectionItems \(1000\) in total/ });
    const oneBlock = fileWithExtra(twoArrays, Buffer.concat([array(1001), array(0)]));
    await expectCorrupt(oneBlock.bytes, { offset: oneBlock.headerBytes, block: 0, limits, detail: /array block declares 1001 items, more than maxCollectionItems \(1000\)/ });
    const total = fileWithExtra(twoArrays, Buffer.concat([array(600), array(600)]));
    await expectCorrupt(total.bytes, { offset: total.headerBytes, block: 0, limits, detail: /array block declares 600 items, which makes the record's arrays and maps hold more than maxCollectionItems \(1000\) in total/ });
    // Items of null take no bytes: 600 per record is fine alone, not twice in one batch of records.
    const nulls = writerWith([{ name: 'n', type: { type: 'array', items: 'null' } }]);
    const record = Buffer.concat([v1RecordBytes(6), varint(600), varint(0)]);
    const single = oneBlockFile(nulls, 1, record);
    expect(await readAll(single.bytes, predictionV1Type, { limits })).toEqual([samplePrediction(6)]);
    const twice = oneBlockFile(nulls, 2, Buffer.concat([record, record]));
    await expectCorrupt(twice.bytes, { offset: twice.headerBytes, block: 0, limits, detail: /record 1 of 2, .*array block declares 600 items of a type that takes no bytes, more than maxCollectionItems \(1000\) of them in one batch/ });
  });

  it('a string length of 1 GiB in a block of a few bytes allocates nothing', async () => {
    // prediction_id's length varint claims 2^30 bytes.
    const data = Buffer.concat([varint(2 ** 30), Buffer.from('abc')]);
    const { bytes, headerBytes } = oneBlockFile(predictionV1SchemaJson, 1, data);
    const before = process.memoryUsage().arrayBuffers;
    await expectCorrupt(bytes, { offset: headerBytes, block: 0, detail: /record 0 of 1, .*cannot be decoded \(string claims 1073741824 bytes but only 3 remain in the block\)/ });
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
  });

  it.each([
    ['a map key', [{ name: 'm', type: { type: 'map', values: 'long' } }], Buffer.concat([varint(1), varint(2 ** 40), Buffer.alloc(8)]), /string claims 1099511627776 bytes/],
    ['a skipped string', [{ name: 's', type: 'string' }], Buffer.concat([varint(2 ** 40), Buffer.alloc(8)]), /string claims 1099511627776 bytes/],
    ['a bytes value', [{ name: 'b', type: 'bytes' }], Buffer.concat([varint(2 ** 40), Buffer.alloc(8)]), /bytes claims 1099511627776 bytes/],
    ['a negative string length', [{ name: 's', type: 'string' }], Buffer.concat([varint(-7), Buffer.alloc(8)]), /negative string length -7/],
    ['a negative bytes length', [{ name: 'b', type: 'bytes' }], Buffer.concat([varint(-7), Buffer.alloc(8)]), /negative bytes length -7/],
  ])('a huge or negative length in %s', async (_, fields, extra, detail) => {
    const { bytes, headerBytes } = fileWithExtra(fields, extra);
    await expectCorrupt(bytes, { offset: headerBytes, block: 0, detail });
  });

  it('maxStringBytes refuses a string or bytes value that is really there but too long, naming the flag', async () => {
    const limits: Partial<DecodeLimits> = { maxStringBytes: 1024 };
    const long = { ...samplePrediction(7), prediction_id: 'x'.repeat(2000) };
    const strings = encodeFile([samplePrediction(1), long], { type: predictionV1Type, codec: 'null' });
    await expectCorrupt(strings.bytes, {
      offset: strings.headerBytes,
      block: 0,
      limits,
      detail: /record 1 of 2, .*\(string of 2000 bytes is longer than maxStringBytes \(1024\)\) \(raise it with --avro-max-string-mb if the object is genuine\)/,
    });
    expect(await readAll(strings.bytes, predictionV1Type, { limits: { maxStringBytes: 2000 } })).toEqual([samplePrediction(1), long]);
    const blob = fileWithExtra([{ name: 'b', type: 'bytes' }], Buffer.concat([varint(1500), Buffer.alloc(1500)]));
    await expectCorrupt(blob.bytes, { offset: blob.headerBytes, block: 0, limits, detail: /bytes of 1500 bytes is longer than maxStringBytes \(1024\)/ });
  });

  it('a corrupt map count of 2^62 fails at once instead of spinning', async () => {
    const valid = predictionV1Type.toBuffer({ ...samplePrediction(0), segment_keys: {} });
    const data = Buffer.concat([valid.subarray(0, valid.length - 1), Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])]);
    const { bytes, headerBytes } = oneBlockFile(predictionV1SchemaJson, 1, data);
    await expectCorrupt(bytes, { offset: headerBytes, block: 0, detail: /record 0 of 1, .*map block declares \d+ items, more than maxCollectionItems/ });
  });

  it('a writer whose strings and collections are read, not skipped, is bounded the same way', async () => {
    const richSchema = writerWith([{ name: 'tags', type: { type: 'array', items: 'string' } }]);
    const rich = parseAvroType(richSchema);
    const record = { ...samplePrediction(8), tags: ['a', 'b'] };
    const data = Buffer.concat([rich.toBuffer(record).subarray(0, -1 - 1 - 2 * 2), varint(2), varint(2 ** 40)]);
    const { bytes, headerBytes } = oneBlockFile(richSchema, 1, data);
    await expectCorrupt(bytes, { offset: headerBytes, block: 0, readerType: rich, detail: /string claims 1099511627776 bytes/ });
    const good = oneBlockFile(richSchema, 1, rich.toBuffer(record));
    expect(await readAll(good.bytes, rich)).toEqual([record]);
  });
});

describe('truncated anywhere, trailing garbage', () => {
  /** Expected failure of `bytes` cut at `cut`, given where its header and blocks end. */
  function cutExpectation(cut: number, headerBytes: number, blockEnds: number[]): { block: number | 'header'; offset: number; detail: RegExp } {
    if (cut === 0) return { block: 'header', offset: 0, detail: /the object is empty \(0 bytes\)/ };
    if (cut < headerBytes) return { block: 'header', offset: cut, detail: new RegExp(`the file ends after ${cut} bytes, inside its header`) };
    const block = blockEnds.findIndex((end) => cut < end);
    const start = block === 0 ? headerBytes : blockEnds[block - 1]!;
    return { block, offset: start, detail: /the file ends .* (inside a block header|into a block of \d+ bytes)/ };
  }

  it.each(['null', 'deflate'])('a %s file cut at every byte fails naming where, except at block boundaries', async (codec) => {
    const small = samplePredictions(12);
    const cutFile = encodeFile(small, { type: predictionV1Type, codec, blockBytes: 300 });
    expect(cutFile.blockEnds.length).toBeGreaterThanOrEqual(3);
    const boundaries = new Map<number, number>([[cutFile.headerBytes, 0]]);
    cutFile.blockEnds.forEach((end, i) => boundaries.set(end, cutFile.blockRecordCounts.slice(0, i + 1).reduce((a, b) => a + b)));
    for (let cut = 0; cut < cutFile.bytes.length; cut++) {
      const truncated = cutFile.bytes.subarray(0, cut);
      const chunkSize = [5, 64, 64 * 1024][cut % 3]!;
      const valid = boundaries.get(cut);
      if (valid !== undefined) {
        // Avro files have no trailer: a cut right after a sync marker is a valid, shorter file,
        // which only the object's listed size (expectedBytes) tells apart.
        expect(await readAll(truncated, predictionV1Type, { chunkSize })).toEqual(small.slice(0, valid));
        const error = await failure(() => readAll(truncated, predictionV1Type, { uri: KEY, chunkSize, expectedBytes: cutFile.bytes.length }));
        expect(error.code).toBe('E_STORAGE');
        expect(error.message).toContain(`object "${KEY}" ended after ${cut} bytes but was listed with ${cutFile.bytes.length}`);
        continue;
      }
      await expectCorrupt(truncated, { ...cutExpectation(cut, cutFile.headerBytes, cutFile.blockEnds), chunkSizes: [chunkSize] });
    }
  });

  it('trailing garbage after the last block', async () => {
    const at = { offset: file.bytes.length, block: file.blockEnds.length } as const;
    await expectCorrupt(Buffer.concat([file.bytes, Buffer.from('garbage!')]), { ...at, detail: /block/ });
    await expectCorrupt(Buffer.concat([file.bytes, Buffer.from([0x02])]), { ...at, detail: /inside a block header \(truncated object, or trailing bytes 02\)/ });
    // 18 zero bytes read as an empty block (count 0, size 0) whose sync marker is wrong.
    await expectCorrupt(Buffer.concat([file.bytes, Buffer.alloc(18)]), { offset: file.bytes.length + 2, block: file.blockEnds.length, detail: /sync marker mismatch/ });
  });

  it('a valid block beyond the listed size fails as a changed object before its records are used', async () => {
    const listed = encodeFile(samplePredictions(5), { type: predictionV1Type, codec: 'null' });
    // The same last block again: a longer file that is valid on its own.
    const lastBlock = listed.bytes.subarray(listed.headerBytes);
    const grown = Buffer.concat([listed.bytes, lastBlock]);
    expect(await readAll(grown, predictionV1Type)).toHaveLength(10);
    const seen: unknown[] = [];
    const error = await failure(async () => {
      for await (const block of decodeContainer(chunksOf(grown, 16), { uri: KEY, readerType: predictionV1Type, expectedBytes: listed.bytes.length })) seen.push(...block);
    });
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain(`object "${KEY}" holds more than the ${listed.bytes.length} bytes it was listed with`);
    expect(seen).toHaveLength(5);
  });
});

describe('limits', () => {
  it('every limit has a default far above what writers produce', () => {
    expect(defaultDecodeLimits).toEqual({
      maxHeaderBytes: 16 * 1024 * 1024,
      maxBlockBytes: 256 * 1024 * 1024,
      maxBlockRecords: 10_000_000,
      maxDecompressedBlockBytes: 512 * 1024 * 1024,
      maxStringBytes: 64 * 1024 * 1024,
      maxCollectionItems: 10_000_000,
      maxSchemaDepth: 128,
    });
    expect(Object.isFrozen(defaultDecodeLimits)).toBe(true);
  });

  it('a Type decoding outside decodeContainer keeps its bounds (no budget left over from an object)', async () => {
    const richSchema = writerWith([{ name: 'tags', type: { type: 'array', items: 'long' } }]);
    const rich: Type = parseAvroType(richSchema);
    const record = { ...samplePrediction(9), tags: Array.from({ length: 2000 }, (_, i) => i) };
    const { bytes } = oneBlockFile(richSchema, 1, rich.toBuffer(record));
    await expectCorrupt(bytes, { block: 0, readerType: rich, limits: { maxCollectionItems: 100 }, detail: /more than maxCollectionItems \(100\)/ });
    // The failed object's small limit is not in force afterwards.
    for (let i = 0; i < 3; i++) expect(rich.fromBuffer(rich.toBuffer(record))).toEqual(record);
  });
});
