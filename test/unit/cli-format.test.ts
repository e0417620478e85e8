import { describe, expect, it } from 'vitest';
import { humanNumber, renderCsv, renderMarkdown, renderTable } from '../../src/cli/format.js';
import { Progress, formatBytes } from '../../src/observability/progress.js';
import { sanitizeForLog, silentLogger } from '../../src/observability/log.js';

describe('output formats', () => {
  const rows = [
    { name: 'eta, "v1"', n: 1234567, x: 0.123456789 },
    { name: 'b|c', n: 0, x: null },
  ];
  const columns = [
    { header: 'name', value: (r: (typeof rows)[number]) => r.name },
    { header: 'n', value: (r: (typeof rows)[number]) => humanNumber(r.n, 'count'), numeric: true },
    { header: 'x', value: (r: (typeof rows)[number]) => humanNumber(r.x), numeric: true },
  ];

  it('renders people-friendly numbers', () => {
    expect(humanNumber(null)).toBe('-');
    expect(humanNumber(1234567, 'count')).toBe('1,234,567');
    expect(humanNumber(0.123456789)).toBe('0.123457');
    expect(humanNumber(0.881, 'percent')).toBe('88.1%');
    expect(humanNumber(1.5e9)).toBe('1.5000e+9');
    expect(humanNumber(0)).toBe('0');
  });

  it('aligns a table, numbers to the right', () => {
    expect(renderTable(rows, columns).split('\n')).toEqual([
      'name               n         x',
      '---------  ---------  --------',
      'eta, "v1"  1,234,567  0.123457',
      'b|c                0         -',
    ]);
  });

  it('escapes pipes in Markdown and quotes CSV fields per RFC 4180, full precision, empty for null', () => {
    expect(renderMarkdown(rows, columns)).toContain('| b\\|c | 0 | - |');
    const csv = renderCsv(rows, [
      { header: 'name', raw: (r) => r.name },
      { header: 'x', raw: (r) => r.x },
    ]);
    expect(csv.split('\r\n')).toEqual(['name,x', '"eta, ""v1""",0.123456789', 'b|c,']);
  });
});

describe('progress and log hygiene', () => {
  it('describes objects, records, bytes, rate and ETA', () => {
    const progress = new Progress(silentLogger(), undefined);
    Object.assign(progress.state, { phase: 'predictions', objectsDone: 3, objectsTotal: 10, bytesDone: 1024 * 1024, bytesTotal: 4 * 1024 * 1024, records: 12345 });
    const line = progress.describe(Date.now() + 10_000);
    expect(line).toMatch(/^predictions: 3\/10 objects, 12,345 records, 1\.0 MiB\/4\.0 MiB, [\d.]+ KiB\/s, ETA \d+s$/);
    progress.begin(7, 100);
    expect(progress.describe()).toMatch(/^predictions: 0\/7 objects, 0 records, 0 B\/100 B, 0 B\/s, ETA -$/);
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
  });

  it('strips control characters (ANSI escapes, newlines) from data before it is logged', () => {
    expect(sanitizeForLog('dt=2026-01-01/\u001b[31mred\u001b[0m\nnext.avro')).toBe('dt=2026-01-01/?[31mred?[0m?next.avro');
  });
});
