import zlib from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import { compressSync as snappyCompress, uncompressSync as snappyUncompress } from 'snappy';
import { describe, expect, it } from 'vitest';
import { crc32, FrameFormatError, portableCrc32, snappyUncompressedLength, xzStreams, zstdFrames } from '../../src/avro/codec-frames.js';
import {
  codecFor,
  findCodec,
  isOutputLimitError,
  readableCodecs,
  writableCodecs,
  type AvroDecompressor,
} from '../../src/avro/codecs.js';
import { bzip2, encodeWithCodec, hasBzip2Program, predictionV1Type } from '../helpers/avro-codec-helpers.js';
import { encodeFile, failure, readAll, samplePredictions } from '../helpers/avro-helpers.js';

const text = Buffer.from('model-metrics '.repeat(1000));
const MiB = 1024 * 1024;

/** The error `action` throws (the test fails when it throws none). */
function thrown(action: () => unknown): Error & { code?: string } {
  try {
    action();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

function decompressor(name: string): AvroDecompressor {
  return codecFor(name, 'k');
}

/** A zstandard frame made by hand: no content size, a 128 KiB window, then the given blocks (RFC 8878). */
function handMadeZstdFrame(blocks: { type: 'raw' | 'rle' | 'compressed'; size: number; content: Buffer }[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3])];
  blocks.forEach((block, i) => {
    const type = { raw: 0, rle: 1, compressed: 2 }[block.type];
    const header = (block.size << 3) | (type << 1) | (i === blocks.length - 1 ? 1 : 0);
    parts.push(Buffer.from([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff]), block.content);
  });
  return Buffer.concat(parts);
}

// `printf 'model-metrics checksum test, model-metrics checksum test' | zstd -c --check` (zstd 1.5.4):
// a streamed frame, so no content size, with an XXH64 content checksum.
const zstdCliFrame = Buffer.from(
  '28b52ffd0458250100e86d6f64656c2d6d65747269637320636865636b73756d20746573742c2001008150390133ef78f3',
  'hex',
);
// `node -e "process.stdout.write('model-metrics '.repeat(1000))" | xz -6 --check=crc64` (xz 5.4.1).
const xzText = Buffer.from(
  'fd377a585a000004e6d6b4460200210116000000742fe5a3e036af00425d00369bc8b05717d99348fe1c17dd69447ce96ed6596d5c435dad347f123b1e5a0dfd1b22d2bd602ac3915ed07c3a9b7882dc17f370ca4173cb01061278d9b1719ad600000000eabe0a313a731f6600015eb06d000000909a5a2cb1c467fb020000000004595a',
  'hex',
);
// `head -c 3145728 /dev/zero | xz -9 --check=crc64`: 588 bytes that inflate to 3 MiB.
const xzBomb = Buffer.from(
  [
    'fd377a585a000004e6d6b446020021011c00000010cf58ccffff11016c5d00006ffdffffa3b7ff473e481572396151b89228e6a38607f9eee41e82d3',
    '2fc53a3c014bb17ec98a8a4d2fa30dd97fa6e38c231153e05918c5758ae277f8b6947f0c6ac0de744964e2e95c53b204d8f7440cab5f0d6d46e9e5c3',
    '7688b79657acb64de1691d6ffb4b88106c42cb883f5c008fd04eaf262894711f3d8f24e1709ea7235fec28cb85d195988a7e2a91f22775f719c00698',
    '4d98fdd8afd5900fc42553f8f591363105a5b0ee6fc1704d470cd19111aaad601dbaceb127185c5986e9665258bee976ac59e4e55b0508f9c7daadfc',
    'fb522b74cd1e5b2042f9dd533df82964093b80cb2a6cdfb53bf0c4bd2e5faa0f3e4b664290130eff1093f8717859f80bcdff9528460fa9fc7cdefb9a',
    '302e56c08f85f38381c065c42553f8f591363105a5b0ee6fc1704d470cd19111aaad601dbaceb127185c5986e9665258bee976ac59e4e55b0508f9c7',
    'daadfcfb522b74cd1e5b2042f9dd533df82964093b80cb2a6cdfb53bf0c4bc4827e6589000ed009900ec7353a7fdbeae7c311a9fb78d316e709ea723',
    '5fec28cb85d195988a7e2a91f22775f719c006984d98fdd8afd5900fc42553f8f591363105a5b0ee6fc1704d470cd19111aaad601dbaceb127185c59',
    '86e9665258bee976ac59e4e55b0508f9c7daadfcfb522b74cd1e5b2042f9dd533df82964093b80cb2a6cdfb53bf0c4bd2e5faa0f3e4b664290130eff',
    '1093f8717859f80bccb0e2d900000000bb814717b504a03f0001a7048080c00128195d82b1c467fb020000000004595a',
  ].join(''),
  'hex',
);
// `head -c 10485760 /dev/zero | bzip2 -9` (bzip2 1.0.8): 49 bytes that inflate to 10 MiB.
const bzip2Bomb = Buffer.from(
  '425a6839314159265359335453790050504020c00000040008200030cc0529a60481362090278bb9229c284819aa29bc80',
  'hex',
);
// `node -e "process.stdout.write('model-metrics '.repeat(1000))" | bzip2 -9`.
const bzip2Text = Buffer.from(
  '425a68393141592653593e532c5e001387918040020e269c0020007040d03404d5501a626aa418a9062a419a9062a419a906aa41aa9066a419a9077520dd4837520f2a41f8bb9229c28481f29962f0',
  'hex',
);

