/**
 * infra/iam (issue 4): the least-privilege policy grants exactly the IAM actions of the S3 calls in
 * the job's code (read from src/ itself, so a new call without its action fails here), each on
 * exactly the right prefixes of the bucket the aws overlay points at — list the four datasets, read
 * predictions and labels, read and write curated and metrics (their hidden _staging/ included) —
 * and the trust policy admits only the deployment's ServiceAccount. The requests of real runs are
 * checked against the policy in iam.integ.test.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readYaml, repoPath } from '../helpers/infra-helpers.js';
import { OPERATION_ACTIONS, UPLOAD_OPERATIONS, isAllowed, listOf, readJobPolicy } from '../helpers/iam-policy.js';

const policy = readJobPolicy();
const INPUTS = ['predictions', 'labels'];
// alerts (SPEC §8) is written like curated and metrics.
const OUTPUTS = ['curated', 'metrics', 'alerts'];

/** The bucket and prefix of the aws overlay's dataset root (MODEL_METRICS_ROOT). */
function awsRoot(): { bucket: string; prefix: string } {
  const kustomization = readYaml(repoPath('infra', 'kubernetes', 'overlays', 'aws', 'kustomization.yaml'));
  const literals: string[] = kustomization.configMapGenerator.find((g: { name: string }) => g.name === 'model-metrics-env').literals;
  const root = literals.find((l) => l.startsWith('MODEL_METRICS_ROOT='))!.slice('MODEL_METRICS_ROOT='.length);
  const match = /^s3:\/\/([^/]+)\/(.+?)\/?$/.exec(root);
  if (match === null) throw new Error(`MODEL_METRICS_ROOT ${root} is not s3://bucket/prefix`);
  return { bucket: match[1]!, prefix: match[2]! };
}

