// Launcher for the loopback S3 test server, run as a child process by global-setup.ts so that
// s3rver's CPU work never competes with the test workers. Start it with
// `node --openssl-legacy-provider`: s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with
// DES, which OpenSSL 3 (Node >= 17) only offers through its legacy provider.
// Prints one JSON line `{"port": N}` on stdout once listening; exits on SIGTERM or stdin close.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

const directory = mkdtempSync(join(tmpdir(), 'model-metrics-s3rver-'));
const server = new S3rver({
  port: 0,
  address: '127.0.0.1',
  silent: true,
  directory,
  configureBuckets: [],
});

let closing = false;
async function shutdown(code) {
  if (closing) return;
  closing = true;
  try {
    await server.close();
  } catch {
    // Already closed or never started: nothing left to release but the directory.
  }
  rmSync(directory, { recursive: true, force: true });
  process.exit(code);
}

process.on('SIGTERM', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));
// The parent holds our stdin open; when it dies without signalling, stdin ends and we follow.
process.stdin.on('end', () => void shutdown(0));
process.stdin.resume();

try {
  const { port } = await server.run();
  process.stdout.write(`${JSON.stringify({ port })}\n`);
} catch (error) {
  process.stderr.write(`s3rver failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  await shutdown(1);
}
