/**
 * Reads a subject's schema history from a Confluent-compatible schema registry over its REST API
 * (`GET /subjects/{subject}/versions`, then `GET /subjects/{subject}/versions/{version}` for each),
 * so the gate can check a candidate against what producers have registered (issue 3).
 * Credentials go in the Authorization header only; messages and reports name the registry by a URL
 * stripped of them.
 */
import { ConfigError, StorageError, UsageError } from '../errors.js';
import { type RetryTiming, retryWaitMs } from '../storage/retry-policy.js';
import { labelledSchema } from './check.js';
import type { SchemaHistory } from './history.js';

/** Where and how to read the history. */
export interface RegistryOptions {
  /** Base URL, e.g. `https://registry.example.com` or `http://localhost:8081/prefix`; may carry `user:password@`. */
  url: string;
  subject: string;
  /** `USER:PASSWORD` for HTTP basic auth (Confluent's `basic.auth.user.info`); beats credentials in the URL. */
  userInfo?: string;
  /** Per request, including reading the body. */
  timeoutMs: number;
  /** Extra attempts of a request after a network error, a timeout, or HTTP 429/500/502/503/504. */
  retries: number;
}

/** Statuses worth retrying: the registry or a proxy in front of it is briefly unavailable. */
const TRANSIENT_STATUSES = new Set([429, 500, 502, 503, 504]);

/**
 * How the registry client backs off: the shared policy (storage/retry-policy.ts, full-jitter
 * exponential) from a 250 ms step, no wait beyond 10 s whatever Retry-After asks. A registry is one
 * shared service, so its first step is longer than S3's 100 ms.
 */
export const REGISTRY_RETRY_TIMING: RetryTiming = { baseDelayMs: 250, maxDelayMs: 10_000 };

/**
 * Delay before retry number `attempt` (1 for the first retry): retryWaitMs of the shared policy,
 * with the registry's Retry-After (in seconds; an HTTP date or garbage is ignored) as a lower bound.
 */
export function retryDelayMs(attempt: number, retryAfter: string | null, random: () => number = Math.random): number {
  const seconds = retryAfter === null ? Number.NaN : Number(retryAfter.trim());
  const hinted = Number.isFinite(seconds) && seconds >= 0 && retryAfter?.trim() !== '';
  return retryWaitMs(attempt, REGISTRY_RETRY_TIMING, { random, ...(hinted ? { retryAfterMs: seconds * 1000 } : {}) });
}

/** The URL without credentials, query or trailing slash, for requests and messages; and the credentials it carried. */
export function splitRegistryUrl(url: string): { base: string; userInfo: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new UsageError(`--registry ${JSON.stringify(url)} is not a URL; e.g. --registry https://registry.example.com`, { option: '--registry' }, { cause: error });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`--registry must be an http:// or https:// URL, got ${parsed.protocol}//…`, { option: '--registry' });
  }
  const userInfo = parsed.username === '' ? undefined : `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
  parsed.username = '';
  parsed.password = '';
  parsed.search = '';
  parsed.hash = '';
  return { base: parsed.toString().replace(/\/+$/, ''), userInfo };
}

/** A failed attempt that may succeed when repeated. */
class TransientFailure extends Error {
  constructor(message: string, readonly retryAfter: string | null, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** What one GET returned. */
interface JsonResponse {
  status: number;
  body: unknown;
}

/** A short, single-line excerpt of a response body for messages. */
function excerpt(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

/** One GET with a timeout covering the body; transient failures are thrown as TransientFailure. */
async function getOnce(url: string, headers: Record<string, string>, timeoutMs: number, what: string): Promise<JsonResponse> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
    text = await response.text();
  } catch (error) {
    const timedOut = (error as Error).name === 'TimeoutError';
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = timedOut ? `no answer within ${timeoutMs / 1000} s` : `${(error as Error).message}${cause?.code === undefined ? '' : ` (${cause.code})`}`;
    throw new TransientFailure(`${what}: ${reason}`, null, { cause: error });
  }
  if (TRANSIENT_STATUSES.has(response.status)) {
    throw new TransientFailure(`${what}: HTTP ${response.status} ${excerpt(text)}`, response.headers.get('retry-after'));
  }
  let body: unknown = undefined;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, body };
}

/** A GET retried on transient failures; the last failure becomes a StorageError. */
async function getJson(url: string, headers: Record<string, string>, options: RegistryOptions, what: string): Promise<JsonResponse> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await getOnce(url, headers, options.timeoutMs, what);
    } catch (error) {
      if (!(error instanceof TransientFailure)) throw error;
      if (attempt >= options.retries) {
        throw new StorageError(
          `${error.message}, after ${attempt + 1} attempt(s); check that the registry is up and reachable from here`,
          { uri: url, operation: 'schema registry GET', attempts: attempt + 1 },
          { cause: error },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs(attempt + 1, error.retryAfter)));
    }
  }
}

/** The registry's own error message (`{"error_code": 40401, "message": "..."}`), when it sent one. */
function registryMessage(body: unknown): string {
  if (typeof body === 'object' && body !== null && 'message' in body) return excerpt(String((body as { message: unknown }).message));
  return typeof body === 'string' ? excerpt(body) : '';
}

/** Turns a non-2xx answer into the error a user can act on. */
function failureOf(response: JsonResponse, url: string, subject: string, what: string): Error {
  const detail = registryMessage(response.body);
  const context = { uri: url, operation: 'schema registry GET', status: response.status };
  if (response.status === 401 || response.status === 403) {
    return new ConfigError(
      `${what}: HTTP ${response.status}, the registry refused the credentials; set MODEL_METRICS_REGISTRY_USER (or --registry-user) to USER:PASSWORD with read access to subject "${subject}"`,
      { ...context, option: '--registry-user' },
    );
  }
  if (response.status === 404) {
    return new UsageError(`${what}: HTTP 404 ${detail}; check --subject (and that --registry is the registry's base URL)`, { ...context, option: '--subject' });
  }
  return new StorageError(`${what}: HTTP ${response.status} ${detail}`, context);
}