/** The S3 API operations the job's code makes, from its source: `new XCommand(`, `paginateX(`, lib-storage's `new Upload(`. */
function operationsInSource(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const add = (operation: string, file: string): void => {
    found.set(operation, [...(found.get(operation) ?? []), file]);
  };
  const files = (readdirSync(repoPath('src'), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => repoPath('src', f));
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const name = relative(repoPath(), file);
    for (const match of text.matchAll(/\bnew\s+(\w+)Command\s*\(/g)) add(match[1]!, name);
    for (const match of text.matchAll(/\bpaginate(\w+)\s*\(/g)) add(match[1]!, name);
    if (/\bnew\s+Upload\s*\(/.test(text)) for (const operation of UPLOAD_OPERATIONS) add(operation, name);
  }
  return found;
}

describe('the job\'s S3 calls', () => {
  const operations = operationsInSource();

  it('are made from src/storage only, and each has its IAM action in the table', () => {
    expect(operations.size).toBeGreaterThanOrEqual(6);
    for (const [operation, files] of operations) {
      for (const file of files) expect(file, `${operation}`).toMatch(/^src\/storage\//);
      expect(OPERATION_ACTIONS[operation], `${operation} (${files.join(', ')}) needs its IAM action in test/helpers/iam-policy.ts and infra/iam/README.md`).toBeDefined();
    }
    // Reading, writing, committing (copy + delete) and listing are all there.
    expect([...operations.keys()]).toEqual(expect.arrayContaining(['ListObjectsV2', 'HeadObject', 'GetObject', 'CopyObject', 'DeleteObjects', 'CreateMultipartUpload', 'AbortMultipartUpload']));
  });

  it('need exactly the actions the policy grants: nothing missing, nothing more', () => {
    const needed = new Set([...operations.keys()].flatMap((operation) => OPERATION_ACTIONS[operation] ?? []));
    const granted = new Set(policy.Statement.filter((s) => s.Effect === 'Allow').flatMap((s) => listOf(s.Action)));
    expect([...granted].sort()).toEqual([...needed].sort());
    expect(policy.Statement.every((s) => s.Effect === 'Allow')).toBe(true);
    for (const action of granted) expect(action, 'no wildcard actions').not.toMatch(/\*/);
  });

  it('are each documented in infra/iam/README.md', () => {
    const readme = readFileSync(repoPath('infra', 'iam', 'README.md'), 'utf8');
    for (const operation of operations.keys()) expect(readme, operation).toContain(operation);
  });
});

describe('the policy\'s resources', () => {
  const { bucket, prefix } = awsRoot();
  const arn = (key: string): string => `arn:aws:s3:::${bucket}/${key}`;
  const objectResources = (action: string): string[] =>
    policy.Statement.filter((s) => listOf(s.Action).includes(action)).flatMap((s) => listOf(s.Resource)).sort();

  it('name the bucket and prefix of the aws overlay\'s MODEL_METRICS_ROOT', () => {
    for (const resource of policy.Statement.flatMap((s) => listOf(s.Resource))) expect(resource).toMatch(new RegExp(`^arn:aws:s3:::${bucket}(/${prefix}/|$)`));
  });

  it('let the job read all four datasets, and write, copy and delete only in curated and metrics', () => {
    expect(objectResources('s3:GetObject')).toEqual([...INPUTS, ...OUTPUTS].map((d) => arn(`${prefix}/${d}/*`)).sort());
    for (const action of ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload']) expect(objectResources(action), action).toEqual(OUTPUTS.map((d) => arn(`${prefix}/${d}/*`)).sort());
  });

  it('list only under the four dataset prefixes, and still answer 404 for a missing key', () => {
    const list = (context: Record<string, string>): boolean => isAllowed(policy, { action: 's3:ListBucket', resource: `arn:aws:s3:::${bucket}`, context, why: 'list' });
    for (const dataset of [...INPUTS, ...OUTPUTS]) {
      expect(list({ 's3:prefix': `${prefix}/${dataset}/` }), dataset).toBe(true);
      expect(list({ 's3:prefix': `${prefix}/${dataset}/dt=2026-03-02/` }), dataset).toBe(true);
      expect(list({ 's3:prefix': `${prefix}/${dataset}/_staging/stage=final/dt=2026-03-02/` }), dataset).toBe(true);
    }
    for (const other of ['', `${prefix}/`, `${prefix}/other/`, 'other/predictions/', `${prefix}/predictionsX/`]) expect(list({ 's3:prefix': other }), JSON.stringify(other)).toBe(false);
    // GetObject/HeadObject of a missing key: S3 checks ListBucket without s3:prefix to choose 404 over 403.
    expect(list({})).toBe(true);
  });

  it('refuse writes to the inputs and anything outside the datasets', () => {
    const allowed = (action: string, key: string): boolean => isAllowed(policy, { action, resource: arn(key), context: {}, why: action });
    for (const dataset of INPUTS) {
      for (const action of ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload']) expect(allowed(action, `${prefix}/${dataset}/dt=2026-03-02/part-0.avro`), `${action} ${dataset}`).toBe(false);
      expect(allowed('s3:GetObject', `${prefix}/${dataset}/dt=2026-03-02/part-0.avro`)).toBe(true);
    }
    expect(allowed('s3:PutObject', `${prefix}/curated/_staging/stage=final/dt=2026-03-02/run/part-00000.avro`)).toBe(true);
    expect(allowed('s3:GetObject', `${prefix}/other/secret.csv`)).toBe(false);
    expect(allowed('s3:GetObject', `other/${prefix}/predictions/x.avro`)).toBe(false);
    expect(isAllowed(policy, { action: 's3:PutBucketPolicy', resource: `arn:aws:s3:::${bucket}`, context: {}, why: 'bucket policy' })).toBe(false);
  });
});

describe('the trust policy', () => {
  it('admits only the ServiceAccount the deployment runs as, through web identity', () => {
    const trust = JSON.parse(readFileSync(repoPath('infra', 'iam', 'trust-policy.json'), 'utf8'));
    const namespace = readYaml(repoPath('infra', 'kubernetes', 'base', 'kustomization.yaml')).namespace;
    const account = readYaml(repoPath('infra', 'kubernetes', 'base', 'serviceaccount.yaml')).metadata.name;
    expect(trust.Statement).toHaveLength(1);
    const statement = trust.Statement[0];
    expect(statement.Action).toBe('sts:AssumeRoleWithWebIdentity');
    const conditions = Object.entries<string>(statement.Condition.StringEquals);
    expect(conditions.find(([key]) => key.endsWith(':sub'))?.[1]).toBe(`system:serviceaccount:${namespace}:${account}`);
    expect(conditions.find(([key]) => key.endsWith(':aud'))?.[1]).toBe('sts.amazonaws.com');
    const role = readYaml(repoPath('infra', 'kubernetes', 'overlays', 'aws', 'serviceaccount-irsa.yaml')).metadata.annotations['eks.amazonaws.com/role-arn'];
    expect(statement.Principal.Federated.split(':')[4], 'the role and the OIDC provider are in one account').toBe(role.split(':')[4]);
  });
});

describe('the IAM README', () => {
  it('names the files it describes', () => {
    const readme = readFileSync(repoPath('infra', 'iam', 'README.md'), 'utf8');
    for (const file of readdirSync(repoPath('infra', 'iam')).filter((f) => f.endsWith('.json'))) expect(readme).toContain(file);
    expect(readme).toContain(join('infra', 'minio', 'lifecycle.json'));
  });
});