describe('codec registry', () => {
  it('reads every Avro 1.11 codec and writes null, deflate, snappy and zstandard', () => {
    expect(readableCodecs()).toEqual(['bzip2', 'deflate', 'null', 'snappy', 'xz', 'zstandard']);
    expect(writableCodecs()).toEqual(['deflate', 'null', 'snappy', 'zstandard']);
    for (const name of writableCodecs()) expect(findCodec(name)).toBe(codecFor(name, 'k'));
    expect(findCodec('bzip2')).toBeUndefined();
    expect(findCodec('xz')).toBeUndefined();
  });

  it.each(['lz4', '__proto__', 'toString', 'constructor', '', 'Snappy'])('unknown codec %j is a corrupt object naming it', (name) => {
    expect(findCodec(name)).toBeUndefined();
    expect(() => codecFor(name, 'labels/dt=2026-01-02/x.avro')).toThrow(
      expect.objectContaining({
        code: 'E_CORRUPT_OBJECT',
        context: { uri: 'labels/dt=2026-01-02/x.avro', offset: 0 },
        message: expect.stringContaining(
          `unknown codec ${JSON.stringify(name)} in avro.codec, expected one of bzip2, deflate, null, snappy, xz, zstandard`,
        ),
      }),
    );
  });

  it("names Avro C's non-standard lzma codec and the way out", () => {
    expect(thrown(() => codecFor('lzma', 'k')).message).toContain(
      `unknown codec "lzma" in avro.codec (Avro C's raw LZMA2 codec, which is not in the Avro spec; rewrite the file with avromod --codec=deflate)`,
    );
  });

  it.each(writableCodecs())('%s round-trips, compressAsync gives the same bytes as compress', async (name) => {
    const codec = findCodec(name)!;
    for (const data of [text, Buffer.alloc(0), Buffer.from([0]), Buffer.from(samplePredictions(1).map(String).join())]) {
      const compressed = codec.compress(data);
      expect((await codec.compressAsync(data)).equals(compressed)).toBe(true);
      expect(codec.decompress(compressed, data.length).equals(data)).toBe(true);
    }
  });

  it.each(readableCodecs().filter((name) => name !== 'null'))('%s refuses bytes that are not its format, with a plain error', (name) => {
    const error = thrown(() => decompressor(name).decompress(Buffer.from('definitely not compressed data'), MiB));
    expect(error).toBeInstanceOf(Error);
    expect(isOutputLimitError(error)).toBe(false);
  });
});

