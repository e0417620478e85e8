import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashUtf8, MAX_KEY_TABLE_ENTRIES, StringKeyTable } from '../../src/join/key-table.js';

/** Reference MurmurHash3 x86_32 (seed 0) over UTF-8 bytes, written from the published algorithm. */
function murmur3(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let h = 0;
  const blocks = bytes.length >>> 2;
  for (let i = 0; i < blocks; i++) {
    let k = bytes.readInt32LE(i * 4);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  for (let i = bytes.length & 3; i > 0; i--) k ^= bytes[blocks * 4 + i - 1]! << (8 * (i - 1));
  if ((bytes.length & 3) !== 0) {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Interns every key, asserting dense insertion-order indexes, then checks every key is found. */
function internAll(table: StringKeyTable, keys: string[]): void {
  const before = table.size;
  keys.forEach((key, i) => {
    expect(table.intern(key)).toBe(before + i);
    expect(table.lastWasInserted).toBe(true);
  });
  keys.forEach((key, i) => {
    expect(table.find(key)).toBe(before + i);
    expect(table.keyAt(before + i)).toBe(key);
  });
}

describe('StringKeyTable', () => {
  it('maps 1M random UUIDs to their insertion index and finds no absent one', () => {
    const n = 1_000_000;
    const keys = Array.from({ length: n }, () => randomUUID());
    const table = new StringKeyTable();
    for (let i = 0; i < n; i++) {
      if (table.intern(keys[i]!) !== i || !table.lastWasInserted) throw new Error(`intern of key ${i} gave ${table.find(keys[i]!)}`);
    }
    expect(table.size).toBe(n);
    let wrong = 0;
    for (let i = 0; i < n; i++) if (table.find(keys[i]!) !== i) wrong++;
    expect(wrong).toBe(0);
    for (let i = 0; i < n; i += 9973) {
      expect(table.intern(keys[i]!)).toBe(i);
      expect(table.lastWasInserted).toBe(false);
      expect(table.keyAt(i)).toBe(keys[i]);
    }
    expect(table.size).toBe(n);
    let found = 0;
    for (let i = 0; i < 100_000; i++) if (table.find(randomUUID()) !== -1) found++;
    expect(found).toBe(0);
    // Compact: 36 key bytes, 12 bytes of entry columns and the slots, not a JS object per key.
    expect(table.byteSize / n).toBeLessThan(80);
  }, 120_000);

  it('handles the empty key, prefixes of one another and keys that differ only in the tail bytes', () => {
    const table = new StringKeyTable();
    expect(table.find('')).toBe(-1);
    const keys = ['', 'a', 'ab', 'abc', 'abcd', 'abcde', 'abcdf', 'abcdefgh', 'abcdefgi', '\u0000', '\u0000\u0000', 'b'];
    internAll(table, keys);
    expect(table.find('abcdeg')).toBe(-1);
    expect(table.find('abcdefg')).toBe(-1);
    expect(table.find('\u0000\u0000\u0000')).toBe(-1);
    expect(table.intern('')).toBe(0);
    expect(table.lastWasInserted).toBe(false);
  });

  it('stores non-ASCII keys as UTF-8 and tells them apart from ASCII look-alikes', () => {
    const table = new StringKeyTable();
    const keys = ['é', 'e', 'e\u0301', '日本語', '日本', '🙂', '🙂🙂', 'abcdé', 'abcdefgé', 'abcd日本語ascii', 'Ünïcödé-id-42', 'ÿ', '\u00ff\u00ff\u00ff\u00ff'];
    internAll(table, keys);
    expect(table.find('日本語 ')).toBe(-1);
    expect(table.find('ÿÿÿ')).toBe(-1);
    // 'é' is U+00E9, one UTF-16 unit but two UTF-8 bytes; a Latin-1 encoding would confuse it with '\xe9'.
    expect(table.find('\u00c3\u00a9')).toBe(-1);
    expect(table.byteSize).toBeGreaterThan(0);
  });

  it('handles keys longer than the scratch buffer, ASCII and multi-byte', () => {
    const table = new StringKeyTable();
    const keys = ['x'.repeat(300), 'x'.repeat(301), 'é'.repeat(200), '日'.repeat(5000), 'y'.repeat(100_000) + '🙂', 'short'];
    internAll(table, keys);
    expect(table.find('x'.repeat(299))).toBe(-1);
    expect(table.find('日'.repeat(4999))).toBe(-1);
  });

  it('gives a key larger than an arena an arena of its own, before and after regular keys', () => {
    const table = new StringKeyTable(0, { chunkBytes: 64 });
    const keys: string[] = [];
    for (let i = 0; i < 200; i++) keys.push(i % 17 === 0 ? `big-${i}-${'z'.repeat(100 + i)}` : `k${i}`);
    keys.push('日'.repeat(40)); // 120 bytes, more than one arena
    keys.push('');
    internAll(table, keys);
    expect(table.find(`big-0-${'z'.repeat(99)}`)).toBe(-1);
  });

  it('handles a key larger than the default 16 MiB arena', () => {
    const table = new StringKeyTable();
    const huge = 'h'.repeat(16 * 1024 * 1024 + 3);
    internAll(table, ['before', huge, 'after']);
    expect(table.find(huge.slice(1))).toBe(-1);
    expect(table.byteSize).toBeGreaterThan(huge.length);
  });

  it('stays correct across every resize, from the smallest capacity', () => {
    const table = new StringKeyTable(0);
    const keys: string[] = [];
    for (let i = 0; i < 50_000; i++) {
      keys.push(`id-${i}`);
      table.intern(`id-${i}`);
      if ((i & (i + 1)) === 0) {
        // After each power of two (around each doubling), every key so far is still found.
        for (let j = 0; j <= i; j++) expect(table.find(keys[j]!)).toBe(j);
      }
    }
    for (let j = 0; j < keys.length; j++) expect(table.find(keys[j]!)).toBe(j);
  });

  it('resolves slot collisions in a tiny table by linear probing', () => {
    const table = new StringKeyTable(1);
    // 11 keys in 16 slots: shared start slots are all but certain; every probe chain must hold.
    const keys = Array.from({ length: 11 }, (_, i) => `c${i}`);
    internAll(table, keys);
    for (let i = 0; i < 200; i++) expect(table.find(`absent-${i}`)).toBe(-1);
  });

  it('tells apart keys with the same full 32-bit hash', () => {
    // Birthday search with the reference hash: about 77k keys give a full 32-bit collision.
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; pair === undefined; i++) {
      const key = `collide-${i}`;
      const hash = murmur3(key);
      const other = seen.get(hash);
      if (other !== undefined) pair = [other, key];
      else seen.set(hash, key);
    }
    if (pair === undefined) throw new Error("unreachable: the loop ends with a pair");
    expect(murmur3(pair[0])).toBe(murmur3(pair[1]));
    const table = new StringKeyTable(1);
    internAll(table, [pair[0], 'filler', pair[1]]);
    expect(table.size).toBe(3);
  });

  it('holds more than 2^24 keys, past the V8 Map limit', () => {
    const n = 2 ** 24 + 50_000;
    const table = new StringKeyTable();
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      if (table.intern(String(i)) !== i) throw new Error(`key ${i} got index ${table.find(String(i))}`);
    }
    const seconds = (performance.now() - started) / 1000;
    expect(table.size).toBe(n);
    for (let i = 0; i < n; i += 4099) expect(table.find(String(i))).toBe(i);
    for (let i = n - 1000; i < n; i++) expect(table.find(String(i))).toBe(i);
    expect(table.find(String(n))).toBe(-1);
    expect(table.find('-1')).toBe(-1);
    expect(table.find('00')).toBe(-1);
    expect(table.intern('16777216')).toBe(16_777_216);
    expect(table.lastWasInserted).toBe(false);
    expect(table.keyAt(n - 1)).toBe(String(n - 1));
    expect(table.byteSize).toBeLessThan(2 ** 30);
    console.log(`StringKeyTable: ${n} keys interned in ${seconds.toFixed(1)} s, ${(table.byteSize / 2 ** 20).toFixed(0)} MiB`);
  }, 180_000);

  it('internBytes with the bytes and their hashUtf8 finds the entry intern gives the string, and the reverse', () => {
    // ASCII and UUID ids, multi-byte UTF-8, the empty key, keys past the 64-byte copy loop and past the scratch buffer.
    const keys = [randomUUID(), 'a', 'abcde', '', 'é', '日本語-id', '🙂', 'x'.repeat(65), 'y'.repeat(300), '日'.repeat(200)];
    const byString = new StringKeyTable(1);
    const byBytes = new StringKeyTable(1);
    keys.forEach((key, i) => {
      // At an odd offset in a larger array, as in a batch's id arena.
      const bytes = Buffer.concat([Buffer.from('#'), Buffer.from(key, 'utf8'), Buffer.from('##')]);
      const start = 1;
      const end = bytes.length - 2;
      const hash = hashUtf8(bytes, start, end);
      expect(byString.intern(key)).toBe(i);
      expect(byString.internBytes(bytes, start, end, hash)).toBe(i);
      expect(byString.lastWasInserted).toBe(false);
      expect(byBytes.internBytes(bytes, start, end, hash)).toBe(i);
      expect(byBytes.lastWasInserted).toBe(true);
      expect(byBytes.intern(key)).toBe(i);
      expect(byBytes.lastWasInserted).toBe(false);
    });
    keys.forEach((key, i) => expect(byBytes.keyAt(i)).toBe(key));
    expect(byBytes.size).toBe(keys.length);
  });

  it('documents its entry limit and rejects bad arguments', () => {
    expect(MAX_KEY_TABLE_ENTRIES).toBe(2 ** 30);
    const table = new StringKeyTable();
    table.intern('only');
    expect(() => table.keyAt(1)).toThrow(expect.objectContaining({ code: 'E_INTERNAL' }));
    expect(() => table.keyAt(-1)).toThrow(/does not exist/);
    expect(() => new StringKeyTable(16, { chunkBytes: 10 })).toThrow(/multiple of 4/);
    expect(() => new StringKeyTable(16, { chunkBytes: 2 ** 31 })).toThrow(/2\^30/);
    expect(() => new StringKeyTable(-1)).toThrow(/non-negative/);
  });
});
