/**
 * Helpers of the CLI integration tests: run the real CLI (`node bin/model-metrics.js`) as a child
 * process, a recording HTTP proxy in front of s3rver (to see which S3 requests a child process made),
 * dataset roots on s3rver and on local disk, and Avro files written and read back with the
 * project's own encoder and decoder.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Type } from 'avsc';
import pLimit from 'p-limit';
import { decodeContainer, readContainerHeader, type ContainerHeader } from '../../src/avro/container-reader.js';
import { ContainerEncoder } from '../../src/avro/container-writer.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { S3ObjectStore } from '../../src/storage/s3.js';
import type { ObjectStore } from '../../src/storage/types.js';
import { createTestS3Client, s3TestEnv } from './s3rver.js';

/** The repository root: the CLI runs from here, like `npx model-metrics` in a clone. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const CLI_ENTRY = join(REPO_ROOT, 'bin', 'model-metrics.js');
const CLI_TIMEOUT_MS = 120_000;

/** One JSON log line of the CLI's stderr. */
export type LogLine = Record<string, unknown> & { level?: string; event?: string; msg?: string };

/** What a CLI child process did. */
export interface CliResult {
  /** Exit code (null when killed). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** stderr lines that parsed as JSON. */
  logs: LogLine[];
  /** stderr lines that did not, besides the final sentence (SPEC §6 wants none). */
  nonJsonStderr: string[];
  /** The plain last line of a failed command (`model-metrics: error: …`), when there is one. */
  finalLine: string | undefined;
  /** stdout parsed as JSON (only meaningful with --json). */
  json<T = unknown>(): T;
  /** The last error-level log line, e.g. `command_failed`. */
  lastError(): LogLine | undefined;
}

/** Environment of every child: only what the CLI needs, never the test runner's own variables. */
export function cliEnv(endpoint: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...s3TestEnv(endpoint), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...extra };
}

/** Runs `node bin/model-metrics.js ...args` from the repository root and collects its output. */
export async function runCli(args: readonly string[], env: Record<string, string>): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  }).finally(() => clearTimeout(timer));
  const logs: LogLine[] = [];
  const nonJsonStderr: string[] = [];
  const lines = stderr.split('\n').filter((line) => line.trim() !== '');
  const finalLine = lines.at(-1)?.startsWith('model-metrics: error: ') === true ? lines.pop() : undefined;
  for (const line of lines) {
    if (line.trim() === '') continue;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) logs.push(parsed as LogLine);
      else nonJsonStderr.push(line);
    } catch {
      nonJsonStderr.push(line);
    }
  }
  return {
    code,
    stdout,
    stderr,
    logs,
    nonJsonStderr,
    finalLine,
    json<T>(): T {
      try {
        return JSON.parse(stdout) as T;
      } catch (error) {
        throw new Error(`stdout is not JSON (exit ${code}): ${stdout.slice(0, 500)}\nstderr: ${stderr.slice(-2000)}`, { cause: error });
      }
    },
    lastError: () => logs.filter((line) => line.level === 'error').at(-1),
  };
}

/** A human-readable account of a CLI result, for assertion messages. */
export function describeRun(result: CliResult): string {
  return `exit ${result.code}\nstdout: ${result.stdout.slice(0, 2000)}\nstderr: ${result.stderr.slice(-3000)}`;
}

/** One request that passed through the proxy. */
export interface RecordedRequest {
  method: string;
  /** Decoded path, e.g. `/bucket/prefix/curated/stage=final/dt=2026-03-02/part-00000.avro`. */
  path: string;
  query: URLSearchParams;
  /** `x-amz-copy-source`, decoded, when present (CopyObject). */
  copySource: string | undefined;
  /** The upstream response's status; 0 until it arrives. */
  status: number;
  /** The request body, kept for DeleteObjects only (the keys it deletes). */
  body: string | undefined;
}

/**
 * A loopback HTTP proxy in front of s3rver that records every request: the CLI child process is
 * pointed at it with `--s3-endpoint`, so a test can tell which S3 calls it made (none before a usage
 * error, multipart uploads, ListObjectsV2 continuation pages, no writes on an "already done" rerun).
 * Headers go through unchanged, so SigV4 signatures (which cover the Host header) still verify.
 */
export class RecordingProxy {
  readonly requests: RecordedRequest[] = [];
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly server: http.Server;
  private port = 0;