/** The subject's versions, oldest first, each parsed as a schema the job can read. */
export async function loadRegistryHistory(options: RegistryOptions): Promise<SchemaHistory> {
  const { base, userInfo: urlUserInfo } = splitRegistryUrl(options.url);
  const { subject } = options;
  if (subject.trim() === '') throw new UsageError('--subject must not be empty', { option: '--subject' });
  const userInfo = options.userInfo ?? urlUserInfo;
  const headers: Record<string, string> = { accept: 'application/vnd.schemaregistry.v1+json, application/json' };
  if (userInfo !== undefined) {
    if (!userInfo.includes(':')) {
      throw new UsageError('registry credentials must be USER:PASSWORD (the password may be empty: USER:)', { option: '--registry-user' });
    }
    headers.authorization = `Basic ${Buffer.from(userInfo, 'utf8').toString('base64')}`;
  }
  const subjectUrl = `${base}/subjects/${encodeURIComponent(subject)}/versions`;
  const source = `registry ${base} subject ${subject}`;
  const listed = await getJson(subjectUrl, headers, options, `listing the versions of subject "${subject}" at ${base}`);
  if (listed.status !== 200) throw failureOf(listed, subjectUrl, subject, `listing the versions of subject "${subject}" at ${base}`);
  const versions = listed.body;
  if (!Array.isArray(versions) || !versions.every((v) => Number.isSafeInteger(v) && (v as number) > 0)) {
    throw new StorageError(`${subjectUrl} answered ${excerpt(JSON.stringify(versions) ?? '')}, expected an array of version numbers; is --registry a Confluent-compatible registry?`, {
      uri: subjectUrl,
      operation: 'schema registry GET',
    });
  }
  if (versions.length === 0) {
    throw new UsageError(`subject "${subject}" at ${base} has no versions; there is nothing to check compatibility against`, { option: '--subject' });
  }
  // One version at a time: histories are short, and a registry is a shared service.
  const history: SchemaHistory = { source, versions: [] };
  for (const version of [...(versions as number[])].sort((a, b) => a - b)) {
    const url = `${subjectUrl}/${version}`;
    const what = `reading version ${version} of subject "${subject}" at ${base}`;
    const answer = await getJson(url, headers, options, what);
    if (answer.status !== 200) throw failureOf(answer, url, subject, what);
    const body = answer.body as { schema?: unknown; schemaType?: unknown; references?: unknown } | undefined;
    if (typeof body !== 'object' || body === null || typeof body.schema !== 'string') {
      throw new StorageError(`${what}: the answer has no "schema" string`, { uri: url, operation: 'schema registry GET' });
    }
    if (body.schemaType !== undefined && body.schemaType !== 'AVRO') {
      throw new UsageError(`subject "${subject}" version ${version} is a ${String(body.schemaType)} schema; only Avro schemas can be checked`, { option: '--subject' });
    }
    if (Array.isArray(body.references) && body.references.length > 0) {
      throw new UsageError(`subject "${subject}" version ${version} uses schema references, which the gate does not resolve; check against a folder of self-contained .avsc files`, { option: '--subject' });
    }
    let json: unknown;
    try {
      json = JSON.parse(body.schema);
    } catch (error) {
      throw new StorageError(`${what}: its "schema" is not valid JSON (${(error as Error).message})`, { uri: url, operation: 'schema registry GET' }, { cause: error });
    }
    history.versions.push(labelledSchema(json, `subject ${subject} version ${version}`));
  }
  return history;
}
