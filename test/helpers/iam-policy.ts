/**
 * What the IAM tests need to reason about infra/iam/model-metrics-policy.json: the S3 API operations
 * the job's code calls and the IAM action each needs (AWS "Actions, resources, and condition keys for
 * Amazon S3"), a small evaluator of identity-policy Allow statements (actions, resource globs and the
 * string conditions the policy uses), and the mapping of a recorded HTTP request to the
 * authorisation checks S3 makes for it.
 */
import type { RecordedRequest } from './cli.js';
import { readFileSync } from 'node:fs';
import { repoPath } from './infra-helpers.js';

/** IAM actions an S3 API operation is authorised by. CopyObject reads its source and writes its target. */
export const OPERATION_ACTIONS: Record<string, readonly string[]> = {
  ListObjectsV2: ['s3:ListBucket'],
  HeadObject: ['s3:GetObject'],
  GetObject: ['s3:GetObject'],
  PutObject: ['s3:PutObject'],
  CopyObject: ['s3:GetObject', 's3:PutObject'],
  DeleteObject: ['s3:DeleteObject'],
  DeleteObjects: ['s3:DeleteObject'],
  CreateMultipartUpload: ['s3:PutObject'],
  UploadPart: ['s3:PutObject'],
  CompleteMultipartUpload: ['s3:PutObject'],
  AbortMultipartUpload: ['s3:AbortMultipartUpload'],
  ListMultipartUploads: ['s3:ListBucketMultipartUploads'],
};