  private constructor(upstream: string) {
    const target = new URL(upstream);
    this.server = http.createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://proxy');
      const copySource = request.headers['x-amz-copy-source'];
      const recorded: RecordedRequest = {
        method: request.method ?? 'GET',
        path: decodeURIComponent(url.pathname),
        query: url.searchParams,
        copySource: typeof copySource === 'string' ? decodeURIComponent(copySource) : undefined,
        status: 0,
        body: undefined,
      };
      this.requests.push(recorded);
      if (url.searchParams.has('delete')) {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => (recorded.body = Buffer.concat(chunks).toString('utf8')));
      }
      const forward = http.request(
        { host: target.hostname, port: target.port, method: request.method, path: request.url, headers: request.headers, agent: this.agent },
        (upstreamResponse) => {
          recorded.status = upstreamResponse.statusCode ?? 0;
          response.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
          pipeline(upstreamResponse, response, () => undefined);
        },
      );
      forward.on('error', (error) => {
        if (!response.headersSent) response.writeHead(502);
        response.end(String(error));
      });
      pipeline(request, forward, () => undefined);
    });
  }

  /** Starts a proxy on a free loopback port in front of `upstream` (an http://host:port endpoint). */
  static async start(upstream: string): Promise<RecordingProxy> {
    const proxy = new RecordingProxy(upstream);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  /** The endpoint to give the CLI as `--s3-endpoint`. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Forgets the requests recorded so far. */
  clear(): void {
    this.requests.length = 0;
  }

  /** Requests that change the store: PUT, POST (multipart create/complete, DeleteObjects) and DELETE. */
  writes(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'PUT' || r.method === 'POST' || r.method === 'DELETE');
  }

  /** Stops listening and drops the upstream connections. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }
}

/** A dataset root the CLI is pointed at with `--root`, and stores to prepare and inspect its datasets. */
export interface DatasetRoot {
  kind: 's3' | 'local';
  uri: string;
  /** `--root URI` plus the S3 flags when needed. */
  args: string[];
  store(dataset: 'predictions' | 'labels' | 'curated' | 'metrics'): ObjectStore;
}

/** A root at `s3://bucket/prefix`; the CLI reaches it through `cliEndpoint` (s3rver or a proxy). */
export function s3Root(client: S3Client, bucket: string, prefix: string, cliEndpoint: string): DatasetRoot {
  const uri = `s3://${bucket}/${prefix}`;
  return {
    kind: 's3',
    uri,
    args: ['--root', uri, '--s3-endpoint', cliEndpoint, '--s3-force-path-style'],
    store: (dataset) => new S3ObjectStore(client, bucket, `${prefix}/${dataset}`),
  };
}

/** A root in a local directory. */
export function localRoot(directory: string): DatasetRoot {
  return { kind: 'local', uri: directory, args: ['--root', directory], store: (dataset) => new LocalObjectStore(join(directory, dataset)) };
}

/** A temp directory and its removal. */
export async function tempDirectory(name: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `mm-cli-${name}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A test S3 client for the endpoint (the harness's, checksums only where required). */
export function testClient(endpoint: string): S3Client {
  return createTestS3Client(endpoint);
}

/** An Avro container file of `records` with the project's encoder (any writer type, any codec). */
export function avroFile(type: Type, records: readonly unknown[], options: { codec?: string; seed?: string } = {}): Buffer {
  const encoder = new ContainerEncoder({ type, codec: options.codec ?? 'deflate', syncSeed: options.seed ?? 'cli-integ' });
  const chunks: Buffer[] = [encoder.header()];
  for (const record of records) {
    const block = encoder.append(record);
    if (block !== undefined) chunks.push(block);
  }
  const last = encoder.finish();
  if (last !== undefined) chunks.push(last);
  return Buffer.concat(chunks);
}

/** Writes objects, 16 at a time (s3rver takes 10–20 ms per PUT). */
export async function putAll(store: ObjectStore, objects: ReadonlyArray<readonly [string, Buffer]>): Promise<void> {
  const limit = pLimit(16);
  await Promise.all(objects.map(([key, body]) => limit(() => store.write(key, body))));
}

/** The whole object as bytes. */
export async function readBytes(store: ObjectStore, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Every record of a container file, decoded with the project's reader (checks the listed size too). */
export async function readRecords<T>(store: ObjectStore, key: string, readerType: Type): Promise<T[]> {
  const info = await store.head(key);
  if (info === undefined) throw new Error(`${store.uriOf(key)} does not exist`);
  const records: T[] = [];
  const stream = await store.read(key);
  for await (const block of decodeContainer(stream, { uri: store.uriOf(key), readerType, expectedBytes: info.size })) records.push(...(block as T[]));
  return records;
}

/** The header of a container file. */
export async function readHeader(store: ObjectStore, key: string): Promise<ContainerHeader> {
  const stream = await store.read(key);
  try {
    return await readContainerHeader(stream, store.uriOf(key));
  } finally {
    stream.destroy();
  }
}

/** A `_SUCCESS` manifest as written (parsed JSON), or undefined when absent. */
export async function readManifest(store: ObjectStore, key: string): Promise<ManifestJson | undefined> {
  const bytes = await store.readSmall(key);
  return bytes === undefined ? undefined : (JSON.parse(bytes.toString('utf8')) as ManifestJson);
}

/** The `_SUCCESS` document as the tests read it. */
export interface ManifestJson {
  format: string;
  dataset: 'curated' | 'metrics';
  stage: 'preliminary' | 'final';
  date: string;
  as_of: string;
  labels_through: string;
  label_window: string;
  job_version: string;
  params: Record<string, unknown>;
  fingerprint: string;
  started_at: string;
  ended_at: string;
  inputs: Array<{ dataset: 'predictions' | 'labels'; key: string; size: number; etag: string; schema_fingerprint?: string }>;
  skipped: Array<{ dataset: 'predictions' | 'labels'; key: string; reason: string }>;
  writer_schemas: Array<{ fingerprint: string; objects: number }>;
  outputs: Array<{ key: string; size: number; records: number }>;
  stats: Record<string, number>;
}

/** Microseconds since the epoch of an ISO-8601 instant. */
export function micros(iso: string): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`not an instant: ${iso}`);
  return ms * 1000;
}
