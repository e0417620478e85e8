import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { codecFor, findCodec, isOutputLimitError, supportedCodecs } from '../../src/avro/codecs.js';

const text = Buffer.from('model-metrics '.repeat(1000));

describe('codecs', () => {
  it('supports null and deflate', () => {
    expect(supportedCodecs()).toEqual(['deflate', 'null']);
  });

  it('deflate is raw DEFLATE (RFC 1951), interoperable with zlib', () => {
    const deflate = codecFor('deflate', 'k');
    const compressed = deflate.compress(text);
    expect(compressed.length).toBeLessThan(text.length / 10);
    expect(zlib.inflateRawSync(compressed).equals(text)).toBe(true);
    expect(deflate.decompress(zlib.deflateRawSync(text), 1 << 20).equals(text)).toBe(true);
    // A zlib-wrapped stream (RFC 1950) is not what Avro writes, and must not be taken for one.
    expect(() => deflate.decompress(zlib.deflateSync(text), 1 << 20)).toThrow();
  });

  it('refuses to inflate past maxOutputLength', () => {
    const deflate = codecFor('deflate', 'k');
    const bomb = zlib.deflateRawSync(Buffer.alloc(10 * 1024 * 1024));
    let error: unknown;
    try {
      deflate.decompress(bomb, 64 * 1024);
    } catch (caught) {
      error = caught;
    }
    expect(isOutputLimitError(error)).toBe(true);
    expect(deflate.decompress(bomb, 10 * 1024 * 1024).length).toBe(10 * 1024 * 1024);
  });

  it('null passes bytes through, within the limit', () => {
    const codec = codecFor('null', 'k');
    expect(codec.compress(text)).toBe(text);
    expect(codec.decompress(text, text.length)).toBe(text);
    expect(() => codec.decompress(text, text.length - 1)).toThrow(expect.objectContaining({ code: 'ERR_BUFFER_TOO_LARGE' }));
    expect(isOutputLimitError(new Error('other'))).toBe(false);
  });

  it.each(['snappy', '__proto__', 'toString', 'constructor', ''])('unknown codec %j is a corrupt object naming it', (name) => {
    expect(findCodec(name)).toBeUndefined();
    expect(() => codecFor(name, 'labels/dt=2026-01-02/x.avro')).toThrow(
      expect.objectContaining({
        code: 'E_CORRUPT_OBJECT',
        context: { key: 'labels/dt=2026-01-02/x.avro', offset: 0 },
        message: expect.stringContaining(`unknown codec ${JSON.stringify(name)} in avro.codec, expected one of deflate, null`),
      }),
    );
  });
});
