/**
 * infra/iam against real traffic (issue 4): the real CLI runs against the loopback S3 server through
 * a recording proxy — a preliminary, a final, the same final again (already done), a forced
 * recompute that replaces a committed partition (delete, copy from _staging/, delete) and a
 * scheduled run — and every request it made must be allowed by infra/iam/model-metrics-policy.json,
 * missing-key 404s included; every action on every prefix the policy grants must be used by one of
 * them (AbortMultipartUpload, a failure path, is tied to lib-storage in iam.test.ts).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateSample } from '../../src/demo/generate.js';
import { S3ObjectStore } from '../../src/storage/s3.js';
import { cliEnv, describeRun, runCli, testClient } from '../helpers/cli.js';
import { createTestBucket } from '../helpers/s3rver.js';
import { type AuthCheck, type ObservedRequest, checksOf, isAllowed, listOf, readJobPolicy, withBucket } from './iam-policy.js';
import { CLI_TESTS_TIMEOUT_MS, SAMPLE_FROM } from './infra-helpers.js';

/** The policy's bucket (the aws overlay's); the tests' bucket replaces it. */
const POLICY_BUCKET = 'model-metrics-data';
const PREFIX = 'ml';

/** A loopback proxy in front of the S3 server that records each request with what the policy check needs. */
class PolicyRecordingProxy {
  readonly requests: ObservedRequest[] = [];
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly server: http.Server;

  constructor(upstream: string) {
    const target = new URL(upstream);
    this.server = http.createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://proxy');
      const copySource = request.headers['x-amz-copy-source'];
      const observed: ObservedRequest = {
        method: request.method ?? 'GET',
        path: decodeURIComponent(url.pathname),
        query: url.searchParams,
        copySource: typeof copySource === 'string' ? decodeURIComponent(copySource) : undefined,
        status: 0,
        body: undefined,
      };
      this.requests.push(observed);
      if (url.searchParams.has('delete')) {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => (observed.body = Buffer.concat(chunks).toString('utf8')));
      }
      const forward = http.request(
        { host: target.hostname, port: target.port, method: request.method, path: request.url, headers: request.headers, agent: this.agent },
        (upstreamResponse) => {
          observed.status = upstreamResponse.statusCode ?? 0;
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

  /** Listens on a free loopback port; returns the endpoint for --s3-endpoint. */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Stops listening and drops the upstream connections. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }
}

describe('the requests of real runs against S3', { timeout: CLI_TESTS_TIMEOUT_MS }, () => {
  let endpoint: string;
  let bucket: string;
  let proxy: PolicyRecordingProxy;
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
    proxy = new PolicyRecordingProxy(endpoint);
    proxyEndpoint = await proxy.start();
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
    const result = await runCli([...args, '--root', `s3://${bucket}/${PREFIX}`, '--s3-endpoint', proxyEndpoint, '--s3-force-path-style'], cliEnv(endpoint));
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
