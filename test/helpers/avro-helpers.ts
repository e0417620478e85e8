/** Shared helpers of the avro-*.test.ts files: sample records, byte sources, hand-built containers. */
import { PassThrough } from 'node:stream';
import avro from 'avsc';
import type { Type } from 'avsc';
import { expect } from 'vitest';
import { ContainerEncoder, type ContainerEncoderOptions } from '../../src/avro/container-writer.js';
import { decodeContainer, type DecodeLimits } from '../../src/avro/container-reader.js';
import { loadSchemaVersion } from '../../src/avro/schemas.js';

/**
 * PredictionEvent v1, the schema of SPEC §2 as first published: the container tests read and write
 * with this fixed type, so they do not change meaning when a newer reader schema is added.
 */
export const predictionV1Type: Type = loadSchemaVersion('prediction', 1);

/** The writer schema JSON of predictionV1Type, as a header carries it. */
export const predictionV1SchemaJson = JSON.stringify(predictionV1Type.schema({ exportAttrs: true }));

/** A PredictionEvent (v1) with three segment keys; values vary with `i`. */
export function samplePrediction(i: number): Record<string, unknown> {
  return {
    prediction_id: `pred-${i.toString(16).padStart(8, '0')}`,
    model_name: i % 3 === 0 ? 'churn' : 'ltv',
    model_version: `v${i % 4}`,
    featureset_version: 'fs-2026.01',
    y_pred: i * 1.25 - 3,
    y_true: i % 2 === 0 ? i * 1.5 : null,
    residual: i % 2 === 0 ? i * 0.25 + 3 : null,
    inference_ts: 1_767_225_600_000_000 + i * 1_000_003,
    segment_keys: { region: i % 2 === 0 ? 'eu' : 'us', device: 'ios', channel: `c${i % 5}` },
  };
}

/** `count` sample predictions. */
export function samplePredictions(count: number): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => samplePrediction(i));
}

/** Encodes records with ContainerEncoder; also returns where each block ends. */
export function encodeFile(
  records: unknown[],
  options: Omit<ContainerEncoderOptions, 'syncSeed'> & { syncSeed?: string },
): { bytes: Buffer; headerBytes: number; blockEnds: number[]; blockRecordCounts: number[] } {
  const encoder = new ContainerEncoder({ syncSeed: 'test', ...options });
  const parts = [encoder.header()];
  const headerBytes = parts[0]!.length;
  const blockEnds: number[] = [];
  const blockRecordCounts: number[] = [];
  let offset = headerBytes;
  let pending = 0;
  const addBlock = (block: Buffer | undefined): void => {
    if (block === undefined) return;
    parts.push(block);
    offset += block.length;
    blockEnds.push(offset);
    blockRecordCounts.push(pending);
    pending = 0;
  };
  for (const record of records) {
    pending++;
    addBlock(encoder.append(record));
  }
  addBlock(encoder.finish());
  return { bytes: Buffer.concat(parts), headerBytes, blockEnds, blockRecordCounts };
}

/** Feeds `bytes` as chunks of `chunkSize` bytes (a fresh async iterable each call). */
export async function* chunksOf(bytes: Buffer, chunkSize = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let pos = 0; pos < bytes.length; pos += chunkSize) {
    yield bytes.subarray(pos, Math.min(pos + chunkSize, bytes.length));
  }
}

/** Reads every record of a container with our reader. */
export async function readAll(
  bytes: Buffer,
  readerType: Type,
  options: { uri?: string; chunkSize?: number; limits?: Partial<DecodeLimits>; expectedBytes?: number } = {},
): Promise<unknown[]> {
  const records: unknown[] = [];
  const source = chunksOf(bytes, options.chunkSize);
  const decodeOptions = { uri: options.uri ?? 'dt=2026-01-01/a.avro', readerType, limits: options.limits, expectedBytes: options.expectedBytes };
  for await (const block of decodeContainer(source, decodeOptions)) records.push(...block);
  return records;
}

/** Reads a container with avsc's own BlockDecoder (the reference implementation for our output). */
export async function readWithAvsc(bytes: Buffer): Promise<unknown[]> {
  const decoder = new avro.streams.BlockDecoder();
  const records: unknown[] = [];
  const done = new Promise<void>((resolve, reject) => {
    decoder.on('data', (record: unknown) => records.push(record));
    decoder.on('end', resolve);
    decoder.on('error', reject);
  });
  decoder.end(bytes);
  await done;
  return records;
}

