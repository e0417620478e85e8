/**
 * The registry client and `schema check --registry` against a real HTTP server on loopback that
 * serves the Confluent Schema Registry REST endpoints the gate uses. It stands in for a registry
 * because none can run here (Confluent's needs a JVM and Kafka); the client sees real HTTP: status
 * codes, headers, basic auth, slow and refused connections.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadRegistryHistory, type RegistryOptions } from '../../src/schema/registry.js';
import { describeRun, runCli } from '../helpers/cli.js';

const USER = 'svc-gate';
const PASSWORD = 's3cr3t-Pa55';

/** A subject's registered versions as the registry returns them. */
interface RegisteredVersion {
  schema: unknown;
  schemaType?: string;
  references?: unknown[];
}

/** The loopback registry: subjects, optional basic auth, and scripted failures. */
class LoopbackRegistry {
  readonly subjects = new Map<string, RegisteredVersion[]>();
  /** Statuses to answer with before behaving, one per request (e.g. [503, 503]). */
  failures: number[] = [];
  /** When set, requests get no answer (the client's timeout must fire). */
  hang = false;
  /** Overrides the version list body of every subject (to test malformed answers). */
  versionsBody: unknown = undefined;
  requireAuth = true;
  readonly requests: Array<{ path: string; authorization: string | undefined }> = [];
  private readonly server: http.Server;
  private readonly hanging = new Set<http.ServerResponse>();