describe('null', () => {
  it('passes bytes through, within the limit', () => {
    const codec = decompressor('null');
    expect(findCodec('null')!.compress(text)).toBe(text);
    expect(codec.decompress(text, text.length)).toBe(text);
    expect(() => codec.decompress(text, text.length - 1)).toThrow(expect.objectContaining({ code: 'ERR_BUFFER_TOO_LARGE' }));
    expect(isOutputLimitError(new Error('other'))).toBe(false);
  });
});

describe('deflate', () => {
  it('is raw DEFLATE (RFC 1951), interoperable with zlib', () => {
    const deflate = findCodec('deflate')!;
    const compressed = deflate.compress(text);
    expect(compressed.length).toBeLessThan(text.length / 10);
    expect(zlib.inflateRawSync(compressed).equals(text)).toBe(true);
    expect(deflate.decompress(zlib.deflateRawSync(text), MiB).equals(text)).toBe(true);
    // A zlib-wrapped stream (RFC 1950) is not what Avro writes, and must not be taken for one.
    expect(() => deflate.decompress(zlib.deflateSync(text), MiB)).toThrow();
  });

  it('refuses to inflate past maxOutputLength', () => {
    const deflate = decompressor('deflate');
    const bomb = zlib.deflateRawSync(Buffer.alloc(10 * MiB));
    expect(isOutputLimitError(thrown(() => deflate.decompress(bomb, 64 * 1024)))).toBe(true);
    expect(deflate.decompress(bomb, 10 * MiB).length).toBe(10 * MiB);
  });
});

describe('snappy', () => {
  it('is raw snappy followed by the big-endian CRC32 of the uncompressed data (Avro 1.11)', () => {
    const block = findCodec('snappy')!.compress(text);
    const body = block.subarray(0, block.length - 4);
    expect((snappyUncompress(body, { asBuffer: true }) as Buffer).equals(text)).toBe(true);
    expect(block.readUInt32BE(block.length - 4)).toBe(zlib.crc32(text));
    const made = Buffer.concat([snappyCompress(text), Buffer.alloc(4)]);
    made.writeUInt32BE(zlib.crc32(text), made.length - 4);
    expect(decompressor('snappy').decompress(made, MiB).equals(text)).toBe(true);
  });

  it('verifies the CRC32 and says stored versus computed', () => {
    const block = findCodec('snappy')!.compress(text);
    const stored = block.readUInt32BE(block.length - 4);
    block.writeUInt32BE((stored ^ 0x10) >>> 0, block.length - 4);
    const expected = `snappy CRC32 mismatch: stored 0x${((stored ^ 0x10) >>> 0).toString(16).padStart(8, '0')}, computed 0x${stored.toString(16).padStart(8, '0')} over ${text.length} uncompressed bytes`;
    expect(thrown(() => decompressor('snappy').decompress(block, MiB)).message).toBe(expected);
  });

  it('checks the declared length before inflating', () => {
    const block = findCodec('snappy')!.compress(Buffer.alloc(2 * MiB));
    expect(snappyUncompressedLength(block)).toBe(2 * MiB);
    expect(isOutputLimitError(thrown(() => decompressor('snappy').decompress(block, MiB)))).toBe(true);
    // A header claiming 4 GiB - 1 and nothing behind it: refused without allocating.
    const claim = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0]);
    expect(isOutputLimitError(thrown(() => decompressor('snappy').decompress(claim, 512 * MiB)))).toBe(true);
    expect(thrown(() => snappyUncompressedLength(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01])))).toBeInstanceOf(FrameFormatError);
  });

  it('names a block too short for its CRC32 and invalid snappy data', () => {
    expect(thrown(() => decompressor('snappy').decompress(Buffer.from([1, 2, 3]), MiB)).message).toBe(
      'snappy block of 3 bytes is shorter than its 4-byte CRC32',
    );
    const block = findCodec('snappy')!.compress(text);
    expect(thrown(() => decompressor('snappy').decompress(Buffer.concat([block.subarray(0, 40), block.subarray(-4)]), MiB)).message).toMatch(
      /^invalid snappy data \(/,
    );
  });
});

