/**
 * The S3 client of a store's settings: region, endpoint, retry strategy and idle timeouts, the
 * checksum mode of S3-compatible endpoints, and the middleware that lets a multipart write see the
 * part ETags its CompleteMultipartUpload sent (to recognise a completion whose response was lost).
 */
import { S3Client, type CompleteMultipartUploadCommandInput } from '@aws-sdk/client-s3';
import { AsyncLocalStorage } from 'node:async_hooks';
import { S3RetryStrategy, resilienceOf } from './retry-policy.js';
import { unquoteEtag } from './s3-protocol.js';
import type { S3Settings } from './types.js';

/** Region used when neither the settings nor the AWS chain (AWS_REGION, profile) name one. */
export const FALLBACK_REGION = 'us-east-1';

/** What the CompleteMultipartUpload of one write sent: the part ETags, in part order, unquoted. */
export interface CompletionRecord {
  partEtags?: string[];
}

/**
 * The CompletionRecord of the write in progress: lib-storage keeps its part ETags private, so
 * the `recordCompletedParts` middleware copies them from the Complete request, which runs within
 * the write's async context.
 */
export const completionRecords = new AsyncLocalStorage<CompletionRecord>();

/** Installs the `recordCompletedParts` middleware on a client (idempotent: it replaces itself). */
export function recordCompletedParts(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => (args) => {
      const record = completionRecords.getStore();
      if (record !== undefined && context.commandName === 'CompleteMultipartUploadCommand') {
        const parts = (args.input as CompleteMultipartUploadCommandInput).MultipartUpload?.Parts ?? [];
        record.partEtags = [...parts].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0)).map((part) => unquoteEtag(part.ETag));
      }
      return next(args);
    },
    { step: 'initialize', name: 'recordCompletedParts', override: true },
  );
}

/** Creates an S3 client for the settings; credentials come from the default AWS chain. */
export function createS3Client(settings: S3Settings): S3Client {
  const customEndpoint = settings.endpoint !== undefined;
  const { maxAttempts, idleTimeoutMs, timing } = resilienceOf(settings);
  return new S3Client({
    region: settings.region ?? regionFromChainOrFallback(),
    forcePathStyle: settings.forcePathStyle ?? false,
    maxAttempts,
    retryStrategy: new S3RetryStrategy(maxAttempts, timing),
    requestHandler: {
      // socketTimeout is an idle timeout (socket.setTimeout): it fires when no byte moves for this
      // long, before the response headers (a hung request) and while the SDK collects a response
      // body (List, Copy, DeleteObjects, errors), so a stalled store cannot hang the job. It is not
      // `requestTimeout`, which in @smithy/node-http-handler 4 only logs a warning by default and
      // stops at the headers. GetObject bodies also get our own idle watchdog (resumable-body.ts).
      connectionTimeout: idleTimeoutMs,
      socketTimeout: idleTimeoutMs,
    },
    ...(customEndpoint
      ? {
          endpoint: settings.endpoint,
          // Recent SDKs send flexible checksums (aws-chunked bodies with trailers) by default. s3rver
          // and several S3-compatible stores do not decode that framing and store it inside the
          // object: silent corruption. Checksums only where the API requires them (DeleteObjects).
          requestChecksumCalculation: 'WHEN_REQUIRED' as const,
          responseChecksumValidation: 'WHEN_REQUIRED' as const,
        }
      : {}),
  });
}

/**
 * A region provider: the region of the SDK's own chain (AWS_REGION, the profile's config file), or
 * FALLBACK_REGION, because the SDK throws "Region is missing" instead of defaulting. Resolved once per
 * client, through a throwaway client so that exactly the SDK's rules apply.
 */
function regionFromChainOrFallback(): () => Promise<string> {
  let resolved: Promise<string> | undefined;
  return () => {
    resolved ??= (async () => {
      const probe = new S3Client({});
      try {
        return await probe.config.region();
      } catch {
        return FALLBACK_REGION;
      } finally {
        probe.destroy();
      }
    })();
    return resolved;
  };
}