  constructor() {
    this.server = http.createServer((request, response) => this.handle(request, response));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(): void {
    this.subjects.clear();
    this.failures = [];
    this.hang = false;
    this.versionsBody = undefined;
    this.requireAuth = true;
    this.requests.length = 0;
    for (const response of this.hanging) response.destroy();
    this.hanging.clear();
  }

  async close(): Promise<void> {
    this.reset();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://registry').pathname);
    this.requests.push({ path, authorization: request.headers.authorization });
    const send = (status: number, body: unknown): void => {
      response.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
      response.end(JSON.stringify(body));
    };
    if (this.hang) {
      this.hanging.add(response);
      return;
    }
    const failure = this.failures.shift();
    if (failure !== undefined) return send(failure, { error_code: failure * 100, message: `scripted failure ${failure}` });
    const expected = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
    if (this.requireAuth && request.headers.authorization !== expected) return send(401, { error_code: 401, message: 'Unauthorized' });
    const match = /^\/subjects\/([^/]+)\/versions(?:\/(\d+))?$/.exec(path);
    const versions = match === null ? undefined : this.subjects.get(match[1]!);
    if (match === null || versions === undefined) return send(404, { error_code: 40401, message: `Subject '${match?.[1] ?? path}' not found.` });
    if (match[2] === undefined) return send(200, this.versionsBody ?? versions.map((_, i) => i + 1));
    const version = versions[Number(match[2]) - 1];
    if (version === undefined) return send(404, { error_code: 40402, message: `Version ${match[2]} not found.` });
    send(200, { subject: match[1], version: Number(match[2]), id: 100 + Number(match[2]), schema: JSON.stringify(version.schema), ...(version.schemaType === undefined ? {} : { schemaType: version.schemaType }), ...(version.references === undefined ? {} : { references: version.references }) });
  }
}

const eventSchema = (fields: unknown[]): unknown => ({ type: 'record', name: 'Event', namespace: 'acme', fields });
const v1 = eventSchema([{ name: 'id', type: 'string' }, { name: 'value', type: 'int' }]);
const v2 = eventSchema([{ name: 'id', type: 'string' }, { name: 'value', type: 'long' }, { name: 'note', type: ['null', 'string'], default: null }]);

const registry = new LoopbackRegistry();

function options(overrides: Partial<RegistryOptions> = {}): RegistryOptions {
  return { url: registry.url, subject: 'acme.events-value', userInfo: `${USER}:${PASSWORD}`, timeoutMs: 5000, retries: 0, ...overrides };
}

async function failure(action: () => Promise<unknown>): Promise<Error & { code?: string; context?: Record<string, unknown> }> {
  try {
    await action();
  } catch (error) {
    return error as Error & { code?: string; context?: Record<string, unknown> };
  }
  throw new Error('expected a failure, got success');
}

beforeAll(async () => {
  await registry.start();
});

afterAll(async () => {
  await registry.close();
});

beforeEach(() => {
  registry.reset();
  registry.subjects.set('acme.events-value', [{ schema: v1 }, { schema: v2 }]);
});

describe('loadRegistryHistory', () => {
  it('reads every version, oldest first, with basic auth', async () => {
    const history = await loadRegistryHistory(options());
    expect(history.source).toBe(`registry ${registry.url} subject acme.events-value`);
    expect(history.versions.map((v) => [v.label, (v.type as { name?: string }).name])).toEqual([
      ['subject acme.events-value version 1', 'acme.Event'],
      ['subject acme.events-value version 2', 'acme.Event'],
    ]);
    expect(registry.requests.map((r) => r.path)).toEqual(['/subjects/acme.events-value/versions', '/subjects/acme.events-value/versions/1', '/subjects/acme.events-value/versions/2']);
    expect(new Set(registry.requests.map((r) => r.authorization))).toEqual(new Set([`Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`]));
  });

  it('orders versions numerically whatever order the registry lists them in', async () => {
    registry.subjects.set('acme.events-value', Array.from({ length: 10 }, (_, i) => ({ schema: eventSchema([{ name: `f${i}`, type: 'int' }]) })));
    registry.versionsBody = [10, 2, 1, 9, 3, 4, 5, 6, 7, 8];
    const history = await loadRegistryHistory(options());
    expect(history.versions.map((v) => v.label.replace('subject acme.events-value ', ''))).toEqual(Array.from({ length: 10 }, (_, i) => `version ${i + 1}`));
  });

  it('takes credentials from the URL, and never puts them in messages', async () => {
    registry.subjects.clear();
    const url = registry.url.replace('http://', `http://${USER}:${encodeURIComponent(PASSWORD)}@`);
    const error = await failure(() => loadRegistryHistory(options({ url, userInfo: undefined })));
    expect(registry.requests[0]?.authorization).toBe(`Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`);
    expect(error.code).toBe('E_USAGE');
    expect(JSON.stringify({ message: error.message, context: error.context })).not.toContain(PASSWORD);
  });

  it('refuses rejected credentials with E_CONFIG naming the way to set them', async () => {
    const error = await failure(() => loadRegistryHistory(options({ userInfo: `${USER}:wrong` })));
    expect(error.code).toBe('E_CONFIG');
    expect(error.message).toContain('HTTP 401, the registry refused the credentials; set MODEL_METRICS_REGISTRY_USER (or --registry-user)');
    expect(error.message).not.toContain('wrong');
    expect(error.context).toMatchObject({ option: '--registry-user', status: 401 });
  });

  it('refuses credentials without a colon', async () => {
    const error = await failure(() => loadRegistryHistory(options({ userInfo: 'justauser' })));
    expect(error).toMatchObject({ code: 'E_USAGE', context: { option: '--registry-user' } });
    expect(registry.requests).toEqual([]);
  });

  it('names an unknown subject with the registry message', async () => {
    const error = await failure(() => loadRegistryHistory(options({ subject: 'nope' })));
    expect(error.code).toBe('E_USAGE');
    expect(error.message).toContain(`listing the versions of subject "nope" at ${registry.url}: HTTP 404 Subject 'nope' not found.; check --subject`);
  });

  it('refuses a subject without versions', async () => {
    registry.subjects.set('empty', []);
    const error = await failure(() => loadRegistryHistory(options({ subject: 'empty' })));
    expect(error.code).toBe('E_USAGE');
    expect(error.message).toContain('has no versions; there is nothing to check compatibility against');
  });

  it('retries transient statuses, then succeeds', async () => {
    registry.failures = [503, 502];
    const history = await loadRegistryHistory(options({ retries: 2 }));
    expect(history.versions).toHaveLength(2);
    expect(registry.requests).toHaveLength(5);
  });

  it('gives up after the retries with a StorageError naming status, URL and attempts', async () => {
    registry.failures = [500, 500, 500];
    const error = await failure(() => loadRegistryHistory(options({ retries: 2 })));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain(`listing the versions of subject "acme.events-value" at ${registry.url}: HTTP 500 {"error_code":50000,"message":"scripted failure 500"}, after 3 attempt(s)`);
    expect(error.context).toMatchObject({ attempts: 3, operation: 'schema registry GET' });
  });

  it('does not retry a client error', async () => {
    registry.failures = [422];
    const error = await failure(() => loadRegistryHistory(options({ retries: 2 })));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain('HTTP 422 scripted failure 422');
    expect(registry.requests).toHaveLength(1);
  });

  it('times out a registry that does not answer', async () => {
    registry.hang = true;
    const error = await failure(() => loadRegistryHistory(options({ timeoutMs: 300, retries: 1 })));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain('no answer within 0.3 s, after 2 attempt(s)');
    expect(registry.requests).toHaveLength(2);
  });

  it('reports a refused connection', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await failure(() => loadRegistryHistory(options({ url: `http://127.0.0.1:${port}` })));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain(`at http://127.0.0.1:${port}: fetch failed (ECONNREFUSED)`);
  });

  it('refuses an answer that is not a version list', async () => {
    registry.versionsBody = { versions: [1, 2] };
    const error = await failure(() => loadRegistryHistory(options()));
    expect(error.code).toBe('E_STORAGE');
    expect(error.message).toContain('expected an array of version numbers; is --registry a Confluent-compatible registry?');
  });

  it('refuses non-Avro schemas and schema references', async () => {
    registry.subjects.set('proto', [{ schema: 'syntax = "proto3";', schemaType: 'PROTOBUF' }]);
    registry.subjects.set('refs', [{ schema: v1, references: [{ name: 'acme.Other', subject: 'other', version: 1 }] }]);
    expect(await failure(() => loadRegistryHistory(options({ subject: 'proto' })))).toMatchObject({ code: 'E_USAGE', message: expect.stringContaining('is a PROTOBUF schema; only Avro schemas can be checked') });
    expect(await failure(() => loadRegistryHistory(options({ subject: 'refs' })))).toMatchObject({ code: 'E_USAGE', message: expect.stringContaining('uses schema references') });
  });
});