describe('zstandard', () => {
  it('writes one frame at level 3 with its content size, which the zstd format reads', () => {
    const compressed = findCodec('zstandard')!.compress(text);
    expect(zstdFrames(compressed)).toEqual([{ start: 0, end: compressed.length, contentSize: text.length, maxOutput: text.length }]);
  });

  it('reads a streamed frame (no content size, content checksum) as zstd 1.5 writes it, and checks the checksum', () => {
    const expected = 'model-metrics checksum test, model-metrics checksum test';
    expect(zstdFrames(zstdCliFrame)[0]!.contentSize).toBeUndefined();
    expect(decompressor('zstandard').decompress(zstdCliFrame, MiB).toString()).toBe(expected);
    const bad = Buffer.from(zstdCliFrame);
    bad[bad.length - 1]! ^= 1;
    expect(thrown(() => decompressor('zstandard').decompress(bad, MiB)).message).toBe(
      'zstandard frame at byte 0 of the block data: content checksum mismatch (zstd error 22)',
    );
  });

  it('reads raw and RLE blocks, bounding a frame without content size by its blocks', () => {
    const frame = handMadeZstdFrame([
      { type: 'rle', size: 100_000, content: Buffer.from('a') },
      { type: 'raw', size: 5, content: Buffer.from('hello') },
    ]);
    expect(zstdFrames(frame)[0]).toMatchObject({ contentSize: undefined, maxOutput: 100_005 });
    expect(decompressor('zstandard').decompress(frame, MiB).toString()).toBe(`${'a'.repeat(100_000)}hello`);
  });

  it('refuses frames whose declared size or block bound exceeds the limit, before inflating', () => {
    const declared = findCodec('zstandard')!.compress(Buffer.alloc(10 * MiB));
    expect(zstdFrames(declared)[0]!.contentSize).toBe(10 * MiB);
    expect(isOutputLimitError(thrown(() => decompressor('zstandard').decompress(declared, MiB)))).toBe(true);
    expect(decompressor('zstandard').decompress(declared, 10 * MiB).length).toBe(10 * MiB);
    const rle = handMadeZstdFrame(Array.from({ length: 10 }, () => ({ type: 'rle' as const, size: 128 * 1024, content: Buffer.from([0]) })));
    expect(isOutputLimitError(thrown(() => decompressor('zstandard').decompress(rle, MiB)))).toBe(true);
    expect(decompressor('zstandard').decompress(rle, 10 * 128 * 1024).length).toBe(10 * 128 * 1024);
  });

  it('reads several frames and skips skippable frames (RFC 8878 §3.1.2), within one budget', () => {
    const zstandard = findCodec('zstandard')!;
    const skippable = Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    const data = Buffer.concat([zstandard.compress(text), skippable, zstandard.compress(Buffer.from('tail'))]);
    expect(zstandard.decompress(data, MiB).toString()).toBe(`${text.toString()}tail`);
    expect(isOutputLimitError(thrown(() => zstandard.decompress(data, text.length + 3)))).toBe(true);
  });

  it('names frame-structure errors with their offset', () => {
    const zstandard = decompressor('zstandard');
    const frame = findCodec('zstandard')!.compress(text);
    expect(thrown(() => zstandard.decompress(frame.subarray(0, frame.length - 3), MiB)).message).toMatch(
      /^the data ends inside a zstandard block \(\d+ bytes needed, \d+ left\) at byte \d+ of the block data$/,
    );
    expect(thrown(() => zstandard.decompress(Buffer.concat([frame, Buffer.from('junk')]), MiB)).message).toBe(
      `expected a zstandard frame (magic 0xfd2fb528), found 0x6b6e756a at byte ${frame.length} of the block data`,
    );
    const withDictionary = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x01, 0x38, 0x07, 0x01, 0x00, 0x00]);
    expect(thrown(() => zstandard.decompress(withDictionary, MiB)).message).toBe(
      "zstandard frame needs dictionary 7, but Avro's zstandard codec uses none at byte 6 of the block data",
    );
    const reservedType = handMadeZstdFrame([{ type: 'raw', size: 0, content: Buffer.alloc(0) }]);
    reservedType[6]! |= 0b110;
    expect(thrown(() => zstandard.decompress(reservedType, MiB)).message).toBe('zstandard block has the reserved block type 3 at byte 6 of the block data');
    expect(thrown(() => zstandard.decompress(Buffer.alloc(0), MiB)).message).toBe('no zstandard frame in the block at byte 0 of the block data');
  });

  it('reports corrupt compressed blocks by libzstd error name', () => {
    const frame = findCodec('zstandard')!.compress(Buffer.from(samplePredictions(200).map((r) => JSON.stringify(r)).join('\n')));
    let named = 0;
    for (let at = 12; at < frame.length; at += 7) {
      const bad = Buffer.from(frame);
      bad[at]! ^= 0xa5;
      try {
        decompressor('zstandard').decompress(bad, 16 * MiB);
      } catch (error) {
        expect(isOutputLimitError(error)).toBe(false);
        if (/\(zstd error \d+\)$/.test((error as Error).message)) named++;
      }
    }
    expect(named).toBeGreaterThan(0);
  });
});

