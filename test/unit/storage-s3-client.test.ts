import { afterEach, describe, expect, it, vi } from 'vitest';
import { S3Client } from '@aws-sdk/client-s3';
import { S3ObjectStore, createS3Client, resilienceOf } from '../../src/storage/s3.js';
import { S3RetryStrategy } from '../../src/storage/retry-policy.js';
import { destroyStores, openStore } from '../../src/storage/index.js';

const clients: S3Client[] = [];
function tracked(client: S3Client): S3Client {
  clients.push(client);
  return client;
}

afterEach(() => {
  for (const client of clients.splice(0)) client.destroy();
  vi.unstubAllEnvs();
});

/** Keep the developer's ~/.aws out of the region chain. */
function isolateAwsConfig(): void {
  vi.stubEnv('AWS_CONFIG_FILE', '/nonexistent/aws-config');
  vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', '/nonexistent/aws-credentials');
  vi.stubEnv('AWS_PROFILE', undefined);
  vi.stubEnv('AWS_DEFAULT_REGION', undefined);
}

describe('createS3Client', () => {
  it('falls back to us-east-1 when neither settings nor the AWS chain name a region', async () => {
    isolateAwsConfig();
    vi.stubEnv('AWS_REGION', undefined);
    expect(await tracked(createS3Client({})).config.region()).toBe('us-east-1');
  });

  it('takes the region from the AWS chain (AWS_REGION)', async () => {
    isolateAwsConfig();
    vi.stubEnv('AWS_REGION', 'eu-west-3');
    expect(await tracked(createS3Client({})).config.region()).toBe('eu-west-3');
  });

  it('prefers the region of the settings', async () => {
    isolateAwsConfig();
    vi.stubEnv('AWS_REGION', 'eu-west-3');
    expect(await tracked(createS3Client({ region: 'ap-south-1' })).config.region()).toBe('ap-south-1');
  });

  it('sends checksums only where required on a custom endpoint, with path style when asked', async () => {
    const client = tracked(createS3Client({ endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, region: 'us-east-1' }));
    expect(await client.config.requestChecksumCalculation()).toBe('WHEN_REQUIRED');
    expect(await client.config.responseChecksumValidation()).toBe('WHEN_REQUIRED');
    expect(client.config.forcePathStyle).toBe(true);
  });

  it('keeps the SDK checksum defaults on AWS itself', async () => {
    const client = tracked(createS3Client({ region: 'us-east-1' }));
    expect(await client.config.requestChecksumCalculation()).toBe('WHEN_SUPPORTED');
    expect(client.config.forcePathStyle).toBe(false);
  });
});

describe('retries and timeouts', () => {
  it('takes the attempt budget from the settings (default 5), with our retry strategy', async () => {
    const client = tracked(createS3Client({ region: 'us-east-1', maxAttempts: 7 }));
    expect(await client.config.maxAttempts()).toBe(7);
    expect(await client.config.retryStrategy()).toBeInstanceOf(S3RetryStrategy);
    expect(await tracked(createS3Client({ region: 'us-east-1' })).config.maxAttempts()).toBe(5);
  });

  it('sets the idle timeout as the socket and connection timeout of the HTTP handler', async () => {
    const client = tracked(createS3Client({ region: 'us-east-1', idleTimeoutMs: 12_345 }));
    const handlerConfig = (client.config.requestHandler as unknown as { configProvider: Promise<Record<string, unknown>> }).configProvider;
    expect(await handlerConfig).toMatchObject({ socketTimeout: 12_345, connectionTimeout: 12_345 });
  });

  it('fills in defaults and refuses nonsense', () => {
    expect(resilienceOf({})).toEqual({ maxAttempts: 5, idleTimeoutMs: 60_000, timing: { baseDelayMs: 100, maxDelayMs: 20_000 } });
    for (const settings of [{ maxAttempts: 0 }, { maxAttempts: 1.5 }, { idleTimeoutMs: -1 }, { retryBaseDelayMs: -1 }]) {
      expect(() => resilienceOf(settings)).toThrow(expect.objectContaining({ code: 'E_USAGE', context: { option: Object.keys(settings)[0] } }));
    }
  });
});

describe('S3ObjectStore configuration', () => {
  const client = (): S3Client => tracked(createS3Client({ region: 'us-east-1' }));

  it('derives its URI and object URIs from bucket and prefix', () => {
    const store = new S3ObjectStore(client(), 'bucket', 'root/predictions');
    expect(store.uri).toBe('s3://bucket/root/predictions');
    expect(store.uriOf('dt=2026-01-01/a.avro')).toBe('s3://bucket/root/predictions/dt=2026-01-01/a.avro');
    const atRoot = new S3ObjectStore(client(), 'bucket', '');
    expect(atRoot.uri).toBe('s3://bucket');
    expect(atRoot.uriOf('a.avro')).toBe('s3://bucket/a.avro');
  });

  it.each([1024, 5 * 1024 * 1024 - 1, 6 * 1024 ** 3, 5 * 1024 * 1024 + 0.5])('refuses the part size %d (S3 allows 5 MiB to 5 GiB)', (uploadPartSize) => {
    expect(() => new S3ObjectStore(client(), 'bucket', '', { uploadPartSize })).toThrow(expect.objectContaining({ code: 'E_USAGE' }));
  });

  it.each([0, -1, 1.5])('refuses the queue size %d', (uploadQueueSize) => {
    expect(() => new S3ObjectStore(client(), 'bucket', '', { uploadQueueSize })).toThrow(expect.objectContaining({ code: 'E_USAGE' }));
  });
});

describe('openStore', () => {
  it('shares one client per distinct endpoint, path style, region, attempts and timeout', () => {
    const cache = new Map<string, S3Client>();
    try {
      const settings = { endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, region: 'us-east-1' };
      openStore('s3://bucket/a', settings, '--predictions', cache);
      openStore('s3://other/b', { ...settings, uploadPartSize: 16 * 1024 * 1024 }, '--labels', cache);
      expect(cache.size).toBe(1);
      openStore('s3://bucket/a', { ...settings, region: 'eu-west-1' }, '--curated', cache);
      expect(cache.size).toBe(2);
      // Retries and timeouts live in the client, so other values need another client.
      openStore('s3://bucket/a', { ...settings, maxAttempts: 9 }, '--curated', cache);
      openStore('s3://bucket/a', { ...settings, idleTimeoutMs: 1000 }, '--curated', cache);
      expect(cache.size).toBe(4);
    } finally {
      destroyStores(cache);
    }
    expect(cache.size).toBe(0);
  });

  it('opens a local store for paths and file URIs, without creating a client', () => {
    const cache = new Map<string, S3Client>();
    expect(openStore('/data/root', {}, '--root', cache).uri).toBe('file:///data/root');
    expect(openStore('file:///data/root', {}, '--root', cache).uri).toBe('file:///data/root');
    expect(cache.size).toBe(0);
  });

  it('names the option in usage errors', () => {
    expect(() => openStore('gs://bucket', {}, '--metrics')).toThrow(expect.objectContaining({ code: 'E_USAGE', context: expect.objectContaining({ option: '--metrics' }) }));
  });
});
