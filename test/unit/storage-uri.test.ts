import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelMetricsError } from '../../src/errors.js';
import { joinUri, parseStoreUri } from '../../src/storage/uri.js';

function usageErrorOf(uri: string, option = '--root'): ModelMetricsError {
  try {
    parseStoreUri(uri, option);
  } catch (error) {
    expect(error).toBeInstanceOf(ModelMetricsError);
    return error as ModelMetricsError;
  }
  throw new Error(`expected ${JSON.stringify(uri)} to be rejected`);
}

describe('parseStoreUri: s3', () => {
  it.each([
    ['s3://bucket/prefix', 'bucket', 'prefix'],
    ['s3://bucket', 'bucket', ''],
    ['s3://bucket/', 'bucket', ''],
    ['s3://my.bucket-1/a/b/c/', 'my.bucket-1', 'a/b/c'],
    ['s3://bucket//leading', 'bucket', 'leading'],
    ['S3://bucket/Upper/Case', 'bucket', 'Upper/Case'],
    ['s3://bucket/dt=2026-01-01/hour=07', 'bucket', 'dt=2026-01-01/hour=07'],
    ['s3://bucket/région/ü', 'bucket', 'région/ü'],
    ['s3://abc/x', 'abc', 'x'],
    [`s3://${'a'.repeat(63)}/x`, 'a'.repeat(63), 'x'],
  ])('%s → bucket %s, prefix %s', (uri, bucket, prefix) => {
    expect(parseStoreUri(uri, '--root')).toEqual({ kind: 's3', bucket, prefix });
  });

  it.each([
    ['s3://', 'has no bucket'],
    ['s3:///prefix', 'has no bucket'],
    ['s3://ab/x', 'invalid bucket name'],
    [`s3://${'a'.repeat(64)}/x`, 'invalid bucket name'],
    ['s3://My-Bucket/x', 'invalid bucket name'],
    ['s3://bucket_name/x', 'invalid bucket name'],
    ['s3://-bucket/x', 'invalid bucket name'],
    ['s3://bucket-/x', 'invalid bucket name'],
    ['s3://my..bucket/x', 'invalid bucket name'],
    ['s3://192.168.1.1/x', 'invalid bucket name'],
    ['s3://bucket/a/../b', '".." segment'],
    ['s3://bucket/..', '".." segment'],
    ['s3://bucket/a/./b', '".." segment'],
    ['s3://bucket/a//b', 'empty segment'],
  ])('rejects %s (%s)', (uri, expected) => {
    const error = usageErrorOf(uri, '--predictions');
    expect(error.code).toBe('E_USAGE');
    expect(error.context.option).toBe('--predictions');
    expect(error.message).toContain('--predictions');
    expect(error.message).toContain(expected);
    expect(error.message).toContain('s3://bucket/');
  });
});

describe('parseStoreUri: local', () => {
  it.each([
    ['/data/models', '/data/models'],
    ['/data/models/', '/data/models'],
    ['file:///data/models', '/data/models'],
    ['file:///data/models/', '/data/models'],
    ['file://localhost/data/models', '/data/models'],
    ['FILE:///data/models', '/data/models'],
    ['file:///data/my%20models', '/data/my models'],
    ['file:///', '/'],
  ])('%s → %s', (uri, path) => {
    expect(parseStoreUri(uri, '--root')).toEqual({ kind: 'local', path });
  });

  it.each(['data', './data', '../shared/data', 'data/with:colon', 'C:'])('resolves the relative path %s against the working directory', (uri) => {
    expect(parseStoreUri(uri, '--root')).toEqual({ kind: 'local', path: resolve(process.cwd(), uri) });
  });

  it.each([
    ['file://relative/path', 'not an absolute file URI'],
    ['file:relative', 'not an absolute file URI'],
    ['file:/single-slash', 'not an absolute file URI'],
    ['file://otherhost/data', 'not an absolute file URI'],
    ['file:///data/../etc', '".." segment'],
    ['file:///data/./x', '".." segment'],
    ['file:///data?x=1', 'not a valid file URI'],
    ['file:///data#frag', 'not a valid file URI'],
  ])('rejects %s (%s)', (uri, expected) => {
    const error = usageErrorOf(uri, '--labels');
    expect(error.code).toBe('E_USAGE');
    expect(error.context.option).toBe('--labels');
    expect(error.message).toContain(expected);
    expect(error.message).toContain('file:///absolute/path');
  });
});

describe('parseStoreUri: other input', () => {
  it.each(['gs://bucket/x', 'http://host/x', 'https://bucket.s3.amazonaws.com/x', 's3a://bucket/x', 'hdfs://nn/x'])(
    'rejects the unsupported scheme of %s',
    (uri) => {
      const error = usageErrorOf(uri, '--metrics');
      expect(error.code).toBe('E_USAGE');
      expect(error.context.option).toBe('--metrics');
      expect(error.message).toContain('unsupported scheme');
      expect(error.message).toContain('s3://bucket/prefix, file:///absolute/path or a local path');
    },
  );

  it('rejects an empty URI', () => {
    const error = usageErrorOf('', '--curated');
    expect(error.code).toBe('E_USAGE');
    expect(error.context.option).toBe('--curated');
    expect(error.message).toContain('--curated is empty');
  });
});

describe('joinUri', () => {
  it.each([
    ['s3://bucket/root', 'predictions', 's3://bucket/root/predictions'],
    ['s3://bucket/root/', 'predictions', 's3://bucket/root/predictions'],
    ['s3://bucket', 'predictions', 's3://bucket/predictions'],
    ['file:///data', 'labels', 'file:///data/labels'],
    ['file:///', 'labels', 'file:///labels'],
    ['/data/root', 'curated', '/data/root/curated'],
    ['/', 'curated', '/curated'],
    ['data', 'metrics/', 'data/metrics'],
    ['s3://bucket/root', 'a/b', 's3://bucket/root/a/b'],
    ['s3://bucket/root', '', 's3://bucket/root'],
  ])('%s + %s → %s', (base, child, joined) => {
    expect(joinUri(base, child)).toBe(joined);
  });

  it('gives URIs that parse to the joined location', () => {
    expect(parseStoreUri(joinUri('s3://bucket/root', 'predictions'), '--root')).toEqual({
      kind: 's3',
      bucket: 'bucket',
      prefix: 'root/predictions',
    });
    expect(parseStoreUri(joinUri('file:///data', 'labels'), '--root')).toEqual({ kind: 'local', path: '/data/labels' });
  });

  it.each(['../x', 'a/../b', 'a//b', './a'])('refuses to join %s', (child) => {
    expect(() => joinUri('s3://bucket/root', child)).toThrow(expect.objectContaining({ code: 'E_USAGE' }));
  });
});
