/**
 * infra/iam against real traffic (issue 4): the real CLI runs against the loopback S3 server through
 * a recording proxy — a preliminary, a final, the same final again (already done), a forced
 * recompute that replaces a committed partition (delete, copy from _staging/, delete) and a
 * scheduled run — and every request it made must be allowed by infra/iam/model-metrics-policy.json,
 * missing-key 404s included; every action on every prefix the policy grants must be used by one of
 * them (AbortMultipartUpload, a failure path, is tied to lib-storage in iam.test.ts).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateSample } from '../../src/demo/generate.js';
import { S3ObjectStore } from '../../src/storage/s3.js';
import { RecordingProxy, cliEnv, describeRun, runCli, testClient } from '../helpers/cli.js';
import { createTestBucket } from '../helpers/s3rver.js';
import { type AuthCheck, checksOf, isAllowed, listOf, readJobPolicy, withBucket } from '../helpers/iam-policy.js';
import { CLI_TESTS_TIMEOUT_MS, SAMPLE_FROM } from '../helpers/infra-helpers.js';

/** The policy's bucket (the aws overlay's); the tests' bucket replaces it. */
const POLICY_BUCKET = 'model-metrics-data';
const PREFIX = 'ml';

describe('the requests of real runs against S3', { timeout: CLI_TESTS_TIMEOUT_MS }, () => {
  let endpoint: string;
  let bucket: string;
  let proxy: RecordingProxy;
  let proxyEndpoint: string;
  const checks: AuthCheck[] = [];
  const operations = new Set<string>();

  beforeAll(async () => {
    endpoint = inject('s3Endpoint');
    bucket = await createTestBucket(endpoint);
    const client = testClient(endpoint);
    try {
      await generateSample(new S3ObjectStore(client, bucket, `${PREFIX}/predictions`), new S3ObjectStore(client, bucket, `${PREFIX}/labels`), {
        from: SAMPLE_FROM,
        days: 3,
        predictionsPerDay: 400,
        filesPerDay: 2,
      });
    } finally {
      client.destroy();
    }
    proxy = await RecordingProxy.start(endpoint);
    proxyEndpoint = proxy.endpoint;
  });
  afterAll(async () => {
    await proxy?.close();
  });

  const commands: Array<[string, string[]]> = [
    ['preliminary', ['run', '--date', '2026-03-02', '--stage', 'preliminary', '--as-of', '2026-03-03T06:00:00Z']],
    ['final', ['run', '--date', '2026-03-02', '--stage', 'final', '--as-of', '2026-03-20T00:00:00Z']],
    ['final again (already done)', ['run', '--date', '2026-03-02', '--stage', 'final', '--as-of', '2026-03-20T00:00:00Z']],
    ['forced recompute replacing the committed final', ['run', '--date', '2026-03-02', '--stage', 'final', '--as-of', '2026-03-20T00:00:00Z', '--force']],
    ['scheduled', ['scheduled', '--as-of', '2026-03-12T06:00:00Z', '--lookback', 'P12D']],
  ];

  it.each(commands)('%s: every request is allowed by the policy', async (_name, args) => {
    const from = proxy.requests.length;
    // Declared as on AWS S3 (the policy's store): the runs list and abort multipart uploads too.
    const aws = ['--s3-multipart-listing', 'on'];
    const result = await runCli([...args, '--root', `s3://${bucket}/${PREFIX}`, '--s3-endpoint', proxyEndpoint, '--s3-force-path-style', ...aws], cliEnv(endpoint));
    expect(result.code, describeRun(result)).toBe(0);
    const policy = withBucket(readJobPolicy(), POLICY_BUCKET, bucket);
    const requests = proxy.requests.slice(from);
    expect(requests.length).toBeGreaterThan(0);
    for (const request of requests) {
      const { operation, checks: needed } = checksOf(request);
      operations.add(operation);
      for (const check of needed) {
        checks.push(check);
        expect(isAllowed(policy, check), `${check.action} on ${check.resource} ${JSON.stringify(check.context)} (${check.why})`).toBe(true);
      }
    }
  });

  it('used every action the policy grants, on every prefix it grants it', () => {
    expect([...operations]).toEqual(expect.arrayContaining(['ListObjectsV2', 'GetObject', 'HeadObject', 'PutObject', 'CopyObject', 'DeleteObjects']));
    const policy = withBucket(readJobPolicy(), POLICY_BUCKET, bucket);
    for (const statement of policy.Statement) {
      for (const action of listOf(statement.Action)) {
        if (action === 's3:AbortMultipartUpload') continue;
        for (const resource of listOf(statement.Resource)) {
          const single = { ...statement, Action: action, Resource: resource };
          const used = checks.some((check) => check.action === action && isAllowed({ Version: policy.Version, Statement: [single] }, check));
          expect(used, `${statement.Sid}: ${action} on ${resource} is granted but no request needed it`).toBe(true);
        }
      }
    }
  });
});
