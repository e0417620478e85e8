import { describe, expect, it } from 'vitest';
import { curatedPartKey, inputPartition, isInputObject, outputPartition } from '../../src/dataset/layout.js';
import { parseManifest } from '../../src/dataset/manifest.js';

describe('dataset layout (SPEC §1)', () => {
  it('builds partition and part keys', () => {
    expect(inputPartition('2026-03-02')).toBe('dt=2026-03-02/');
    expect(outputPartition('final', '2026-03-02')).toBe('stage=final/dt=2026-03-02/');
    expect(curatedPartKey('preliminary', '2026-03-02', 12)).toBe('stage=preliminary/dt=2026-03-02/part-00012.avro');
  });

  it('takes only .avro objects, and none below a hidden (_ or .) path segment', () => {
    expect(isInputObject('dt=2026-03-02/hour=07/part-0.avro')).toBe(true);
    expect(isInputObject('dt=2026-03-02/hour=07-backfill/part-0.avro')).toBe(true);
    expect(isInputObject('dt=2026-03-02/_SUCCESS')).toBe(false);
    expect(isInputObject('dt=2026-03-02/part-0.avro.crc')).toBe(false);
    expect(isInputObject('dt=2026-03-02/.part-0.avro')).toBe(false);
    expect(isInputObject('dt=2026-03-02/_part-0.avro')).toBe(false);
    expect(isInputObject('dt=2026-03-02/_temporary/0/_temporary/attempt_1/part-0.avro')).toBe(false);
    expect(isInputObject('dt=2026-03-02/.staging/x.avro')).toBe(false);
  });

  it('treats a _SUCCESS that is not one of ours as "not committed"', () => {
    expect(parseManifest(Buffer.from(''))).toBeUndefined();
    expect(parseManifest(Buffer.from('{"format":"other"}'))).toBeUndefined();
    expect(parseManifest(Buffer.from('not json'))).toBeUndefined();
  });
});
