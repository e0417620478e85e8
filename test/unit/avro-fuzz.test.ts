import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { predictionType } from '../../src/avro/schemas.js';
import { encodeFile, readAll, samplePredictions } from './avro-helpers.js';

const records = samplePredictions(30);

describe('damaged files never escape as anything but our errors', () => {
  it.each(['null', 'deflate'])('random byte changes in a %s file', async (codec) => {
    const file = encodeFile(records, { type: predictionType, codec, blockBytes: 600 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ at: fc.nat({ max: file.bytes.length - 1 }), value: fc.integer({ min: 0, max: 255 }) }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.integer({ min: 1, max: 300 }),
        async (changes, chunkSize) => {
          const bytes = Buffer.from(file.bytes);
          for (const { at, value } of changes) bytes[at] = value;
          try {
            const read = await readAll(bytes, predictionType, { chunkSize });
            expect(read.length).toBeLessThanOrEqual(records.length * 2);
          } catch (error) {
            expect(['E_CORRUPT_OBJECT', 'E_SCHEMA_INCOMPATIBLE']).toContain((error as { code?: string }).code);
          }
        },
      ),
      { numRuns: 400, seed: 20260101 },
    );
  });
});
