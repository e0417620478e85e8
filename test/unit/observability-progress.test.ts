import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/observability/log.js';
import { Progress, formatBytes } from '../../src/observability/progress.js';

/** A logger that keeps what it was given (the real one writes JSON to stderr). */
function collectingLogger(lines: Array<Record<string, unknown>>): Logger {
  return { info: (fields: Record<string, unknown>) => lines.push(fields) } as unknown as Logger;
}

describe('progress', () => {
  it('logs objects, records, bytes, rate and ETA as fields when stderr is not a terminal', () => {
    const lines: Array<Record<string, unknown>> = [];
    const progress = new Progress(collectingLogger(lines), undefined, 0);
    progress.begin(4, 4096);
    Object.assign(progress.state, { phase: '2026-03-02 final: predictions', objectsDone: 1, bytesDone: 1024, records: 10 });
    progress.tick();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ event: 'progress', phase: '2026-03-02 final: predictions', objects_done: 1, objects_total: 4, records: 10, bytes_done: 1024, bytes_total: 4096 });
    expect(typeof lines[0]!.bytes_per_s).toBe('number');
  });

  it('gives an ETA only once the rate means something', () => {
    const progress = new Progress(collectingLogger([]), undefined);
    progress.begin(2, 3000);
    progress.state.bytesDone = 1000;
    const started = Date.now();
    expect(progress.pace(started + 1000).etaSeconds).toBeNull();
    // 1000 bytes in 4 s: 250 B/s, 2000 bytes left.
    const later = progress.pace(started + 4000);
    expect(later.rate).toBeCloseTo(250, -1);
    expect(later.etaSeconds).toBeGreaterThanOrEqual(7);
    expect(later.etaSeconds).toBeLessThanOrEqual(9);
    expect(progress.describe(started + 4000)).toMatch(/0\/2 objects, 0 records, 1000 B\/2\.9 KiB, .* ETA \d+s/);
  });

  it('draws a live line at a terminal and erases it before a log line', () => {
    const written: string[] = [];
    const terminal = { write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream;
    const progress = new Progress(collectingLogger([]), terminal);
    progress.begin(1, 10);
    progress.tick();
    expect(written.at(-1)).toMatch(/^\r\x1b\[2K.*objects/);
    progress.clearLine();
    expect(written.at(-1)).toBe('\r\x1b[2K');
  });

  it('formats bytes for people', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(5 * 1024 ** 3)).toBe('5.0 GiB');
  });
});
