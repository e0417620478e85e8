import { describe, expect, it } from 'vitest';
import { retryDelayMs, splitRegistryUrl } from '../../src/schema/registry.js';

describe('retryDelayMs', () => {
  it('backs off exponentially from 250 ms, capped at 10 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => retryDelayMs(attempt, null))).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  });

  it('follows Retry-After in seconds, capped at 10 s', () => {
    expect(retryDelayMs(1, '2')).toBe(2000);
    expect(retryDelayMs(3, ' 0 ')).toBe(0);
    expect(retryDelayMs(1, '3600')).toBe(10_000);
  });

  it('ignores a Retry-After it cannot read (an HTTP date, garbage, a negative number)', () => {
    expect(retryDelayMs(2, 'Wed, 21 Oct 2026 07:28:00 GMT')).toBe(500);
    expect(retryDelayMs(2, 'soon')).toBe(500);
    expect(retryDelayMs(2, '-5')).toBe(500);
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
