/**
 * The worker pool changes where the work runs, never the bytes (issue 9): curated and metrics
 * files are identical for `--workers 0` (everything on the main thread, the release's path), 1 and
 * 4, on a generated day mixed with the interop fixtures (every input codec and writer: Python,
 * Java, C) and objects of every schema variant (v1 read through the alias, v2, a newer producer
 * with extra fields, another record name), for every output codec. A corrupt block decoded in a
 * worker fails exactly as on the main thread: the same E_CORRUPT_OBJECT, URI and offset.
 * Needs a fresh `dist/` (`npx tsc -p tsconfig.json`), like every CLI test.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Type } from 'avsc';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAvroType } from '../../src/avro/avro-types.js';
import { predictionType } from '../../src/avro/schemas.js';
import { generateSample } from '../../src/demo/generate.js';
import { type CliResult, avroFile, cliEnv, describeRun, localRoot, runCli, tempDirectory } from '../helpers/cli.js';
import { predictionV1SchemaJson, predictionV1Type, samplePrediction } from '../helpers/avro-helpers.js';

const DAY = '2026-03-02';
const AS_OF = '2026-03-03T06:00:00Z';
const FIXTURES = fileURLToPath(new URL('../fixtures/avro/', import.meta.url));

let base: { path: string; remove: () => Promise<void> };
const outputs: Array<{ path: string; remove: () => Promise<void> }> = [];

function cli(args: readonly string[]): Promise<CliResult> {
  return runCli(args, cliEnv(inject('s3Endpoint')));
}

/** Every file under a folder, by relative path, with its bytes. */
async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch {
    return files;
  }
  for (const entry of entries) {
    if (!entry.isFile() || entry.name === '_SUCCESS') continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path), await readFile(path));
  }
  return files;
}

/** A newer producer's schema: v1 plus two fields the reader does not know. */
const newerProducer: Type = parseAvroType({
  ...(JSON.parse(predictionV1SchemaJson) as Record<string, unknown>),
  fields: [
    ...(JSON.parse(predictionV1SchemaJson) as { fields: unknown[] }).fields,
    { name: 'host', type: 'string', default: '' },
    { name: 'request_latency_ms', type: ['null', 'double'], default: null },
  ],
});
/** The same fields under another record name and namespace (SPEC §2: names need not match). */
const otherName: Type = parseAvroType({ ...(JSON.parse(predictionV1SchemaJson) as Record<string, unknown>), name: 'Scored', namespace: 'com.example.other' });

function predictions(from: number, count: number, extra: (i: number) => Record<string, unknown> = () => ({})): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    const p = samplePrediction(i);
    // Inside the day, some ids shared with the generated sample's (duplicates across objects).
    return { ...p, inference_ts: Date.parse(`${DAY}T00:00:00Z`) * 1000 + i * 3_000_000, ...extra(i) };
  });
}

/**
 * SHA-256 over the curated and metrics files (sorted paths and bytes) that the release before the
 * worker pool writes for this test's inputs (`--codec deflate`): commit 2b23727 for the curated files,
 * and since metrics v2 (OUTPUT_REVISION 2) commit 9af77cd, metrics v2 without the pool, checked file
 * by file with RELEASE_CLI; OUTPUT_REVISION 3 (duplicate labels of invalid predictions) left these
 * inputs' bytes as they were, since they hold no invalid prediction with several usable labels. It pins "the same
 * bytes as the release" on a fresh clone. A change that alters the output on purpose (a new
 * schema version, OUTPUT_REVISION) updates it: rerun with RELEASE_CLI=<that release's
 * bin/model-metrics.js>, which also compares the files one by one.
 */
const RELEASE_DIGEST = 'a48391a6ea9c4b83e82033e1d20463a57dbe58b7ed7d4f4265cffb117f078204';

function digestOf(files: Map<string, Buffer>): string {
  const hash = createHash('sha256');
  for (const path of [...files.keys()].sort()) hash.update(`${path}\0`).update(files.get(path)!);
  return hash.digest('hex');
}

function runArgs(outDir: string, flags: readonly string[]): string[] {
  return [
    'run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--json', '--part-size-mb', '1',
    '--root', base.path, '--curated', join(outDir, 'curated'), '--metrics', join(outDir, 'metrics'), '--alerts-dataset', join(outDir, 'alerts'),
    ...flags,
  ];
}

async function outputFiles(outDir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const dataset of ['curated', 'metrics']) for (const [path, bytes] of await filesOf(join(outDir, dataset))) files.set(`${dataset}/${path}`, bytes);
  return files;
}

/** Runs the day into its own output folders and returns every curated and metrics file. */
async function runWith(flags: readonly string[]): Promise<{ result: CliResult; files: Map<string, Buffer> }> {
  const out = await tempDirectory('workers-out');
  outputs.push(out);
  const result = await cli(runArgs(out.path, flags));
  return { result, files: await outputFiles(out.path) };
}

function expectSameFiles(actual: Map<string, Buffer>, expected: Map<string, Buffer>): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  const differing = [...expected].filter(([path, bytes]) => !actual.get(path)!.equals(bytes)).map(([path]) => path);
  expect(differing).toEqual([]);
}

