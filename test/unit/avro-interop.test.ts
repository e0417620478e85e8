import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { labelType, predictionType } from '../../src/avro/schemas.js';
import { readAll } from './avro-helpers.js';
import { decodeContainer } from '../../src/avro/container-reader.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'avro');
const fixture = (name: string): Buffer => fs.readFileSync(path.join(fixtures, name));

describe('files written by Apache Avro (Python 1.11.1), see test/fixtures/avro/README.md', () => {
  it('reads PredictionEvents in several deflate blocks', async () => {
    const expected = Array.from({ length: 12 }, (_, i) => ({
      prediction_id: `p-${i}`,
      model_name: 'churn',
      model_version: `v${i % 2}`,
      featureset_version: 'fs-1',
      y_pred: i * 0.5,
      y_true: i % 2 ? null : i * 0.25,
      residual: i % 2 ? null : 0 - i * 0.25, // Python writes 0.0 for i = 0, not -0.0
      inference_ts: 1_767_225_600_000_000 + i * 1_000_001,
      segment_keys: { region: i % 3 ? 'eu' : 'us', device: 'web' },
    }));
    const blocks: number[] = [];
    let codec = '';
    const source = (async function* () {
      yield fixture('predictions-python-deflate.avro');
    })();
    for await (const block of decodeContainer(source, {
      key: 'predictions-python-deflate.avro',
      readerType: predictionType,
      onHeader: (header) => (codec = header.codec),
    })) {
      blocks.push(block.length);
    }
    expect(codec).toBe('deflate');
    expect(blocks).toEqual([5, 5, 2]);
    expect(await readAll(fixture('predictions-python-deflate.avro'), predictionType, { chunkSize: 7 })).toEqual(expected);
  });

  it('resolves an older producer schema (other name, float y_pred, extra field, missing fields)', async () => {
    expect(await readAll(fixture('predictions-python-legacy-null.avro'), predictionType)).toEqual(
      [0, 1, 2].map((i) => ({
        prediction_id: `legacy-${i}`,
        model_name: 'ltv',
        model_version: 'v1',
        featureset_version: 'fs-0',
        y_pred: 1.5 * i,
        y_true: i === 0 ? null : i,
        residual: null,
        inference_ts: 1_767_225_600_000_000 + i,
        segment_keys: {},
      })),
    );
  });

  it('reads a header-only file as 0 records', async () => {
    expect(await readAll(fixture('labels-python-header-only.avro'), labelType)).toEqual([]);
  });
});
