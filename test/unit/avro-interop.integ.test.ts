import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { writableCodecs } from '../../src/avro/codecs.js';
import { decodeContainer } from '../../src/avro/container-reader.js';
import { labelType, predictionType } from '../../src/avro/schemas.js';
import { predictionV1Type } from '../helpers/avro-codec-helpers.js';
import { chunksOf, encodeFile, failure, readAll, samplePredictions } from '../helpers/avro-helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'avro');
const fixture = (name: string): Buffer => fs.readFileSync(path.join(fixtures, name));

/** The 12 PredictionEvents (schemas/prediction/v1.avsc) every predictions-{python,java,c}-<codec>.avro holds. */
const expected = Array.from({ length: 12 }, (_, i) => ({
  prediction_id: `p-${i}`,
  model_name: 'churn',
  model_version: `v${i % 2}`,
  featureset_version: 'fs-1',
  y_pred: i * 0.5,
  y_true: i % 2 ? null : i * 0.25,
  residual: i % 2 ? null : 0 - i * 0.25, // the writers write 0.0 for i = 0, not -0.0
  inference_ts: 1_767_225_600_000_000 + i * 1_000_001,
  segment_keys: { region: i % 3 ? 'eu' : 'us', device: 'web' },
}));

/** The header codec and the record count of each block, as our reader sees them. */
async function framing(name: string): Promise<{ codec: string; blocks: number[] }> {
  const blocks: number[] = [];
  let codec = '';
  let current = -1;
  const source = chunksOf(fixture(name), 97);
  for await (const batch of decodeContainer(source, {
    uri: name,
    readerType: predictionV1Type,
    onHeader: (header) => (codec = header.codec),
    onProgress: () => (current = blocks.push(0) - 1),
  })) {
    blocks[current]! += batch.length;
  }
  // onProgress also fires once after the header, before any block.
  return { codec, blocks: blocks.filter((count) => count > 0) };
}

/**
 * Every codec file written by another Avro implementation: [file, codec in its header, records per block].
 * Python and Java end a block every 5 records; avromod rewrites a file into one block.
 */
const codecFixtures: [string, string, number[]][] = [
  ['predictions-python-null.avro', 'null', [5, 5, 2]],
  ['predictions-python-deflate.avro', 'deflate', [5, 5, 2]],
  ['predictions-python-snappy.avro', 'snappy', [5, 5, 2]],
  ['predictions-python-zstandard.avro', 'zstandard', [5, 5, 2]],
  ['predictions-python-zstandard-streamed.avro', 'zstandard', [5, 5, 2]],
  ['predictions-python-bzip2.avro', 'bzip2', [5, 5, 2]],
  ['predictions-java-null.avro', 'null', [5, 5, 2]],
  ['predictions-java-deflate.avro', 'deflate', [5, 5, 2]],
  ['predictions-java-snappy.avro', 'snappy', [5, 5, 2]],
  ['predictions-java-bzip2.avro', 'bzip2', [5, 5, 2]],
  ['predictions-java-xz.avro', 'xz', [5, 5, 2]],
  ['predictions-c-null.avro', 'null', [12]],
  ['predictions-c-deflate.avro', 'deflate', [12]],
  ['predictions-c-snappy.avro', 'snappy', [12]],
];