describe('schema check --registry (the CLI as a child process)', () => {
  let dir: string;
  const env = (): Record<string, string> => ({ PATH: process.env.PATH ?? '', MODEL_METRICS_REGISTRY_USER: `${USER}:${PASSWORD}` });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mm-schema-registry-'));
    await writeFile(join(dir, 'v3-ok.avsc'), JSON.stringify(eventSchema([{ name: 'id', type: 'string' }, { name: 'value', type: 'double' }, { name: 'note', type: ['null', 'string'], default: null }])));
    await writeFile(join(dir, 'v3-bad.avsc'), JSON.stringify(eventSchema([{ name: 'id', type: 'string' }, { name: 'value', type: 'string' }])));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 for a compatible schema, with credentials from the environment', async () => {
    const result = await runCli(['schema', 'check', join(dir, 'v3-ok.avsc'), '--registry', registry.url, '--subject', 'acme.events-value', '--mode', 'BACKWARD_TRANSITIVE', '--json'], env());
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.json()).toMatchObject({ status: 'compatible', exit_code: 0, mode: 'BACKWARD_TRANSITIVE', compatible: true, history: ['subject acme.events-value version 1', 'subject acme.events-value version 2'] });
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  });

  it('exits 1 naming the field, the versions and both types for an incompatible schema', async () => {
    const result = await runCli(['schema', 'check', join(dir, 'v3-bad.avsc'), '--registry', registry.url, '--subject', 'acme.events-value'], env());
    expect(result.code, describeRun(result)).toBe(1);
    expect(result.stdout).toContain('FAILED backward: new schema');
    expect(result.stdout).toContain('reading data written with subject acme.events-value version 2');
    expect(result.stdout).toContain('/fields/value/type (field value) TYPE_MISMATCH: reader "string", writer "long"');
    expect(result.lastError()).toMatchObject({ code: 'E_SCHEMA_INCOMPATIBLE', field: 'value', exit_code: 1 });
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  });

  it('exits 2 when the registry refuses the credentials, without printing them', async () => {
    const result = await runCli(['schema', 'check', join(dir, 'v3-ok.avsc'), '--registry', registry.url, '--subject', 'acme.events-value', '--registry-user', `${USER}:not-${PASSWORD}`], { PATH: process.env.PATH ?? '' });
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.lastError()).toMatchObject({ code: 'E_CONFIG', option: '--registry-user' });
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  });

  it('exits 1 with a clear message when the registry is down', async () => {
    registry.failures = [503, 503, 503];
    const result = await runCli(['schema', 'check', join(dir, 'v3-ok.avsc'), '--registry', registry.url, '--subject', 'acme.events-value', '--registry-timeout', '5'], env());
    expect(result.code, describeRun(result)).toBe(1);
    expect(result.lastError()).toMatchObject({ code: 'E_STORAGE', attempts: 3 });
    expect(String(result.lastError()?.message)).toContain('HTTP 503');
  });
});
