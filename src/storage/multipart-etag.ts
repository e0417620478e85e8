/**
 * Recognising our own multipart upload after its CompleteMultipartUpload response was lost
 * (issue 5). A retried Complete is idempotent on AWS but not everywhere: MinIO answers NoSuchUpload
 * (minio/minio#13318), s3rver 3.7.1 a 500. The object then exists, and whether it holds our bytes
 * is told by its ETag, from the part ETags the store gave us (each the MD5 of one part): S3 and
 * MinIO give a multipart object the MD5 of the concatenated binary part MD5s, "-", the part count;
 * s3rver gives the plain MD5 of the whole object, so there the parts are re-hashed from a read-back.
 * Part ETags that are no MD5 (SSE-KMS, SSE-C) never match, and the write fails as before.
 */
import { createHash, type Hash } from 'node:crypto';

const MD5_HEX = /^[0-9a-f]{32}$/;

/** True for an ETag that is a plain MD5 (single PUT on S3 and MinIO; every object on s3rver). */
export function isPlainMd5(etag: string): boolean {
  return MD5_HEX.test(etag);
}

/** The S3 ETag of a multipart object with these part ETags (unquoted, in part order), or undefined when a part ETag is no MD5. */
export function multipartEtag(partEtags: readonly string[]): string | undefined {
  if (partEtags.length === 0 || !partEtags.every(isPlainMd5)) return undefined;
  const combined = createHash('md5');
  for (const etag of partEtags) combined.update(Buffer.from(etag, 'hex'));
  return `${combined.digest('hex')}-${partEtags.length}`;
}

/** MD5s of consecutive `partSize` parts of a byte stream (every part full but the last), as lib-storage splits uploads. */
export class PartHasher {
  private readonly digests: string[] = [];
  private part: Hash = createHash('md5');
  private inPart = 0;

  constructor(private readonly partSize: number) {}

  /** Feeds the next bytes. */
  update(chunk: Uint8Array): void {
    let offset = 0;
    while (offset < chunk.byteLength) {
      if (this.inPart === this.partSize) this.closePart();
      const take = Math.min(this.partSize - this.inPart, chunk.byteLength - offset);
      this.part.update(chunk.subarray(offset, offset + take));
      this.inPart += take;
      offset += take;
    }
  }

  /** The hex MD5 of every part; call once, at the end. */
  partMd5s(): string[] {
    if (this.inPart > 0 || this.digests.length === 0) this.closePart();
    return this.digests;
  }

  private closePart(): void {
    this.digests.push(this.part.digest('hex'));
    this.part = createHash('md5');
    this.inPart = 0;
  }
}