/** Writes records with avsc's own BlockEncoder. */
export async function writeWithAvsc(
  type: Type,
  records: unknown[],
  options: { codec?: string; blockSize?: number } = {},
): Promise<Buffer> {
  const encoder = new avro.streams.BlockEncoder(type, { codec: options.codec ?? 'deflate', blockSize: options.blockSize ?? 1024 });
  const sink = new PassThrough();
  const parts: Buffer[] = [];
  sink.on('data', (chunk: Buffer) => parts.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    sink.on('end', resolve);
    encoder.on('error', reject);
  });
  encoder.pipe(sink);
  for (const record of records) encoder.write(record);
  encoder.end();
  await done;
  return Buffer.concat(parts);
}

const LONG = avro.Type.forSchema('long');
const METADATA = avro.Type.forSchema({ type: 'map', values: 'bytes' });

/** A zig-zag varint encoded by avsc (independent of our writer). */
export function varint(value: number): Buffer {
  return LONG.toBuffer(value);
}

/** A container header built by avsc's map encoding from arbitrary metadata. */
export function rawHeader(metadata: Record<string, string>, sync: Buffer = Buffer.alloc(16, 7)): Buffer {
  const entries: Record<string, Buffer> = {};
  for (const [name, value] of Object.entries(metadata)) entries[name] = Buffer.from(value, 'utf8');
  return Buffer.concat([Buffer.from('Obj\x01', 'latin1'), METADATA.toBuffer(entries), sync]);
}

/** A block built by hand: count, size, data, sync. */
export function rawBlock(count: number, data: Buffer, sync: Buffer = Buffer.alloc(16, 7)): Buffer {
  return Buffer.concat([varint(count), varint(data.length), data, sync]);
}

/** Where and how an object is expected to fail in expectCorrupt. */
export interface ExpectedCorruption {
  /** Byte offset named in the message and the context; undefined to skip that check. */
  offset?: number;
  /** Block index named in the message, or 'header'. */
  block: number | 'header';
  /** What the message must say about the cause. */
  detail: RegExp;
  key?: string;
  readerType?: Type;
  limits?: Partial<DecodeLimits>;
  /** Chunk sizes to feed the bytes in; each must fail the same way. */
  chunkSizes?: number[];
}

/**
 * Reads `bytes`, expecting E_CORRUPT_OBJECT with the key, the block index (or "header") and the byte
 * offset in both the message and the context (issue 5: every corruption fails cleanly, saying where).
 */
export async function expectCorrupt(bytes: Buffer, expected: ExpectedCorruption): Promise<Error & { code?: string; context?: Record<string, unknown> }> {
  const key = expected.key ?? 'dt=2026-01-01/hostile.avro';
  let last: (Error & { code?: string; context?: Record<string, unknown> }) | undefined;
  for (const chunkSize of expected.chunkSizes ?? [64 * 1024, 7]) {
    const error = await failure(() => readAll(bytes, expected.readerType ?? predictionV1Type, { uri: key, chunkSize, limits: expected.limits }));
    expect(error.code, `${error.name}: ${error.message}`).toBe('E_CORRUPT_OBJECT');
    expect(error.message).toContain(`corrupt Avro object "${key}"`);
    expect(error.message).toMatch(expected.detail);
    expect(error.message).toContain('--on-corrupt skip');
    expect(error.context?.['uri']).toBe(key);
    if (expected.block === 'header') {
      expect(error.message).toContain('(header)');
      expect(error.context?.['block']).toBeUndefined();
    } else {
      expect(error.message).toContain(`(block ${expected.block})`);
      expect(error.context?.['block']).toBe(expected.block);
    }
    if (expected.offset !== undefined) {
      expect(error.message).toContain(`at byte ${expected.offset} (`);
      expect(error.context?.['offset']).toBe(expected.offset);
    }
    last = error;
  }
  return last!;
}

/** Runs `action`, expecting it to throw; returns the error for assertions. */
export async function failure(action: () => Promise<unknown>): Promise<Error & { code?: string; context?: Record<string, unknown> }> {
  try {
    await action();
  } catch (error) {
    return error as Error & { code?: string; context?: Record<string, unknown> };
  }
  throw new Error('expected a failure, got success');
}
