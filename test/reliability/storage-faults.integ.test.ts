/**
 * The whole job under a flaky store (issue 5): the real CLI, as a child process, talks to s3rver
 * through the fault-injecting proxy. Below the attempt budget every fault kind leaves the outputs
 * byte-identical to a fault-free run (every object under curated/ and metrics/; `_SUCCESS` minus
 * its start and end times); beyond it the run exits 1 naming the S3 call, the key and the attempts,
 * and publishes nothing. Every run carries a recognisable secret key and session token, which must
 * never reach stdout, stderr or a manifest, nor may a signed URL that the store echoes.
 * Each scenario is recorded in the reliability tally (category "fault").
 */
import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateSample } from '../../src/demo/generate.js';
import { S3ObjectStore } from '../../src/storage/s3.js';
import { type CliResult, cliEnv, describeRun, runCli, testClient } from '../helpers/cli.js';
import { FaultProxy, faults, type FaultRule } from '../helpers/fault-proxy.js';
import { createTestBucket } from '../helpers/s3rver.js';
import { type ReliabilityEntry, recordReliability, withDeadline } from '../helpers/reliability-tally.js';

const DAY = '2026-03-02';
const AS_OF = '2026-03-03T06:00:00Z';
/** `--s3-max-attempts`: two faults on one request are survived, three are not. */
const MAX_ATTEMPTS = 3;
/** A run of this small day takes a few seconds; a run still going after this long is a hang. */
const RUN_DEADLINE_MS = 90_000;

let endpoint: string;
let bucket: string;
let client: S3Client;
const proxies: FaultProxy[] = [];
/**
 * Credentials every faulty run gets, to prove none of them reaches an output: s3rver checks the
 * access key id but not SigV4 signatures, so any secret works against it.
 */
const SECRET = 'mmSecretKey/Do+Not+Leak0123456789abcdefXYZ';
const SESSION_TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLE-session-token-do-not-leak';
const SECRET_ENV = { AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: SESSION_TOKEN };

/** The outputs of the fault-free run, as compared (see `snapshot`). */
let baseline: Map<string, string>;

/** Texts that must never appear in any output: the credentials, and parts of a signed URL. */
const LEAKS = [SECRET, SESSION_TOKEN, 'a3f1c9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0', 'ASIAEXAMPLEEXAMPLE12'];

/** What `text` leaks of LEAKS (none, hopefully). */
function leaked(text: string): string[] {
  return LEAKS.filter((leak) => text.includes(leak));
}

/**
 * Everything the job wrote under `scenario`: key → SHA-256 of the bytes, or of the manifest
 * without its times. Also asserts that no manifest carries a credential.
 */
async function snapshot(scenario: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  for (const dataset of ['curated', 'metrics'] as const) {
    const store = new S3ObjectStore(client, bucket, `${scenario}/${dataset}`);
    for (const info of await store.list('')) {
      const bytes = (await store.readSmall(info.key))!;
      let compared = bytes;
      if (info.key.endsWith('_SUCCESS')) {
        const found = leaked(bytes.toString('utf8'));
        if (found.length > 0) throw new Error(`${dataset}/${info.key} of ${scenario} carries credentials: ${found.length} found`);
        const { started_at: _started, ended_at: _ended, ...rest } = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
        compared = Buffer.from(JSON.stringify(rest));
      }
      result.set(`${dataset}/${info.key}`, createHash('sha256').update(compared).digest('hex'));
    }
  }
  return result;
}

function cliArgs(scenario: string, proxy: FaultProxy): string[] {
  return [
    'run',
    '--date',
    DAY,
    '--stage',
    'preliminary',
    '--as-of',
    AS_OF,
    '--json',
    '--predictions',
    `s3://${bucket}/in/predictions`,
    '--labels',
    `s3://${bucket}/in/labels`,
    '--curated',
    `s3://${bucket}/${scenario}/curated`,
    '--metrics',
    `s3://${bucket}/${scenario}/metrics`,
    '--s3-endpoint',
    proxy.endpoint,
    '--s3-force-path-style',
    '--s3-max-attempts',
    String(MAX_ATTEMPTS),
    '--s3-idle-timeout-seconds',
    '1',
  ];
}

/** Runs the CLI through a proxy of its own with `rules`, within the deadline. */
async function runWithFaults(scenario: string, rules: FaultRule[]): Promise<{ result: CliResult | 'hang'; proxy: FaultProxy }> {
  const proxy = await FaultProxy.start(endpoint);
  proxies.push(proxy);
  proxy.inject(...rules);
  const result = await withDeadline(runCli(cliArgs(scenario, proxy), cliEnv(proxy.endpoint, SECRET_ENV)), RUN_DEADLINE_MS);
  return { result, proxy };
}

