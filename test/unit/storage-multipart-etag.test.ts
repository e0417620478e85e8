import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PartHasher, isPlainMd5, multipartEtag } from '../../src/storage/multipart-etag.js';

const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');

function partsOf(body: Buffer, partSize: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += partSize) parts.push(body.subarray(offset, offset + partSize));
  return parts;
}

describe('multipartEtag', () => {
  it('is the MD5 of the binary part MD5s, then the part count (the S3 rule)', () => {
    // A published example: two parts whose MD5s are those of "a" and "b".
    const etags = [md5(Buffer.from('a')), md5(Buffer.from('b'))];
    const expected = createHash('md5').update(Buffer.concat(etags.map((etag) => Buffer.from(etag, 'hex')))).digest('hex');
    expect(multipartEtag(etags)).toBe(`${expected}-2`);
  });

  it('has no answer for part ETags that are no MD5 (SSE-KMS) or no parts', () => {
    expect(multipartEtag(['not-an-md5'])).toBeUndefined();
    expect(multipartEtag([])).toBeUndefined();
  });

  it('tells plain MD5 ETags from multipart ones', () => {
    expect(isPlainMd5(md5(Buffer.from('x')))).toBe(true);
    expect(isPlainMd5(`${md5(Buffer.from('x'))}-3`)).toBe(false);
  });
});

describe('PartHasher', () => {
  it('hashes lib-storage parts whatever the chunking', () => {
    const body = randomBytes(10_001);
    const expected = partsOf(body, 1000).map(md5);
    expect(expected).toHaveLength(11);
    for (const chunkSize of [1, 999, 1000, 4096, 10_001]) {
      const hasher = new PartHasher(1000);
      for (let offset = 0; offset < body.length; offset += chunkSize) hasher.update(body.subarray(offset, offset + chunkSize));
      expect(hasher.partMd5s()).toEqual(expected);
    }
  });

  it('makes no empty part at an exact boundary, and one empty part of an empty body', () => {
    const body = randomBytes(3000);
    const hasher = new PartHasher(1000);
    hasher.update(body);
    expect(hasher.partMd5s()).toEqual(partsOf(body, 1000).map(md5));
    expect(new PartHasher(1000).partMd5s()).toEqual([md5(Buffer.alloc(0))]);
  });
});