describe('xz', () => {
  it('reads an xz stream (LZMA2, CRC64 check, as Java writes it), its size known from the LZMA2 chunk headers', () => {
    expect(xzStreams(xzText)).toEqual([{ start: 0, end: xzText.length, uncompressedSize: text.length }]);
    expect(decompressor('xz').decompress(xzText, MiB).equals(text)).toBe(true);
    const sample = Buffer.from(samplePredictions(300).map((r) => JSON.stringify(r)).join('\n'));
    expect(decompressor('xz').decompress(xz.compressSync(sample), MiB).equals(sample)).toBe(true);
  });

  it('reads concatenated streams with stream padding', () => {
    const data = Buffer.concat([xzText, Buffer.alloc(8), xzText]);
    expect(xzStreams(data).map((s) => s.uncompressedSize)).toEqual([text.length, text.length]);
    expect(decompressor('xz').decompress(data, MiB).equals(Buffer.concat([text, text]))).toBe(true);
  });

  it('refuses a stream that declares more than the limit, before inflating', () => {
    expect(xzStreams(xzBomb)[0]!.uncompressedSize).toBe(3 * MiB);
    expect(isOutputLimitError(thrown(() => decompressor('xz').decompress(xzBomb, MiB)))).toBe(true);
    expect(decompressor('xz').decompress(xzBomb, 3 * MiB).equals(Buffer.alloc(3 * MiB))).toBe(true);
  });

  it('names structural damage, and the library finds damaged data by the CRC64 check', () => {
    const xzDecompressor = decompressor('xz');
    expect(thrown(() => xzDecompressor.decompress(xzText.subarray(0, xzText.length - 20), MiB)).message).toMatch(/^the data ends inside/);
    const badHeader = Buffer.from(xzText);
    badHeader[7]! ^= 1;
    expect(thrown(() => xzDecompressor.decompress(badHeader, MiB)).message).toBe('xz stream header CRC32 mismatch at byte 0 of the block data');
    const badCheck = Buffer.from(xzText);
    badCheck[103]! ^= 1; // inside the block's CRC64, bytes 100 to 107
    expect(thrown(() => xzDecompressor.decompress(badCheck, MiB)).message).toMatch(/^xz stream at byte 0 of the block data: /);
    expect(thrown(() => xzDecompressor.decompress(Buffer.concat([xzText, Buffer.from('junk')]), MiB)).message).toBe(
      `expected an xz stream header (magic fd 37 7a 58 5a 00), found 6a756e6b at byte ${xzText.length} of the block data`,
    );
  });
});