describe('files written by Apache Avro Python 1.11.1, Java 1.8.2 and C 1.11.1, see test/fixtures/avro/README.md', () => {
  it('cover every codec of Avro 1.11, each written by at least one other implementation', () => {
    expect([...new Set(codecFixtures.map(([, codec]) => codec))].sort()).toEqual(['bzip2', 'deflate', 'null', 'snappy', 'xz', 'zstandard']);
    const listed = new Set([...codecFixtures.map(([file]) => file), 'predictions-c-lzma.avro', 'predictions-python-legacy-null.avro', 'labels-python-header-only.avro']);
    expect(fs.readdirSync(fixtures).filter((file) => file.endsWith('.avro')).sort()).toEqual([...listed].sort());
  });

  it.each(codecFixtures)('%s: %s blocks of %j records, read exactly', async (name, codec, blocks) => {
    expect(await framing(name)).toEqual({ codec, blocks });
    expect(await readAll(fixture(name), predictionV1Type, { uri: name, chunkSize: 61 })).toEqual(expected);
    // The job's reader type (the latest PredictionEvent) resolves them too.
    expect(await readAll(fixture(name), predictionType, { uri: name })).toHaveLength(12);
  });

  it('refuses avromod --codec=lzma (Avro C raw LZMA2, not an Avro codec) as a corrupt object naming it', async () => {
    const key = 'predictions/dt=2026-01-01/predictions-c-lzma.avro';
    const error = await failure(() => readAll(fixture('predictions-c-lzma.avro'), predictionV1Type, { uri: key }));
    expect(error.code).toBe('E_CORRUPT_OBJECT');
    expect(error.context).toEqual({ uri: key, offset: 0 });
    expect(error.message).toContain('unknown codec "lzma" in avro.codec');
  });

  it('resolves an older producer schema (other name, float y_pred, extra field, missing fields)', async () => {
    expect(await readAll(fixture('predictions-python-legacy-null.avro'), predictionV1Type)).toEqual(
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

/** Our output in every --codec, several blocks each, in a folder the other implementations read. */
const written = (() => {
  const records = samplePredictions(60);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avro-interop-'));
  const files = writableCodecs().map((codec) => {
    const file = path.join(dir, `predictions-${codec}.avro`);
    const encoded = encodeFile(records, { type: predictionV1Type, codec, blockBytes: 1500, metadata: { 'model_metrics.stage': 'preliminary' } });
    fs.writeFileSync(file, encoded.bytes);
    return { codec, file, blocks: encoded.blockEnds.length };
  });
  return { records, dir, files };
})();

afterAll(() => fs.rmSync(written.dir, { recursive: true, force: true }));

const PYTHON = '/usr/bin/python3';
const pythonAvro = spawnSync(PYTHON, ['-c', 'import avro, snappy, zstandard'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!pythonAvro)(
  `files we write are read by Apache Avro Python (skipped without ${PYTHON} and its avro, snappy, zstandard modules: apt-get install python3-avro python3-snappy python3-zstandard)`,
  () => {
    it('every --codec, record for record', () => {
      const run = spawnSync(PYTHON, [path.join(fixtures, 'read_back.py'), ...written.files.map((f) => f.file)], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const results = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { file: string; codec: string; records: unknown[] });
      expect(results.map((r) => r.codec)).toEqual(written.files.map((f) => f.codec));
      for (const { blocks } of written.files) expect(blocks).toBeGreaterThan(3);
      for (const result of results) expect(result.records).toEqual(written.records);
    });
  },
);

const avrocat = spawnSync('avrocat', ['--help'], { stdio: 'ignore' }).error === undefined;

/** avrocat prints a union value as {"branch": value}; the records we wrote hold them plain. */
function unwrapUnions(record: Record<string, unknown>): Record<string, unknown> {
  const plain: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record)) {
    plain[name] = name === 'y_true' || name === 'residual' ? (value === null ? null : (value as { double: number }).double) : value;
  }
  return plain;
}

describe.skipIf(!avrocat)('files we write are read by Apache Avro C (skipped without avrocat: apt-get install avro-bin)', () => {
  // Avro C 1.11.1 has null, deflate and snappy (and its own lzma), not zstandard.
  it.each(['null', 'deflate', 'snappy'])('%s, record for record', (codec) => {
    const { file } = written.files.find((f) => f.codec === codec)!;
    const run = spawnSync('avrocat', [file], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const records = run.stdout.trim().split('\n').map((line) => unwrapUnions(JSON.parse(line) as Record<string, unknown>));
    expect(records).toEqual(written.records);
  });
});
