/**
 * Hostile Avro at the job level (issue 5), through the real CLI on a local root: hostile objects
 * among good ones are left out whole under `--on-corrupt skip` (listed in the manifest's `skipped`,
 * the rest computed byte-identical to a run that never saw them) and fail the run under `fail`
 * (exit 1 naming the key, nothing published). The decode-limit flags reach the reader.
 * Needs a fresh `dist/` (`npx tsc -p tsconfig.json`), like every CLI test.
 */
import { cp, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateSample } from '../../src/demo/generate.js';
import type { DayResult } from '../../src/pipeline/daily.js';
import { type CliResult, cliEnv, describeRun, localRoot, readBytes, readManifest, runCli, tempDirectory } from '../helpers/cli.js';
import { recordReliability } from '../helpers/reliability-tally.js';
import { encodeFile, predictionV1SchemaJson, predictionV1Type, rawBlock, rawHeader, samplePrediction, varint } from '../helpers/avro-helpers.js';

const DAY = '2026-03-02';
const AS_OF = '2026-03-03T06:00:00Z';
const SUCCESS = `stage=preliminary/dt=${DAY}/_SUCCESS`;
const SYNC = Buffer.alloc(16, 7);
/** Decode limits the runs are given, so a bomb is refused at 8 MiB and a 2 MiB string is too long. */
const LIMIT_FLAGS = ['--avro-max-inflated-block-mb', '8', '--avro-max-string-mb', '1'];

const v1Fields = (JSON.parse(predictionV1SchemaJson) as { fields: unknown[] }).fields;
const valid = encodeFile([samplePrediction(1), samplePrediction(2), samplePrediction(3)], { type: predictionV1Type, codec: 'null' }).bytes;
const header = (metadata: Record<string, string>): Buffer => rawHeader(metadata, SYNC);