/** The tally entry of one run; `wrong` unless the outcome is the expected one. */
function entry(kind: string, injected: number, result: CliResult | 'hang', outcome: { completed: boolean; identical: boolean }): ReliabilityEntry {
  const hang = result === 'hang';
  const code = hang ? undefined : result.code;
  const crashed = !hang && (code === null || code === undefined || ![0, 1, 2, 3].includes(code));
  return {
    category: 'fault',
    kind,
    injected,
    completed: outcome.completed ? 1 : 0,
    identical: outcome.identical ? 1 : 0,
    hangs: hang ? 1 : 0,
    crashes: crashed ? 1 : 0,
    wrong: !hang && !crashed && !(outcome.completed && outcome.identical) ? 1 : 0,
  };
}

beforeAll(async () => {
  endpoint = inject('s3Endpoint');
  bucket = await createTestBucket(endpoint);
  client = testClient(endpoint);
  // Four hourly prediction files and the label partitions of a small day: seconds per run.
  await generateSample(new S3ObjectStore(client, bucket, 'in/predictions'), new S3ObjectStore(client, bucket, 'in/labels'), {
    from: DAY,
    days: 2,
    predictionsPerDay: 1500,
    filesPerDay: 4,
    seed: 5,
  });
  const { result } = await runWithFaults('baseline', []);
  if (result === 'hang' || result.code !== 0) throw new Error(`the fault-free run failed: ${result === 'hang' ? 'hang' : describeRun(result)}`);
  baseline = await snapshot('baseline');
  const keys = [...baseline.keys()];
  if (!keys.some((key) => key.endsWith('part-00000.avro')) || !keys.some((key) => key.endsWith('metrics.avro'))) {
    throw new Error(`the fault-free run published no data files: ${keys.join(', ')}`);
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close()));
  client?.destroy();
});

/** Requests of the job's own outputs (curated, metrics, staging, lease) of one scenario. */
const outputs = (scenario: string): RegExp => new RegExp(`^/[^/]+/${scenario}/`);
const inputs = (dataset: 'predictions' | 'labels'): RegExp => new RegExp(`^/[^/]+/in/${dataset}/.+\\.avro$`);
const BELOW = MAX_ATTEMPTS - 1;

describe.concurrent('below the attempt budget, outputs are byte-identical to a fault-free run', () => {
  const scenarios: Array<{ kind: string; scenario: string; rules: (scenario: string) => FaultRule[] }> = [
    { kind: '500 InternalError', scenario: 'f500', rules: () => [{ method: 'GET', path: inputs('predictions'), fault: faults.internalError, times: BELOW }] },
    { kind: '503 SlowDown', scenario: 'f503', rules: (s) => [{ method: 'PUT', path: outputs(s), fault: faults.slowDown, times: BELOW }] },
    { kind: 'reset mid-body', scenario: 'freset', rules: () => [{ method: 'GET', path: inputs('labels'), fault: faults.reset(1000), times: BELOW }] },
    { kind: 'truncated body', scenario: 'ftrunc', rules: () => [{ method: 'GET', path: inputs('predictions'), fault: faults.truncate(5000), times: BELOW }] },
    // One idle timeout (1 s) each: stalls and hangs cost wall time, not attempts, to find.
    { kind: 'stalled body', scenario: 'fstall', rules: () => [{ method: 'GET', path: inputs('predictions'), fault: faults.stall(3000), times: 1 }] },
    { kind: 'hang before headers', scenario: 'fhang', rules: () => [{ method: 'GET', query: 'list-type', fault: faults.hang, times: 1 }] },
    {
      kind: 'response dropped after apply',
      scenario: 'fdrop',
      rules: (s) => [
        // Single PUTs (staged files, lease, _SUCCESS), a CopyObject (moving staged files into place) and a DeleteObjects.
        { method: 'PUT', path: outputs(s), withoutQuery: 'uploadId', fault: faults.drop, times: BELOW },
        { method: 'PUT', path: outputs(s), header: 'x-amz-copy-source', fault: faults.drop, times: BELOW },
        { method: 'POST', query: 'delete', path: new RegExp(`^/${bucket}/?$`), fault: faults.drop, times: 1 },
      ],
    },
  ];

  it.for(scenarios)('$kind', async ({ kind, scenario, rules }, { expect }) => {
    const { result, proxy } = await runWithFaults(scenario, rules(scenario));
    const snapshotOrNone = result === 'hang' || result.code !== 0 ? undefined : await snapshot(scenario);
    const identical = snapshotOrNone !== undefined && JSON.stringify([...snapshotOrNone]) === JSON.stringify([...baseline]);
    recordReliability(entry(kind, proxy.count(), result, { completed: result !== 'hang' && result.code === 0, identical }));
    expect(result, `${kind}: the run outlived its deadline`).not.toBe('hang');
    const run = result as CliResult;
    expect(run.code, describeRun(run)).toBe(0);
    expect(proxy.count(), 'every scripted fault was injected').toBe(rules(scenario).reduce((sum, rule) => sum + (rule.times ?? 1), 0));
    expect([...snapshotOrNone!]).toEqual([...baseline]);
    expect(leaked(run.stdout + run.stderr)).toEqual([]);
  });
});