describe('bzip2', () => {
  it('reads bzip2 data (bzip2 1.0.8 -9)', () => {
    expect(decompressor('bzip2').decompress(bzip2Text, MiB).equals(text)).toBe(true);
    expect(decompressor('bzip2').decompress(Buffer.concat([bzip2Text, bzip2Text]), MiB).equals(Buffer.concat([text, text]))).toBe(true);
  });

  it('stops a bomb at the limit while inflating', () => {
    expect(isOutputLimitError(thrown(() => decompressor('bzip2').decompress(bzip2Bomb, MiB)))).toBe(true);
    expect(decompressor('bzip2').decompress(bzip2Bomb, 10 * MiB).length).toBe(10 * MiB);
  });

  it('verifies the block CRC', () => {
    const bad = Buffer.from(bzip2Text);
    bad[40]! ^= 0x01;
    expect(thrown(() => decompressor('bzip2').decompress(bad, MiB)).message).toMatch(/^invalid bzip2 data \(/);
  });
});

describe('CRC32', () => {
  it('the portable one and the one in use match zlib on every length and alignment', () => {
    const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) & 0xff));
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= bytes.length; end += 17) {
        const slice = bytes.subarray(start, end);
        expect(portableCrc32(slice)).toBe(zlib.crc32(slice));
        expect(crc32(slice)).toBe(zlib.crc32(slice));
      }
    }
    expect(portableCrc32(Buffer.from('123456789'))).toBe(0xcbf43926); // the CRC-32/ISO-HDLC check value
  });
});

describe('codec errors through the container reader (SPEC §1 --on-corrupt)', () => {
  const records = samplePredictions(40);
  const key = 'predictions/dt=2026-01-01/part-0.avro';

  it('a snappy CRC mismatch is a corrupt object with the key and the block offset', async () => {
    const file = encodeFile(records, { type: predictionV1Type, codec: 'snappy', blockBytes: 1500 });
    const bytes = Buffer.from(file.bytes);
    const crcAt = file.blockEnds[1]! - 16 - 4;
    bytes[crcAt]! ^= 0xff;
    const error = await failure(() => readAll(bytes, predictionV1Type, { uri: key }));
    expect(error.code).toBe('E_CORRUPT_OBJECT');
    expect(error.context).toEqual({ uri: key, offset: file.blockEnds[0], block: 1 });
    expect(error.message).toMatch(
      new RegExp(`^corrupt Avro object "${key}" at byte ${file.blockEnds[0]} \\(block 1\\): snappy block cannot be decompressed \\(snappy CRC32 mismatch: stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8} over \\d+ uncompressed bytes\\)`),
    );
  });

  const overLimit = async (codec: string, compress: (data: Buffer) => Buffer): Promise<void> => {
    const bytes = encodeWithCodec(predictionV1Type, records, codec, compress, 20);
    expect(await readAll(bytes, predictionV1Type, { uri: key })).toEqual(records);
    const error = await failure(() => readAll(bytes, predictionV1Type, { uri: key, limits: { maxDecompressedBlockBytes: 1000 } }));
    expect(error.code).toBe('E_CORRUPT_OBJECT');
    expect(error.context).toMatchObject({ uri: key, block: 0 });
    expect(error.message).toContain('block decompresses to more than');
  };

  it.each(['snappy', 'zstandard'])('a %s block over maxDecompressedBlockBytes is a corrupt object', (codec) =>
    overLimit(codec, (data) => findCodec(codec)!.compress(data)),
  );

  it('an xz block over maxDecompressedBlockBytes is a corrupt object', () => overLimit('xz', (data) => xz.compressSync(data)));

  it.skipIf(!hasBzip2Program)('a bzip2 block over maxDecompressedBlockBytes is a corrupt object (skipped without the bzip2 program: apt-get install bzip2)', () =>
    overLimit('bzip2', bzip2),
  );
});
