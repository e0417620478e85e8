/**
 * Start-up (issue 9): the CLI opens stores through storage/open.ts, which imports the AWS SDK only
 * when an s3:// store is first used. The real CLI runs with a module-resolution hook that reports
 * every @aws-sdk import; `--version` and a run on local paths must report none, an s3:// store on
 * first use must load it. Timings are measured outside the tests (README, storage section).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { generateSample } from '../../src/demo/generate.js';
import { DeferredS3ObjectStore, destroyStores, openStore } from '../../src/storage/open.js';
import { S3ObjectStore, createS3Client } from '../../src/storage/s3.js';
import { REPO_ROOT, localRoot, tempDirectory } from '../helpers/cli.js';

const TRACE = join(REPO_ROOT, 'test', 'helpers', 'module-trace.mjs');

function cliWithTrace(args: string[]): { status: number | null; stderr: string; sdkImports: string[] } {
  const result = spawnSync(process.execPath, ['--import', TRACE, join(REPO_ROOT, 'bin', 'model-metrics.js'), ...args], { cwd: REPO_ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  const sdkImports = result.stderr.split('\n').filter((line) => line.startsWith('module-trace: '));
  return { status: result.status, stderr: result.stderr, sdkImports };
}

describe('the AWS SDK loads only for s3:// stores (issue 9)', () => {
  it('--version does not load it', () => {
    const run = cliWithTrace(['--version']);
    expect(run.status, run.stderr).toBe(0);
    expect(run.sdkImports).toEqual([]);
  });

  it('a run on local paths does not load it', async () => {
    const directory = await tempDirectory('startup');
    try {
      const root = localRoot(directory.path);
      await generateSample(root.store('predictions'), root.store('labels'), { from: '2026-03-02', days: 1, predictionsPerDay: 200, filesPerDay: 1 });
      const run = cliWithTrace(['run', '--date', '2026-03-02', '--stage', 'preliminary', '--as-of', '2026-03-03T06:00:00Z', ...root.args]);
      expect(run.status, run.stderr).toBe(0);
      expect(run.sdkImports).toEqual([]);
    } finally {
      await directory.remove();
    }
  });

  it('an s3:// store is deferred: its URIs at once, its client and its setting checks on first use', async () => {
    const cache = new Map<string, S3Client>();
    const client = createS3Client({ region: 'us-east-1' });
    try {
      const store = openStore('s3://bucket/root/predictions', { region: 'us-east-1', uploadPartSize: 1024 }, '--predictions', cache);
      expect(store).toBeInstanceOf(DeferredS3ObjectStore);
      const eager = new S3ObjectStore(client, 'bucket', 'root/predictions');
      expect([store.uri, store.uriOf('dt=2026-01-01/a.avro')]).toEqual([eager.uri, eager.uriOf('dt=2026-01-01/a.avro')]);
      expect(cache.size).toBe(0);
      // A part size below S3's 5 MiB minimum: the backend refuses it on the first request, every time.
      for (let i = 0; i < 2; i++) await expect(store.list('')).rejects.toMatchObject({ code: 'E_USAGE', context: expect.objectContaining({ option: 'uploadPartSize' }) });
      expect(cache.size).toBe(1);
    } finally {
      destroyStores(cache);
      client.destroy();
    }
  });
});
