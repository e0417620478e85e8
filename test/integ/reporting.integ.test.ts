/**
 * What the real CLI reports besides stdout: `--summary-file` (Airflow's XCom file), `--pushgateway`
 * (Prometheus batch-job metrics) and the shards of an Indexed-Job backfill. The Pushgateway is a
 * plain HTTP server on loopback that records what it receives: no Pushgateway binary can run here,
 * and the payload (text exposition format over POST) is what the test checks.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSample } from '../../src/demo/generate.js';
import type { DayOutcome } from '../../src/pipeline/outcome.js';
import { type CliResult, cliEnv, describeRun, localRoot, runCli, tempDirectory } from '../helpers/cli.js';

interface Received {
  method: string;
  url: string;
  body: string;
}

/** A loopback HTTP server standing in for a Pushgateway: records requests, answers with `status`. */
class RecordingGateway {
  readonly received: Received[] = [];
  status = 200;
  private readonly server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      this.received.push({ method: req.method ?? '', url: req.url ?? '', body });
      res.writeHead(this.status).end(this.status >= 400 ? 'gateway says no' : '');
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const DAYS = ['2026-03-02', '2026-03-03', '2026-03-04', '2026-03-05', '2026-03-06'];
let dir: { path: string; remove: () => Promise<void> };
let gateway: RecordingGateway;
let gatewayUrl: string;

beforeAll(async () => {
  dir = await tempDirectory('reporting');
  const root = localRoot(path.join(dir.path, 'root'));
  await generateSample(root.store('predictions'), root.store('labels'), { from: DAYS[0]!, days: DAYS.length, predictionsPerDay: 600, filesPerDay: 2, seed: 11 });
  gateway = new RecordingGateway();
  gatewayUrl = await gateway.start();
});

afterAll(async () => {
  await gateway?.stop();
  await dir?.remove();
});

async function cli(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
  const result = await runCli([...args, '--root', path.join(dir.path, 'root')], cliEnv('http://127.0.0.1:1', extraEnv));
  expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
  return result;
}

describe('--summary-file and --pushgateway', () => {
  it('writes the --json document to the file and pushes the figures of the run', async () => {
    gateway.status = 200;
    gateway.received.length = 0;
    const summaryFile = path.join(dir.path, 'return.json');
    const result = await cli(['run', '--date', DAYS[0]!, '--stage', 'preliminary', '--as-of', '2026-03-03T06:00:00Z', '--json', '--summary-file', summaryFile, '--pushgateway', gatewayUrl]);
    expect(result.code, describeRun(result)).toBe(0);
    const summary = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as { predictions_read: number; labeled: number; status: string };
    expect(summary).toEqual(result.json());
    expect(summary.status).toBe('done');
    expect(gateway.received).toHaveLength(1);
    const push = gateway.received[0]!;
    expect(push.method).toBe('POST');
    expect(push.url).toBe('/metrics/job/model_metrics/command/run/stage/preliminary');
    expect(push.body).toContain(`model_metrics_predictions_read ${summary.predictions_read}`);
    expect(push.body).toContain(`model_metrics_labeled ${summary.labeled}`);
    expect(push.body).toContain('model_metrics_run_exit_code 0');
    expect(push.body).toContain('model_metrics_days{status="done"} 1');
    expect(push.body).toMatch(/model_metrics_last_success_timestamp_seconds \d+/);
    expect(result.logs.some((line) => line.event === 'pushgateway_pushed')).toBe(true);
  });

  it('reports a not-ready final as exit 3 in the file and the push, without a last success', async () => {
    gateway.received.length = 0;
    const summaryFile = path.join(dir.path, 'not-ready.json');
    const result = await cli(['run', '--date', DAYS[4]!, '--stage', 'final', '--as-of', '2026-03-07T00:00:00Z', '--summary-file', summaryFile, '--pushgateway', gatewayUrl, '--pushgateway-job', 'mm_test']);
    expect(result.code, describeRun(result)).toBe(3);
    const summary = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as { status: string; exit_code: number; code: string };
    expect(summary).toMatchObject({ status: 'not_ready', exit_code: 3, code: 'E_NOT_READY' });
    expect(gateway.received.map((r) => r.url)).toEqual(['/metrics/job/mm_test/command/run/stage/final']);
    expect(gateway.received[0]!.body).toContain('model_metrics_run_exit_code 3');
    expect(gateway.received[0]!.body).not.toContain('last_success');
  });

  it('keeps the result when the gateway fails, and says so in a warning', async () => {
    gateway.status = 500;
    const result = await cli(['run', '--date', DAYS[1]!, '--stage', 'preliminary', '--as-of', '2026-03-04T06:00:00Z', '--pushgateway', gatewayUrl]);
    gateway.status = 200;
    expect(result.code, describeRun(result)).toBe(0);
    const warning = result.logs.find((line) => line.event === 'pushgateway_failed');
    expect(warning?.message).toMatch(/status 500/);
  });

  it.each([
    [['--pushgateway', 'not a url'], '--pushgateway'],
    [['--summary-file', '/no/such/dir/x.json'], '--summary-file'],
    [['--pushgateway-job', 'x'], '--pushgateway-job'],
  ])('refuses %j before any work (exit 2)', async (extra, option) => {
    const result = await cli(['run', '--date', DAYS[0]!, '--stage', 'preliminary', ...extra]);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.lastError()?.option).toBe(option);
  });
});

describe('backfill shards (Kubernetes Indexed Job)', () => {
  it('computes only its round-robin share, the index taken from JOB_COMPLETION_INDEX', async () => {
    const args = ['backfill', '--from', DAYS[0]!, '--to', DAYS[4]!, '--stage', 'preliminary', '--as-of', '2026-03-08T00:00:00Z', '--shard-count', '2', '--json'];
    const shard1 = await cli(args, { JOB_COMPLETION_INDEX: '1' });
    expect(shard1.code, describeRun(shard1)).toBe(0);
    expect(shard1.json<DayOutcome[]>().map((o) => o.date)).toEqual([DAYS[1], DAYS[3]]);
    const shard0 = await cli([...args, '--shard-index', '0']);
    expect(shard0.json<DayOutcome[]>().map((o) => o.date)).toEqual([DAYS[0], DAYS[2], DAYS[4]]);
  });

  it('refuses a shard count without an index (exit 2)', async () => {
    const result = await cli(['backfill', '--from', DAYS[0]!, '--to', DAYS[4]!, '--stage', 'preliminary', '--shard-count', '3']);
    expect(result.code).toBe(2);
    expect(result.lastError()?.option).toBe('--shard-index');
  });
});