/** The hostile objects: what each is, its bytes, and where its failure must be reported. */
const hostile: Array<{ name: string; bytes: Buffer; where: RegExp }> = [
  {
    name: 'items-1e8',
    bytes: Buffer.concat([
      header({ 'avro.schema': JSON.stringify({ type: 'record', name: 'PredictionEvent', fields: [...v1Fields, { name: 'tags', type: { type: 'array', items: 'long' } }] }) }),
      rawBlock(1, Buffer.concat([predictionV1Type.toBuffer(samplePrediction(4)), varint(100_000_000), Buffer.alloc(32)]), SYNC),
    ]),
    where: /\(block 0\): record 0 of 1, .*100000000 items/,
  },
  {
    name: 'deep-schema',
    bytes: Buffer.concat([header({ 'avro.schema': `${'{"type":"array","items":'.repeat(10_000)}"long"${'}'.repeat(10_000)}` }), rawBlock(1, Buffer.alloc(4), SYNC)]),
    where: /at byte 0 \(header\): avro.schema nests deeper than maxSchemaDepth/,
  },
  {
    name: 'deflate-bomb',
    bytes: Buffer.concat([header({ 'avro.schema': predictionV1SchemaJson, 'avro.codec': 'deflate' }), rawBlock(1, zlib.deflateRawSync(Buffer.alloc(64 * 1024 * 1024)), SYNC)]),
    where: /\(block 0\): block decompresses to more than maxDecompressedBlockBytes \(8388608;/,
  },
  {
    name: 'huge-string',
    bytes: Buffer.concat([header({ 'avro.schema': predictionV1SchemaJson }), rawBlock(1, Buffer.concat([varint(2 ** 30), Buffer.from('abc')]), SYNC)]),
    where: /\(block 0\): record 0 of 1, .*string claims 1073741824 bytes/,
  },
  {
    name: 'proto-codec',
    bytes: Buffer.concat([header({ 'avro.schema': predictionV1SchemaJson, 'avro.codec': '__proto__' }), rawBlock(1, Buffer.alloc(8), SYNC)]),
    where: /at byte 0 \(header\): unknown codec "__proto__"/,
  },
  {
    name: 'overlong-varint',
    bytes: Buffer.concat([header({ 'avro.schema': predictionV1SchemaJson }), Buffer.alloc(11, 0xff), Buffer.from([0x01]), Buffer.alloc(32)]),
    where: /\(block 0\): block record count is a varint longer than 10 bytes/,
  },
  { name: 'concatenated', bytes: Buffer.concat([valid, valid]), where: new RegExp(`at byte ${valid.length} \\(block 1\\): .*concatenated files`) },
  { name: 'truncated', bytes: valid.subarray(0, valid.length - 10), where: /\(block 0\): the file ends/ },
  { name: 'trailing-garbage', bytes: Buffer.concat([valid, Buffer.from('garbage!')]), where: new RegExp(`at byte ${valid.length} \\(block 1\\)`) },
  { name: 'bad-magic', bytes: Buffer.concat([Buffer.from('Obj\x02'), valid.subarray(4)]), where: /at byte 0 \(header\): not an Avro container file/ },
  {
    name: 'string-2mib',
    bytes: encodeFile([{ ...samplePrediction(5), segment_keys: { note: 'x'.repeat(2 * 1024 * 1024) } }], { type: predictionV1Type, codec: 'deflate' }).bytes,
    where: /\(block 0\): record 0 of 1, .*longer than maxStringBytes \(1048576\)\) \(raise it with --avro-max-string-mb/,
  },
];
const hostileKey = (name: string): string => `dt=${DAY}/zz-hostile/${name}.avro`;

let base: { path: string; remove: () => Promise<void> };
const others: Array<{ remove: () => Promise<void> }> = [];

/**
 * One hostile object's run for the reliability tally: `handled` when the run ended as it must (the
 * object listed as skipped, or the run failed naming it), `expectedOutputs` when what was published
 * is the expected answer (the clean run's files, or nothing). Recorded before any assertion, so a
 * failing case is counted too.
 */
function recordJobOutcome(kind: string, result: CliResult, handled: boolean, expectedOutputs: boolean): void {
  recordReliability({
    category: 'hostile',
    kind,
    injected: 1,
    completed: handled ? 1 : 0,
    identical: handled && expectedOutputs ? 1 : 0,
    hangs: result.code === null ? 1 : 0,
    crashes: result.code !== null && ![0, 1, 2, 3].includes(result.code) ? 1 : 0,
    wrong: result.code !== null && !(handled && expectedOutputs) ? 1 : 0,
  });
}

function cli(args: readonly string[]): Promise<CliResult> {
  return runCli(args, cliEnv(inject('s3Endpoint')));
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

/** A new local root holding the good sample inputs and the given extra prediction objects. */
async function rootWith(name: string, extra: Array<[string, Buffer]>): Promise<ReturnType<typeof localRoot>> {
  const dir = await tempDirectory(name);
  others.push(dir);
  await cp(join(base.path, 'predictions'), join(dir.path, 'predictions'), { recursive: true });
  await cp(join(base.path, 'labels'), join(dir.path, 'labels'), { recursive: true });
  const root = localRoot(dir.path);
  for (const [key, bytes] of extra) await root.store('predictions').write(key, bytes);
  return root;
}

beforeAll(async () => {
  base = await tempDirectory('hostile-base');
  const root = localRoot(base.path);
  await generateSample(root.store('predictions'), root.store('labels'), { from: DAY, days: 1, predictionsPerDay: 2000, filesPerDay: 3 });
});

afterAll(async () => {
  await Promise.all([base?.remove(), ...others.map((dir) => dir.remove())]);
});

describe('hostile objects among good ones', () => {
  it('--on-corrupt skip lists each in the manifest with key, block and offset, and computes the rest as if they were absent', async () => {
    const clean = await rootWith('hostile-clean', []);
    const cleanRun = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--on-corrupt', 'skip', '--json', ...LIMIT_FLAGS, ...clean.args]);
    expect(cleanRun.code, describeRun(cleanRun)).toBe(0);

    const root = await rootWith('hostile-skip', hostile.map(({ name, bytes }) => [hostileKey(name), bytes]));
    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, '--on-corrupt', 'skip', '--json', ...LIMIT_FLAGS, ...root.args]);
    const manifests = {
      curated: await readManifest(root.store('curated'), SUCCESS),
      metrics: await readManifest(root.store('metrics'), SUCCESS),
      cleanCurated: await readManifest(clean.store('curated'), SUCCESS),
      cleanMetrics: await readManifest(clean.store('metrics'), SUCCESS),
    };
    const differing: string[] = [];
    for (const [dataset, mine, theirs] of [['curated', manifests.curated, manifests.cleanCurated], ['metrics', manifests.metrics, manifests.cleanMetrics]] as const) {
      if (mine === undefined || theirs === undefined || JSON.stringify(mine.outputs) !== JSON.stringify(theirs.outputs)) {
        differing.push(`${dataset} outputs`);
        continue;
      }
      for (const output of theirs.outputs) {
        if (!(await readBytes(root.store(dataset), output.key)).equals(await readBytes(clean.store(dataset), output.key))) differing.push(`${dataset}/${output.key}`);
      }
    }
    const reasons = new Map((manifests.curated?.skipped ?? []).map((s) => [s.key, s.reason]));
    const listedKey = (name: string): boolean => {
      const reason = reasons.get(hostileKey(name));
      return reason !== undefined && reason.includes(`corrupt Avro object "${root.store('predictions').uriOf(hostileKey(name))}"`) && hostile.find((h) => h.name === name)!.where.test(reason);
    };
    for (const { name } of hostile) {
      const listed = result.code === 0 && listedKey(name);
      recordJobOutcome(`job: ${name} (--on-corrupt skip)`, result, listed, differing.length === 0);
    }

    expect(result.code, describeRun(result)).toBe(0);
    expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
    expect(result.json<DayResult>()).toMatchObject({ status: 'done', skipped_objects: hostile.length, predictions_read: cleanRun.json<DayResult>().predictions_read });
    expect(differing).toEqual([]);
    for (const { name, where } of hostile) {
      const reason = reasons.get(hostileKey(name));
      expect(reason, hostileKey(name)).toBeDefined();
      expect(reason).toContain(`corrupt Avro object "${root.store('predictions').uriOf(hostileKey(name))}"`);
      expect(reason).toMatch(where);
    }
    expect(manifests.curated!.skipped).toHaveLength(hostile.length);
  });

  it.each(['items-1e8', 'deep-schema', 'deflate-bomb', 'concatenated'])('--on-corrupt fail: %s fails the run (exit 1) naming the key, publishing nothing', async (name) => {
    const { bytes, where } = hostile.find((h) => h.name === name)!;
    const key = hostileKey(name);
    const root = await rootWith(`hostile-fail-${name}`, [[key, bytes]]);
    const result = await cli(['run', '--date', DAY, '--stage', 'preliminary', '--as-of', AS_OF, ...LIMIT_FLAGS, ...root.args]);
    const error = result.lastError();
    const published = [...(await filesUnder(join(root.uri, 'curated'))), ...(await filesUnder(join(root.uri, 'metrics')))];
    const named = result.code === 1 && error?.code === 'E_CORRUPT_OBJECT' && error.uri === root.store('predictions').uriOf(key) && where.test(String(error.message));
    recordJobOutcome(`job: ${name} (--on-corrupt fail)`, result, named, published.length === 0);
    expect(result.code, describeRun(result)).toBe(1);
    expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
    expect(error).toMatchObject({ event: 'command_failed', code: 'E_CORRUPT_OBJECT', uri: root.store('predictions').uriOf(key) });
    expect(String(error?.message)).toMatch(where);
    expect(published).toEqual([]);
  });
});