beforeAll(async () => {
  base = await tempDirectory('workers-base');
  const root = localRoot(base.path);
  await generateSample(root.store('predictions'), root.store('labels'), { from: DAY, days: 1, predictionsPerDay: 12_000, filesPerDay: 6 });
  const store = root.store('predictions');
  // Every input codec and writer: the interop fixtures (lzma is not an Avro codec and is refused).
  for (const name of (await readdir(FIXTURES)).filter((n) => n.startsWith('predictions-') && n.endsWith('.avro') && !n.includes('lzma'))) {
    await store.write(`dt=${DAY}/hour=23/zz-${name}`, await readFile(join(FIXTURES, name)));
  }
  // Every schema variant and writable codec, with map keys in varied orders and a __proto__ segment key.
  const variants: Array<[string, Type, string, Record<string, unknown>[]]> = [
    ['v1-null', predictionV1Type, 'null', predictions(0, 3000)],
    ['v2-deflate', predictionType, 'deflate', predictions(3000, 3000, (i) => ({ feature_set_version: 'fs-2', request_id: i % 3 === 0 ? null : `r${i}` }))],
    ['newer-snappy', newerProducer, 'snappy', predictions(6000, 3000, (i) => ({ host: `h${i % 7}`, request_latency_ms: i % 2 ? null : i / 7 }))],
    ['other-name-zstandard', otherName, 'zstandard', predictions(9000, 3000, (i) => ({ segment_keys: i % 2 ? { channel: 'web', region: 'eu', ['__proto__']: 'x' } : { '10': 'n', region: 'us' } }))],
    ['v1-deflate-duplicates', predictionV1Type, 'deflate', predictions(0, 500, (i) => ({ y_pred: i % 50 === 0 ? Number.NaN : -i }))],
  ];
  for (const [name, type, codec, records] of variants) {
    const fixed = type === predictionType ? records.map(({ featureset_version: _f, ...r }) => r) : records;
    await store.write(`dt=${DAY}/hour=23/zz-${name}.avro`, avroFile(type, fixed, { codec, seed: name }));
  }
});

afterAll(async () => {
  await Promise.all([base?.remove(), ...outputs.map((dir) => dir.remove())]);
});

describe('--workers: the same bytes, wherever the work runs', () => {
  it('--workers 0 writes the release\'s bytes', async () => {
    const main = await runWith(['--workers', '0']);
    expect(main.result.code, describeRun(main.result)).toBe(0);
    const release = process.env['RELEASE_CLI'];
    if (release !== undefined) {
      const out = await tempDirectory('workers-release');
      outputs.push(out);
      const run = spawnSync(process.execPath, [release, ...runArgs(out.path, [])], { encoding: 'utf8', env: cliEnv(inject('s3Endpoint')) });
      expect(run.status, run.stderr.slice(-2000)).toBe(0);
      expectSameFiles(main.files, await outputFiles(out.path));
    }
    expect(digestOf(main.files)).toBe(RELEASE_DIGEST);
  });

  it.each(['deflate', 'null', 'snappy', 'zstandard'])('output codec %s: --workers 0, 1 and 4 write identical curated and metrics files', async (codec) => {
    const main = await runWith(['--workers', '0', '--codec', codec]);
    expect(main.result.code, describeRun(main.result)).toBe(0);
    expect([...main.files.keys()].filter((k) => k.startsWith('curated/')).length, 'several curated parts').toBeGreaterThan(1);
    for (const workers of codec === 'deflate' ? ['1', '4'] : ['4']) {
      const pooled = await runWith(['--workers', workers, '--codec', codec]);
      expect(pooled.result.code, describeRun(pooled.result)).toBe(0);
      expect(pooled.result.json()).toMatchObject({ predictions_read: main.result.json<{ predictions_read: number }>().predictions_read });
      expectSameFiles(pooled.files, main.files);
    }
  });

  it('a corrupt block decoded in a worker fails with the same E_CORRUPT_OBJECT, URI and offset as on the main thread, publishing nothing', async () => {
    const good = avroFile(predictionV1Type, predictions(20_000, 4000), { codec: 'deflate', seed: 'corrupt' });
    // Damage the deflate data of the last block (its framing stays valid, so only decompression finds it).
    const damaged = Buffer.from(good);
    for (let i = damaged.length - 40; i < damaged.length - 20; i++) damaged[i] = 0xff;
    const key = `dt=${DAY}/hour=23/zzz-corrupt.avro`;
    await localRoot(base.path).store('predictions').write(key, damaged);
    try {
      const main = await runWith(['--workers', '0']);
      const pooled = await runWith(['--workers', '2']);
      for (const run of [main, pooled]) {
        expect(run.result.code, describeRun(run.result)).toBe(1);
        expect(run.files.size).toBe(0);
      }
      const uri = localRoot(base.path).store('predictions').uriOf(key);
      expect(main.result.lastError()).toMatchObject({ code: 'E_CORRUPT_OBJECT', uri });
      expect(String(main.result.lastError()?.message)).toContain(`corrupt Avro object "${uri}" at byte`);
      const { message, code, offset, block } = main.result.lastError()!;
      expect(pooled.result.lastError()).toMatchObject({ code, message, offset, block, uri });
    } finally {
      await localRoot(base.path).store('predictions').delete([key]);
    }
  });

  it('--workers refuses a value that is not a whole number from 0 to 256, naming the option', async () => {
    for (const bad of ['-1', '1.5', 'many', '257']) {
      const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--root', base.path, '--workers', bad]);
      expect(result.code, describeRun(result)).toBe(2);
      expect(String(result.lastError()?.message)).toContain('--workers');
    }
  });
});
