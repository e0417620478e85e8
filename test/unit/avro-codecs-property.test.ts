import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { xz } from '@napi-rs/lzma';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32, portableCrc32 } from '../../src/avro/codec-frames.js';
import { writableCodecs } from '../../src/avro/codecs.js';
import { bzip2, encodeWithCodec, hasBzip2Program, hasXzProgram, predictionV1Type, schemaFileVersions, xzProgram } from '../helpers/avro-codec-helpers.js';
import { encodeFile, readAll } from '../helpers/avro-helpers.js';

/** Schema JSON as the .avsc files write it. */
type SchemaJson = string | SchemaJson[] | { type: SchemaJson; fields?: { name: string; type: SchemaJson }[]; values?: SchemaJson; logicalType?: string };

// Grapheme strings: valid Unicode only (a lone surrogate cannot be UTF-8 encoded, by any writer).
// "__proto__" is left out as a map key: avsc decodes a map into a plain object, where that key is
// the prototype setter, so it is dropped on read whatever the codec.
const text = fc.string({ unit: 'grapheme', maxLength: 24 });
const mapKey = text.filter((key) => key !== '__proto__');

/** A fast-check arbitrary of the values of a schema, from its JSON (the types the package schemas use). */
function arbitraryOf(schema: SchemaJson): fc.Arbitrary<unknown> {
  if (Array.isArray(schema)) return fc.oneof(...schema.map(arbitraryOf));
  if (typeof schema === 'object') {
    if (schema.type === 'record') {
      return fc.record(Object.fromEntries(schema.fields!.map((field) => [field.name, arbitraryOf(field.type)])));
    }
    if (schema.type === 'map') return fc.dictionary(mapKey, arbitraryOf(schema.values!), { maxKeys: 4, noNullPrototype: true });
    return arbitraryOf(schema.type);
  }
  switch (schema) {
    case 'null':
      return fc.constant(null);
    case 'string':
      return text;
    case 'double':
      return fc.double(); // NaN, ±Infinity and -0 included: Avro doubles are 8 bytes, bit for bit
    case 'long':
      // avsc 5.7 holds longs as JS numbers and its zig-zag encoding is exact within ±2^52 only
      // (-(2^52) - 1 is written as 2^52): beyond that is not a codec matter.
      return fc.integer({ min: -(2 ** 52), max: 2 ** 52 });
    default:
      throw new Error(`no arbitrary for Avro type ${JSON.stringify(schema)}: add one to arbitraryOf`);
  }
}

/** Every version of the input schemas (SPEC §2), with an arbitrary of its records. */
const versions = (['prediction', 'label'] as const).flatMap((name) =>
  schemaFileVersions(name).map(({ version, type }) => ({
    label: `${name} v${version}`,
    type,
    records: fc.array(arbitraryOf(type.schema() as SchemaJson), { minLength: 1, maxLength: 30 }),
  })),
);

describe('random records of every schema version round-trip through every codec', () => {
  it('covers the prediction and label schemas', () => {
    expect(versions.map((v) => v.label)).toEqual(expect.arrayContaining(['prediction v1', 'label v1']));
  });

  describe.each(versions)('$label', ({ type, records }) => {
    it.each(writableCodecs())('written and read in %s', async (codec) => {
      await fc.assert(
        fc.asyncProperty(records, fc.integer({ min: 32, max: 2048 }), fc.integer({ min: 1, max: 500 }), async (values, blockBytes, chunkSize) => {
          const file = encodeFile(values, { type, codec, blockBytes });
          expect(await readAll(file.bytes, type, { chunkSize })).toEqual(values);
        }),
        { numRuns: 40, seed: 20260301 },
      );
    });

    /** Files in the codecs the job only reads, made here: records serialized by us, blocks compressed by `compress`. */
    const readBack = (codec: string, compress: (data: Buffer) => Buffer, numRuns: number) =>
      fc.assert(
        fc.asyncProperty(records, fc.integer({ min: 1, max: 12 }), async (values, recordsPerBlock) => {
          const bytes = encodeWithCodec(type, values, codec, compress, recordsPerBlock);
          expect(await readAll(bytes, type, { chunkSize: 777 })).toEqual(values);
        }),
        { numRuns, seed: 20260302 },
      );

    it('read in xz (blocks compressed by @napi-rs/lzma: stored LZMA2 chunks, no check)', () => readBack('xz', (data) => xz.compressSync(data), 20));

    it.skipIf(!hasXzProgram)('read in xz (blocks compressed by the Debian xz program; skipped without it: apt-get install xz-utils)', () =>
      readBack('xz', xzProgram, 10),
    );

    it.skipIf(!hasBzip2Program)('read in bzip2 (blocks compressed by the Debian bzip2 program; skipped without it: apt-get install bzip2)', () =>
      readBack('bzip2', bzip2, 10),
    );
  });
});

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'avro');
/** Files of every codec written by Python, Java and C (the interop fixtures): damaged below. */
const codecFiles = fs.readdirSync(fixtures).filter((file) => /^predictions-(python|java|c)-(?!lzma|legacy).*\.avro$/.test(file));

describe('damaged files of every codec fail only as corrupt objects (SPEC §1 --on-corrupt)', () => {
  it.each(codecFiles)('random byte changes in %s', async (name) => {
    const original = fs.readFileSync(path.join(fixtures, name));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ at: fc.nat({ max: original.length - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 400 }),
        async (changes, chunkSize) => {
          const bytes = Buffer.from(original);
          for (const { at, value } of changes) bytes[at] = value;
          try {
            const read = await readAll(bytes, predictionV1Type, { chunkSize, limits: { maxDecompressedBlockBytes: 1 << 20 } });
            expect(read.length).toBeLessThanOrEqual(24);
          } catch (error) {
            expect(['E_CORRUPT_OBJECT', 'E_SCHEMA_INCOMPATIBLE']).toContain((error as { code?: string }).code);
          }
        },
      ),
      { numRuns: 150, seed: 20260303 },
    );
  });
});

describe('CRC32 of snappy blocks', () => {
  it('the portable CRC-32 and the one in use equal zlib.crc32 on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        expect(portableCrc32(bytes)).toBe(zlib.crc32(bytes));
        expect(crc32(bytes)).toBe(zlib.crc32(bytes));
      }),
      { numRuns: 300, seed: 20260304 },
    );
  });
});
