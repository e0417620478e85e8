/**
 * What the S3 API says, apart from the SDK: its limits, the API call behind each store operation
 * (named in messages so an operator can match access logs), how its errors read, and how they map
 * to our error hierarchy with a way out, never with credentials or signed URLs. Imports no value of
 * the AWS SDK, so open.ts can describe an s3:// store before the SDK is loaded (issue 9).
 */
import { ModelMetricsError, NotFoundError, StorageError } from '../errors.js';
import type { BackendRetry } from './backend.js';
import { objectChanged, objectNotFound } from './object-store.js';
import { resilienceOf, retryDelayMs } from './retry-policy.js';
import type { S3Settings } from './types.js';

/** DeleteObjects takes at most 1000 keys per request (S3 API limit). */
export const DELETE_BATCH_SIZE = 1000;

/** ListObjectsV2 returns at most 1000 keys per page (S3 API limit). */
export const LIST_PAGE_SIZE = 1000;

/** ListMultipartUploads returns at most 1000 uploads per page (S3 API limit). */
export const UPLOADS_PAGE_SIZE = 1000;

/** The S3 API call behind each store operation. */
const API_NAMES: Record<string, string> = {
  list: 'ListObjectsV2',
  hasAny: 'ListObjectsV2',
  head: 'HeadObject',
  read: 'GetObject',
  readSmall: 'GetObject',
  write: 'PutObject/multipart upload',
  writeConditional: 'conditional PutObject',
  move: 'CopyObject',
  delete: 'DeleteObjects',
  deleteUnder: 'ListObjectsV2/DeleteObjects',
  listFolder: 'ListObjectsV2',
  listUploads: 'ListMultipartUploads',
  abortUpload: 'AbortMultipartUpload',
};

export function apiNameOf(operation: string): string {
  return API_NAMES[operation] ?? operation;
}

/** How an S3 store with these settings resumes its reads and retries its conditional-write conflicts. */
export function s3Retry(settings: S3Settings): BackendRetry {
  const { maxAttempts, idleTimeoutMs, timing } = resilienceOf(settings);
  return {
    maxAttempts,
    idleTimeoutMs,
    delayMs: (failures) => retryDelayMs(failures, timing),
    callName: (operation) => `S3 ${apiNameOf(operation)}`,
    redact,
  };
}

export interface SdkErrorDetails {
  name: string;
  message: string;
  status: number | undefined;
  attempts: number | undefined;
  code: string | undefined;
}

export function sdkErrorDetails(error: unknown): SdkErrorDetails {
  const record = (typeof error === 'object' && error !== null ? error : {}) as {
    name?: unknown;
    message?: unknown;
    code?: unknown;
    Code?: unknown;
    $metadata?: { httpStatusCode?: unknown; attempts?: unknown };
  };
  const status = record.$metadata?.httpStatusCode;
  const attempts = record.$metadata?.attempts;
  return {
    name: typeof record.name === 'string' ? record.name : 'Error',
    message: typeof record.message === 'string' ? record.message : String(error),
    status: typeof status === 'number' ? status : undefined,
    attempts: typeof attempts === 'number' ? attempts : undefined,
    code: typeof record.code === 'string' ? record.code : typeof record.Code === 'string' ? record.Code : undefined,
  };
}

/** True for a 412 Precondition Failed. */
export function isPreconditionFailed(details: SdkErrorDetails): boolean {
  return details.status === 412 || details.name === 'PreconditionFailed';
}

/**
 * Maps an SDK error to our hierarchy; the message names the S3 API call, the URI (of `key`, or of
 * the listed prefix), the attempts made (`attempts` when we counted them ourselves, else the
 * SDK's) and a way out.
 */
export function mapS3Error(
  error: unknown,
  where: { operation: string; uri: string; key: string; bucket: string },
  ifMatch?: string,
  attempts?: number,
): ModelMetricsError {
  if (error instanceof ModelMetricsError) return error;
  const { operation, uri, key, bucket } = where;
  const details = sdkErrorDetails(error);
  const attemptCount = attempts ?? details.attempts;
  const context = {
    operation,
    key,
    ...(attemptCount === undefined ? {} : { attempts: attemptCount }),
    ...(details.status === undefined ? {} : { status: details.status }),
    errorName: details.name,
  };
  if (ifMatch !== undefined && isPreconditionFailed(details)) return objectChanged(uri, key, ifMatch);
  if (details.name === 'NoSuchBucket') {
    return new NotFoundError(
      `bucket "${bucket}" does not exist (S3 ${apiNameOf(operation)} of ${uri}); check --root and the dataset URIs, and --s3-endpoint for MinIO`,
      { uri, ...context },
      { cause: error },
    );
  }
  if (isMissingObject(error)) return objectNotFound(uri, context, error);
  const attemptText = attemptCount === undefined ? '' : ` after ${attemptCount} attempt${attemptCount === 1 ? '' : 's'}`;
  const status = details.status === undefined ? '' : ` (HTTP ${details.status})`;
  return new StorageError(
    `S3 ${apiNameOf(operation)} of ${uri} failed${attemptText}: ${details.name}${status}: ${redact(details.message)}; ${wayOut(details)}`,
    { uri, ...context },
    { cause: error },
  );
}