describe.concurrent('beyond the attempt budget, the run fails cleanly and publishes nothing', () => {
  const scenarios: Array<{ kind: string; scenario: string; rule: (scenario: string) => FaultRule; message: (scenario: string) => RegExp }> = [
    {
      kind: 'reset mid-body, budget exhausted',
      scenario: 'xreset',
      rule: () => ({ method: 'GET', path: inputs('predictions'), fault: faults.reset(1000), times: Infinity }),
      message: () => new RegExp(`GetObject of s3://${bucket}/in/predictions/dt=${DAY}/hour=\\d\\d/predictions-\\d{3}\\.avro failed after ${MAX_ATTEMPTS} attempts`),
    },
    {
      kind: '503 SlowDown, budget exhausted',
      scenario: 'x503',
      rule: (s) => ({ method: 'PUT', path: outputs(s), fault: faults.slowDown, times: Infinity }),
      message: (s) => new RegExp(`PutObject.* of s3://${bucket}/${s}/\\S+ failed after ${MAX_ATTEMPTS} attempts: SlowDown`),
    },
  ];

  it.for(scenarios)('$kind', async ({ kind, scenario, rule, message }, { expect }) => {
    const { result, proxy } = await runWithFaults(scenario, [rule(scenario)]);
    const published = [...(await snapshot(scenario)).keys()].filter((key) => /\/stage=/.test(key));
    const failure = result === 'hang' ? undefined : result.lastError();
    const named = failure !== undefined && message(scenario).test(String(failure.message));
    recordReliability(entry(kind, proxy.count(), result, { completed: result !== 'hang' && result.code === 1 && named, identical: published.length === 0 }));
    expect(result, `${kind}: the run outlived its deadline`).not.toBe('hang');
    const run = result as CliResult;
    expect(run.code, describeRun(run)).toBe(1);
    expect(failure, describeRun(run)).toMatchObject({ event: 'command_failed', code: 'E_STORAGE', attempts: MAX_ATTEMPTS });
    expect(String(failure!.message)).toMatch(message(scenario));
    expect(published, 'no _SUCCESS and no data file in any output partition').toEqual([]);
    expect(leaked(run.stdout + run.stderr)).toEqual([]);
  });
});

describe('credentials', () => {
  it('never show in the output of a failed run, even when the store echoes a signed URL', async () => {
    const signedUrl =
      `http://store.example/${bucket}/in/predictions/x.avro?X-Amz-Credential=${LEAKS[3]}%2F20260301%2Fus-east-1%2Fs3%2Faws4_request` +
      `&X-Amz-Security-Token=${SESSION_TOKEN}&X-Amz-Signature=${LEAKS[2]}`;
    const { result, proxy } = await runWithFaults('secrets', [
      { method: 'GET', path: inputs('predictions'), fault: { kind: 'status', status: 403, code: 'AccessDenied', message: `Access Denied: ${signedUrl}` }, times: Infinity },
    ]);
    const published = [...(await snapshot('secrets')).keys()].filter((key) => /\/stage=/.test(key));
    const clean = result !== 'hang' && leaked(result.stdout + result.stderr).length === 0;
    recordReliability(entry('403 echoing a signed URL', proxy.count(), result, { completed: result !== 'hang' && result.code === 1 && clean, identical: published.length === 0 }));
    expect(result).not.toBe('hang');
    const run = result as CliResult;
    expect(run.code, describeRun(run)).toBe(1);
    expect(run.lastError()).toMatchObject({ event: 'command_failed', code: 'E_STORAGE' });
    expect(String(run.lastError()?.message)).toContain('X-Amz-Signature=[redacted]');
    expect(leaked(run.stdout + run.stderr)).toEqual([]);
    expect(published).toEqual([]);
  });
});
