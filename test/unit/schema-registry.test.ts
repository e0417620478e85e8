import { describe, expect, it } from 'vitest';
import { retryDelayMs, splitRegistryUrl } from '../../src/schema/registry.js';

// Issue 10: the registry backs off by the shared policy (full jitter), so each case fixes `random`;
// before, it waited exactly 250 ms × 2^(n−1) and exactly Retry-After.
describe('retryDelayMs', () => {
  const almostOne = 1 - Number.EPSILON;
  it('backs off exponentially from 250 ms with full jitter, capped at 10 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => retryDelayMs(attempt, null, () => almostOne))).toEqual([249, 499, 999, 1999, 3999, 7999, 9999, 9999]);
    expect([1, 2, 3].map((attempt) => retryDelayMs(attempt, null, () => 0))).toEqual([0, 0, 0]);
    expect(retryDelayMs(3, null, () => 0.5)).toBe(500);
  });

  it('waits at least Retry-After in seconds, capped at 10 s', () => {
    expect(retryDelayMs(1, '2', () => almostOne)).toBe(2000);
    expect(retryDelayMs(3, ' 0 ', () => 0)).toBe(0);
    expect(retryDelayMs(3, ' 0 ', () => 0.5)).toBe(500);
    expect(retryDelayMs(1, '3600', () => 0)).toBe(10_000);
  });

  it('ignores a Retry-After it cannot read (an HTTP date, garbage, a negative number, blank)', () => {
    for (const header of ['Wed, 21 Oct 2026 07:28:00 GMT', 'soon', '-5', ' ']) expect(retryDelayMs(2, header, () => 0.5), header).toBe(250);
  });
});

describe('splitRegistryUrl', () => {
  it('keeps the base URL without trailing slash, query or fragment', () => {
    expect(splitRegistryUrl('https://registry.example.com/')).toEqual({ base: 'https://registry.example.com', userInfo: undefined });
    expect(splitRegistryUrl('http://127.0.0.1:8081/prefix/?x=1#y')).toEqual({ base: 'http://127.0.0.1:8081/prefix', userInfo: undefined });
  });

  it('moves credentials out of the URL, decoded', () => {
    expect(splitRegistryUrl('https://svc%40acme:p%3Ass@registry.example.com')).toEqual({ base: 'https://registry.example.com', userInfo: 'svc@acme:p:ss' });
    expect(splitRegistryUrl('https://key@registry.example.com')).toEqual({ base: 'https://registry.example.com', userInfo: 'key:' });
  });

  it('refuses what is not an http(s) URL, naming the option', () => {
    expect(() => splitRegistryUrl('registry:8081')).toThrow(expect.objectContaining({ code: 'E_USAGE', context: { option: '--registry' } }));
    expect(() => splitRegistryUrl('not a url')).toThrow(expect.objectContaining({ code: 'E_USAGE', message: expect.stringContaining('is not a URL') }));
    expect(() => splitRegistryUrl('ftp://registry.example.com')).toThrow(expect.objectContaining({ code: 'E_USAGE', message: expect.stringContaining('http:// or https://') }));
  });
});