/** What to do about a failed request, by kind of failure. */
function wayOut(details: SdkErrorDetails): string {
  const { status, name, code } = details;
  if (name === 'CredentialsProviderError' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'ExpiredToken') {
    return 'check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the IRSA web identity)';
  }
  if (status === 403 || name === 'AccessDenied') return 'check that the AWS credentials are allowed this operation on the bucket (IAM and bucket policy)';
  if (status === 301 || name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') {
    return "the bucket is in another region: set AWS_REGION to the bucket's region";
  }
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || name === 'TimeoutError') {
    return 'check that the endpoint is reachable (--s3-endpoint / AWS_ENDPOINT_URL_S3, network, proxy)';
  }
  if (name === 'InvalidRange' || status === 416) return 'the requested byte range starts past the end of the object';
  if (status !== undefined && status >= 500) return 'the store is unavailable or throttling; rerun the job later';
  return 'rerun the job; if it persists, check the store and the credentials';
}

/**
 * Why a store cannot serve a multipart-upload call, or undefined for an ordinary failure: the call
 * is not implemented (501 NotImplemented: s3rver 3.7.1 for ListMultipartUploads; 405
 * MethodNotAllowed: s3rver for AbortMultipartUpload; a bare 404 from a store without the route) or
 * not allowed (403: a policy without s3:ListBucketMultipartUploads / s3:AbortMultipartUpload).
 * Cleanup then degrades to what the bucket's lifecycle rule removes, instead of failing the run.
 */
export function unsupportedReason(error: unknown, api: string): string | undefined {
  const { name, status } = sdkErrorDetails(error);
  const permanent =
    status === 501 || name === 'NotImplemented' || status === 405 || name === 'MethodNotAllowed' || status === 403 || name === 'AccessDenied' || (status === 404 && name !== 'NoSuchBucket');
  return permanent ? `${api} answered ${name}${status === undefined ? '' : ` (HTTP ${status})`}` : undefined;
}

/** Never let signed-URL parameters or access key ids reach a message. */
export function redact(message: string): string {
  return message
    .replace(/(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s"']*/gi, '$1[redacted]')
    .replace(/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, '[redacted-access-key]');
}

/** True for the SDK's "no such object" errors: NoSuchKey from GET, a body-less 404 (NotFound) from HEAD. */
export function isMissingObject(error: unknown): boolean {
  const { name, status } = sdkErrorDetails(error);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

/** ETags arrive quoted (`"abc"`); manifests and comparisons use the bare value. */
export function unquoteEtag(etag: string | undefined): string {
  return etag === undefined ? '' : etag.replace(/"/g, '');
}

/**
 * Why a Content-Range header does not answer `bytes=start-end`, or undefined when it does. Guards
 * against stores that ignore or mis-handle ranges (s3rver 3.7.1 turns `bytes=0-0` into the whole object).
 */
export function contentRangeProblem(contentRange: string | undefined, start: number, end: number | undefined): string | undefined {
  if (contentRange === undefined) return 'no Content-Range (the whole object)';
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange);
  if (match === null) return `an unparsable Content-Range "${contentRange}"`;
  const [first, last, total] = [Number(match[1]), Number(match[2]), match[3] === '*' ? undefined : Number(match[3])];
  const expectedLast = end === undefined ? (total === undefined ? last : total - 1) : total === undefined ? end : Math.min(end, total - 1);
  if (first !== start || last !== expectedLast) return `Content-Range "${contentRange}"`;
  return undefined;
}

/** The StorageError of a DeleteObjects request some of whose keys failed. */
export function deleteFailures(rootUri: string, operation: string, total: number, failures: { key: string; code: string; message: string }[]): StorageError {
  const shown = failures
    .slice(0, 3)
    .map((failure) => `${failure.key}: ${failure.code} ${failure.message}`.trim())
    .join('; ');
  return new StorageError(
    `S3 delete under ${rootUri} failed for ${failures.length} of ${total} keys (${shown}${failures.length > 3 ? '; …' : ''}); ` +
      'check the s3:DeleteObject permission and retry',
    { operation, uri: rootUri, keys: failures.slice(0, 10).map((failure) => failure.key), failed: failures.length },
  );
}
