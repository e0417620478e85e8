import { describe, expect, it } from 'vitest';
import { ModelMetricsError } from '../../src/errors.js';
import { assertRelativeKey, checkRange, sortByKeyBytes } from '../../src/storage/store-rules.js';

function codeOf(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    return error instanceof ModelMetricsError ? error.code : 'not a ModelMetricsError';
  }
  return undefined;
}

describe('sortByKeyBytes', () => {
  it('orders keys by UTF-8 bytes, as S3 lists them', () => {
    const items = [
      { key: 'hour=07/x.avro' },
      { key: '\u{1F600}' }, // F0 9F 98 80 in UTF-8; D83D DE00 in UTF-16
      { key: '\uFF5E' }, // EF BD 9E in UTF-8; FF5E in UTF-16
      { key: 'hour=07-backfill/x.avro' },
      { key: 'Z' },
      { key: 'a' },
      { key: 'é' }, // C3 A9
    ];
    expect(sortByKeyBytes(items).map((item) => item.key)).toEqual([
      'Z',
      'a',
      'hour=07-backfill/x.avro',
      'hour=07/x.avro',
      'é',
      '\uFF5E',
      '\u{1F600}',
    ]);
  });

  it('disagrees with the default string order exactly where UTF-16 and UTF-8 differ', () => {
    expect(['\uFF5E', '\u{1F600}'].sort()).toEqual(['\u{1F600}', '\uFF5E']);
    expect(sortByKeyBytes([{ key: '\u{1F600}' }, { key: '\uFF5E' }]).map((item) => item.key)).toEqual(['\uFF5E', '\u{1F600}']);
  });

  it('sorts in place and keeps the items themselves', () => {
    const b = { key: 'b', size: 2 };
    const a = { key: 'a', size: 1 };
    const items = [b, a];
    expect(sortByKeyBytes(items)).toBe(items);
    expect(items[0]).toBe(a);
    expect(items[1]).toBe(b);
  });
});

describe('assertRelativeKey', () => {
  it.each(['a', 'dt=2026-01-01/part-0.avro', 'a/b/c', 'région/ü.avro', '_SUCCESS'])('accepts %s', (key) => {
    expect(codeOf(() => assertRelativeKey(key, 'file:///root'))).toBeUndefined();
  });

  it.each(['', '/a', 'a/', 'a//b', '../a', 'a/../b', './a', 'a/.', 'a\0b'])('rejects the key %j with E_INTERNAL', (key) => {
    expect(codeOf(() => assertRelativeKey(key, 'file:///root'))).toBe('E_INTERNAL');
  });

  it.each(['', 'dt=2026-01-01/', 'dt=2026-01', 'a/b/'])('accepts the prefix %j', (prefix) => {
    expect(codeOf(() => assertRelativeKey(prefix, 's3://b', true))).toBeUndefined();
  });

  it.each(['/', '/a', 'a//', '../', 'a/../'])('rejects the prefix %j', (prefix) => {
    expect(codeOf(() => assertRelativeKey(prefix, 's3://b', true))).toBe('E_INTERNAL');
  });
});

describe('checkRange', () => {
  it.each([
    [{}, undefined, undefined],
    [{ start: 0 }, undefined, undefined],
    [{ start: 5 }, 5, undefined],
    [{ end: 9 }, 0, 9],
    [{ start: 0, end: 0 }, 0, 0],
    [{ start: 3, end: 7 }, 3, 7],
  ])('%j → start %s, end %s', (options, start, end) => {
    expect(checkRange(options, 's3://b/k', 'k')).toEqual({ start, end });
  });

  it.each([{ start: -1 }, { end: -1 }, { start: 1.5 }, { start: 5, end: 4 }, { start: Number.NaN }])('rejects %j with E_INTERNAL', (options) => {
    expect(codeOf(() => checkRange(options, 's3://b/k', 'k'))).toBe('E_INTERNAL');
  });
});
