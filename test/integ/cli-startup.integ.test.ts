/**
 * What the real CLI loads at start-up (jobs/main.ts imports each command's implementation inside its
 * action; storage/open.ts defers the AWS SDK to the first s3:// request). Each child runs under
 * test/helpers/module-urls.mjs, which records the URL of every module the process loads (ESM imports
 * and CommonJS files), so a top-level import of the S3 store, the report's HTML or the pipeline on
 * these paths shows up here. The s3:// report proves the recording sees the SDK when it does load,
 * and a run with --pushgateway that it sees prom-client (loaded only for a push, cli/reporting.ts).
 * Timings are measured outside the tests (README, Performance).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { generateSample } from '../../src/demo/generate.js';
import { REPO_ROOT, cliEnv, localRoot, tempDirectory } from '../helpers/cli.js';
import { createTestBucket } from '../helpers/s3rver.js';

const RECORDER = join(REPO_ROOT, 'test', 'helpers', 'module-urls.mjs');
const MODULES = pathToFileURL(join(REPO_ROOT, 'node_modules')).href;
const OWN = pathToFileURL(join(REPO_ROOT, 'dist')).href;

/** One CLI child under the recorder: its exit, its stderr and the module URLs it loaded. */
async function cliModules(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string; urls: string[] }> {
  const directory = await tempDirectory('modules');
  try {
    const file = join(directory.path, 'urls.txt');
    const result = spawnSync(process.execPath, ['--import', RECORDER, join(REPO_ROOT, 'bin', 'model-metrics.js'), ...args], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env, MODULE_URLS_FILE: file },
    });
    const urls = [...new Set(readFileSync(file, 'utf8').split('\n').filter((line) => line !== ''))];
    return { status: result.status, stdout: result.stdout, stderr: result.stderr, urls };
  } finally {
    await directory.remove();
  }
}

/** A loopback TCP port that was free a moment ago (listened on, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The loaded modules under node_modules/<scope/name>/ (e.g. '@aws-sdk/', 'vega/'). */
function underPackage(urls: readonly string[], prefix: string): string[] {
  return urls.filter((url) => url.startsWith(`${MODULES}/${prefix}`));
}

/** The loaded modules of our own build under dist/<prefix>. */
function own(urls: readonly string[], prefix: string): string[] {
  return urls.filter((url) => url.startsWith(`${OWN}/${prefix}`));
}

describe('CLI start-up loads only what the command runs', () => {
  it('--version and --help load commander and the option table: no AWS SDK, logger, metrics client, vega or pipeline', async () => {
    for (const args of [['--version'], ['--help'], ['run', '--help']]) {
      const run = await cliModules(args);
      expect(run.status, `${args.join(' ')}: ${run.stderr}`).toBe(0);
      expect(underPackage(run.urls, 'commander/').length, args.join(' ')).toBeGreaterThan(0);
      for (const pkg of ['@aws-sdk/', '@smithy/', 'pino/', 'prom-client/', 'vega/', 'vega-lite/', 'piscina/']) expect(underPackage(run.urls, pkg), `${args.join(' ')}: ${pkg}`).toEqual([]);
      for (const dir of ['src/pipeline/daily.js', 'src/pipeline/outcome.js', 'src/report/', 'src/storage/s3.js', 'src/storage/s3-client.js', 'jobs/daily-run.js', 'jobs/report.js', 'jobs/demo.js']) expect(own(run.urls, dir), `${args.join(' ')}: ${dir}`).toEqual([]);
    }
  });

  it('a run on a local path, and a report on a file:// root, load no AWS SDK; the run no metrics client, report HTML, vega or demo', async () => {
    const directory = await tempDirectory('startup-run');
    try {
      const root = localRoot(directory.path);
      await generateSample(root.store('predictions'), root.store('labels'), { from: '2026-03-02', days: 1, predictionsPerDay: 200, filesPerDay: 1 });
      const run = await cliModules(['run', '--date', '2026-03-02', '--stage', 'preliminary', '--as-of', '2026-03-03T06:00:00Z', '--log-level', 'silent', ...root.args]);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toContain('2026-03-02 preliminary: done');
      // The recorder sees the run's own modules: the pipeline did load.
      expect(own(run.urls, 'src/pipeline/daily.js')).toHaveLength(1);
      for (const pkg of ['@aws-sdk/', '@smithy/', 'prom-client/', 'vega/', 'vega-lite/']) expect(underPackage(run.urls, pkg), pkg).toEqual([]);
      for (const dir of ['src/storage/s3.js', 'src/storage/s3-client.js', 'src/observability/pushgateway.js', 'src/report/html', 'jobs/report.js', 'jobs/demo.js', 'src/demo/']) expect(own(run.urls, dir), dir).toEqual([]);

      const report = await cliModules(['report', '--from', '2026-03-02', '--to', '2026-03-02', '--stage', 'preliminary', '--root', pathToFileURL(directory.path).href, '--log-level', 'silent']);
      expect(report.status, report.stderr).toBe(0);
      expect(report.stdout).toContain('2026-03-02');
      expect(underPackage(report.urls, '@aws-sdk/')).toEqual([]);
      expect(own(report.urls, 'src/storage/s3.js')).toEqual([]);
    } finally {
      await directory.remove();
    }
  });

  it('a run with --pushgateway does load the metrics client (the recorder sees it)', async () => {
    const directory = await tempDirectory('startup-push');
    try {
      const root = localRoot(directory.path);
      await generateSample(root.store('predictions'), root.store('labels'), { from: '2026-03-02', days: 1, predictionsPerDay: 200, filesPerDay: 1 });
      // A loopback port nothing listens on: the push is refused at once, and a failed push leaves the run's result (exit 0).
      const port = await closedPort();
      const run = await cliModules(['run', '--date', '2026-03-02', '--stage', 'preliminary', '--as-of', '2026-03-03T06:00:00Z', '--log-level', 'silent', '--pushgateway', `http://127.0.0.1:${port}`, ...root.args]);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toContain('2026-03-02 preliminary: done');
      expect(underPackage(run.urls, 'prom-client/').length).toBeGreaterThan(0);
      expect(own(run.urls, 'src/observability/pushgateway.js')).toHaveLength(1);
    } finally {
      await directory.remove();
    }
  });

  it('a report on an s3:// root does load the AWS SDK (the recorder sees it)', async () => {
    // An empty bucket: the report lists it through the SDK and finds no committed metrics (exit 1).
    const endpoint = inject('s3Endpoint');
    const bucket = await createTestBucket(endpoint);
    const run = await cliModules(['report', '--from', '2026-03-02', '--to', '2026-03-02', '--root', `s3://${bucket}/startup`, '--s3-endpoint', endpoint, '--s3-force-path-style', '--log-level', 'silent'], cliEnv(endpoint));
    expect(run.status, run.stderr).toBe(1);
    expect(run.stderr).toContain(`no committed final metrics under s3://${bucket}/startup/metrics/`);
    expect(underPackage(run.urls, '@aws-sdk/client-s3/').length).toBeGreaterThan(0);
    expect(own(run.urls, 'src/storage/s3.js')).toHaveLength(1);
  });
});
