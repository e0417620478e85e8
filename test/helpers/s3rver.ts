/**
 * The loopback S3 server of the integration tests: s3rver 3.7.1 in a child process (started once per
 * run by global-setup.ts), and helpers that tests use to reach it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Endpoint of the s3rver child process, e.g. `http://127.0.0.1:41234`. */
    s3Endpoint: string;
  }
}

/** s3rver accepts any credentials whose access key is its default account; these are those. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

const LAUNCHER = fileURLToPath(new URL('./s3rver-server.mjs', import.meta.url));
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

/** A running s3rver child process. */
export interface S3rverProcess {
  endpoint: string;
  stop(): Promise<void>;
}

/**
 * Starts s3rver in a child process on a free loopback port. `--openssl-legacy-provider` because
 * s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has there.
 */
export async function startS3rver(): Promise<S3rverProcess> {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', LAUNCHER], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000);
  });
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => fail(new Error(`s3rver did not report its port within ${START_TIMEOUT_MS} ms; stderr: ${stderr}`)), START_TIMEOUT_MS);
    function fail(error: Error): void {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    }
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`s3rver exited before listening (code ${code}, signal ${signal}); stderr: ${stderr}`)));
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      const newline = stdout.indexOf('\n');
      if (newline === -1) return;
      const parsed = JSON.parse(stdout.slice(0, newline)) as { port?: unknown };
      if (typeof parsed.port !== 'number') return fail(new Error(`s3rver printed no port: ${stdout}`));
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve(parsed.port);
    });
  });
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => stopChild(child) };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** An S3 client for s3rver: dummy credentials, us-east-1, path style, checksums only where required. */
export function createTestS3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Creates a bucket with a fresh unique name (one per test file or suite) and returns the name. */
export async function createTestBucket(endpoint: string): Promise<string> {
  const bucket = `test-${process.pid}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const client = createTestS3Client(endpoint);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

/**
 * Environment for a child process (the CLI) that must reach s3rver through the default AWS chain:
 * credentials, region and AWS_ENDPOINT_URL_S3. Path-style addressing is not an AWS variable, so
 * the test still passes --s3-force-path-style (s3rver's virtual-host names do not resolve).
 */
export function s3TestEnv(endpoint: string): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: endpoint,
  };
}
