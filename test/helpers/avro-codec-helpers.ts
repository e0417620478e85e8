/** Helpers of the avro-codecs*.test.ts and avro-interop.integ.test.ts files: containers in any codec, external compressors. */
import { spawnSync } from 'node:child_process';
import type { Type } from 'avsc';
import { ContainerEncoder } from '../../src/avro/container-writer.js';
import { loadSchemaVersion, schemaVersions } from '../../src/avro/schemas.js';
import { rawBlock, rawHeader } from './avro-helpers.js';

/** Sync marker of the hand-framed containers. */
const SYNC = Buffer.alloc(16, 0x5a);

/**
 * A container whose header names `codec` and whose blocks (`recordsPerBlock` records each) are
 * compressed by `compress`: how files in the read-only codecs (bzip2, xz) are made for tests.
 * Records are serialized by ContainerEncoder, so only the framing is done here.
 */
export function encodeWithCodec(
  type: Type,
  records: unknown[],
  codec: string,
  compress: (data: Buffer) => Buffer,
  recordsPerBlock = 5,
): Buffer {
  const encoder = new ContainerEncoder({ type, codec: 'null', syncSeed: 'codec-helpers', blockBytes: 2 ** 30 });
  const schema = JSON.stringify(type.schema({ exportAttrs: true }));
  const parts = [rawHeader({ 'avro.schema': schema, 'avro.codec': codec }, SYNC)];
  for (let start = 0; start < records.length; start += recordsPerBlock) {
    for (const record of records.slice(start, start + recordsPerBlock)) encoder.appendRaw(record);
    const block = encoder.finishRaw()!;
    parts.push(rawBlock(block.count, compress(block.data), SYNC));
  }
  return Buffer.concat(parts);
}

/** True when `program` runs here (tests that need its output skip without it). */
function runs(program: string): boolean {
  return spawnSync(program, ['--help'], { stdio: 'ignore' }).status === 0;
}

/** Compresses `data` with a Debian program reading stdin and writing stdout. */
function pipeThrough(program: string, args: string[], data: Buffer): Buffer {
  const run = spawnSync(program, args, { input: data, maxBuffer: 1 << 30 });
  if (run.status !== 0) throw new Error(`${program} failed: ${run.stderr.toString()}`);
  return run.stdout;
}

/** True when the Debian `bzip2` program runs here. */
export const hasBzip2Program = runs('bzip2');

/** bzip2-compresses `data` with the `bzip2` program (no bzip2 compressor is a dependency: the job only reads bzip2). */
export function bzip2(data: Buffer): Buffer {
  return pipeThrough('bzip2', ['-c', '-9'], data);
}

/** True when the Debian `xz` program (xz-utils) runs here. */
export const hasXzProgram = runs('xz');

/** xz-compresses `data` with the `xz` program: LZMA2 with a CRC64 check, as Avro Java's XZCodec writes. */
export function xzProgram(data: Buffer): Buffer {
  return pipeThrough('xz', ['-c', '-6', '--check=crc64'], data);
}

/** Every `schemas/<name>/vN.avsc` of the package, oldest first, parsed as the job parses schemas. */
export function schemaFileVersions(name: 'prediction' | 'label'): { version: number; type: Type }[] {
  return schemaVersions[name].map(({ version }) => ({ version, type: loadSchemaVersion(name, version) }));
}

/** PredictionEvent v1 (`schemas/prediction/v1.avsc`), the shape of avro-helpers' samplePredictions. */
export { predictionV1Type } from './avro-helpers.js';