/** The operations lib-storage's Upload makes: PutObject for one part, the multipart calls otherwise, Abort on failure. */
export const UPLOAD_OPERATIONS = ['PutObject', 'CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'AbortMultipartUpload'];

/** One statement of an identity policy. */
export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

/** An identity policy document. */
export interface PolicyDocument {
  Version: string;
  Statement: PolicyStatement[];
}

/** The job's policy as committed. */
export function readJobPolicy(): PolicyDocument {
  return JSON.parse(readFileSync(repoPath('infra', 'iam', 'model-metrics-policy.json'), 'utf8')) as PolicyDocument;
}

/** A value or a list of values as a list. */
export function listOf<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

/** IAM's wildcard match: `*` any run of characters, `?` one character. */
function globMatches(pattern: string, value: string, ignoreCase = false): boolean {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`, ignoreCase ? 'i' : '').test(value);
}

/** One authorisation check: an action on a resource, with the request's condition keys. */
export interface AuthCheck {
  action: string;
  resource: string;
  /** Condition keys present in the request (a key absent here is absent from the request). */
  context: Record<string, string>;
  /** What the check is for, in assertion messages. */
  why: string;
}

function conditionHolds(operator: string, key: string, expected: string | string[], context: Record<string, string>): boolean {
  const ifExists = operator.endsWith('IfExists');
  const base = ifExists ? operator.slice(0, -'IfExists'.length) : operator;
  const actual = context[key];
  if (actual === undefined) return ifExists;
  switch (base) {
    case 'StringLike':
      return listOf(expected).some((pattern) => globMatches(pattern, actual));
    case 'StringEquals':
      return listOf(expected).includes(actual);
    default:
      throw new Error(`condition operator ${operator} is not understood by this evaluator; extend it before using it in the policy`);
  }
}

/** Whether an Allow statement grants the check (the policy holds no Deny; an explicit Deny would win). */
export function isAllowed(policy: PolicyDocument, check: AuthCheck): boolean {
  let allowed = false;
  for (const statement of policy.Statement) {
    if (!listOf(statement.Action).some((action) => globMatches(action, check.action, true))) continue;
    if (!listOf(statement.Resource).some((resource) => globMatches(resource, check.resource))) continue;
    const conditions = Object.entries(statement.Condition ?? {});
    if (!conditions.every(([operator, keys]) => Object.entries(keys).every(([key, expected]) => conditionHolds(operator, key, expected, check.context)))) continue;
    if (statement.Effect === 'Deny') return false;
    allowed = true;
  }
  return allowed;
}

/** The S3 operation of a request, and the authorisation checks S3 makes for it. */
export function checksOf(request: RecordedRequest): { operation: string; checks: AuthCheck[] } {
  const [, bucket = '', ...rest] = request.path.split('/');
  const key = rest.join('/');
  const q = request.query;
  const objectArn = (k: string): string => `arn:aws:s3:::${bucket}/${k}`;
  const bucketArn = `arn:aws:s3:::${bucket}`;
  const check = (action: string, resource: string, operation: string, context: Record<string, string> = {}): AuthCheck => ({ action, resource, context, why: `${operation} ${request.method} ${request.path}${q.size > 0 ? `?${q}` : ''}` });
  let operation: string;
  let checks: AuthCheck[];
  if (key === '') {
    if (request.method === 'GET' && q.get('list-type') === '2') {
      operation = 'ListObjectsV2';
      // The SDK sends `prefix` on every list (even empty), so s3:prefix is always in the request.
      checks = [check('s3:ListBucket', bucketArn, operation, q.has('prefix') ? { 's3:prefix': q.get('prefix') ?? '' } : {})];
    } else if (request.method === 'POST' && q.has('delete')) {
      operation = 'DeleteObjects';
      const keys = [...(request.body ?? '').matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]!.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'"));
      checks = keys.map((k) => check('s3:DeleteObject', objectArn(k), operation));
    } else if (request.method === 'GET' && q.has('uploads')) {
      operation = 'ListMultipartUploads';
      // A bucket-level action without an s3:prefix condition key.
      checks = [check('s3:ListBucketMultipartUploads', bucketArn, operation)];
    } else {
      throw new Error(`unmapped bucket-level request ${request.method} ${request.path}?${q}: add it to checksOf and the policy's README`);
    }
  } else if (request.method === 'GET' || request.method === 'HEAD') {
    operation = request.method === 'GET' ? 'GetObject' : 'HeadObject';
    checks = [check('s3:GetObject', objectArn(key), operation)];
  } else if (request.method === 'PUT' && request.copySource !== undefined) {
    operation = 'CopyObject';
    const source = request.copySource.replace(/^\//, '');
    const [sourceBucket, ...sourceKey] = source.split('/');
    checks = [check('s3:PutObject', objectArn(key), operation), check('s3:GetObject', `arn:aws:s3:::${sourceBucket}/${sourceKey.join('/')}`, operation)];
  } else if (request.method === 'PUT') {
    operation = q.has('uploadId') ? 'UploadPart' : 'PutObject';
    checks = [check('s3:PutObject', objectArn(key), operation)];
  } else if (request.method === 'POST' && q.has('uploads')) {
    operation = 'CreateMultipartUpload';
    checks = [check('s3:PutObject', objectArn(key), operation)];
  } else if (request.method === 'POST' && q.has('uploadId')) {
    operation = 'CompleteMultipartUpload';
    checks = [check('s3:PutObject', objectArn(key), operation)];
  } else if (request.method === 'DELETE') {
    operation = q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    checks = [check(operation === 'DeleteObject' ? 's3:DeleteObject' : 's3:AbortMultipartUpload', objectArn(key), operation)];
  } else {
    throw new Error(`unmapped request ${request.method} ${request.path}?${q}: add it to checksOf and the policy's README`);
  }
  // A missing object answers 404 only to a caller allowed to list the bucket (else 403), and that
  // check carries no s3:prefix (AWS S3 docs, GetObject/HeadObject "Permissions").
  if ((operation === 'GetObject' || operation === 'HeadObject') && request.status === 404) {
    checks.push(check('s3:ListBucket', bucketArn, `${operation} of a missing key`));
  }
  return { operation, checks };
}

/** The policy with its bucket renamed (the tests' buckets have generated names). */
export function withBucket(policy: PolicyDocument, from: string, to: string): PolicyDocument {
  return JSON.parse(JSON.stringify(policy).replaceAll(`arn:aws:s3:::${from}`, `arn:aws:s3:::${to}`)) as PolicyDocument;
}
