/**
 * Output formats for people and machines: aligned terminal tables, Markdown, CSV and JSON.
 */

/** The formats of `report --format`. */
export const reportFormats = ['table', 'csv', 'md', 'json'] as const;
/** One of reportFormats. */
export type ReportFormat = (typeof reportFormats)[number];

/** A column: header and how to render a row's value. */
export interface Column<T> {
  header: string;
  value: (row: T) => string | number | null;
  /** Right-align (numbers). */
  numeric?: boolean;
}

/** Renders a number for people: 6 significant digits, thousands separators for counts. */
export function humanNumber(value: number | null, kind: 'count' | 'metric' | 'percent' = 'metric'): string {
  if (value === null || value === undefined) return '-';
  if (!Number.isFinite(value)) return String(value);
  if (kind === 'count') return value.toLocaleString('en-US');
  if (kind === 'percent') return `${(value * 100).toFixed(1)}%`;
  if (value !== 0 && (Math.abs(value) >= 1e7 || Math.abs(value) < 1e-4)) return value.toExponential(4);
  return Number(value.toPrecision(6)).toString();
}

function cell<T>(column: Column<T>, row: T): string {
  const value = column.value(row);
  return value === null ? '-' : String(value);
}

/** An aligned plain-text table. */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map((c) => cell(c, row)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: readonly string[]): string =>
    values.map((v, i) => (columns[i]!.numeric ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

/** A GitHub-flavoured Markdown table. */
export function renderMarkdown<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const escape = (v: string): string => v.replace(/\|/g, '\\|');
  const head = `| ${columns.map((c) => escape(c.header)).join(' | ')} |`;
  const rule = `| ${columns.map((c) => (c.numeric ? '---:' : '---')).join(' | ')} |`;
  return [head, rule, ...rows.map((row) => `| ${columns.map((c) => escape(cell(c, row))).join(' | ')} |`)].join('\n');
}

/** RFC 4180 CSV with full-precision numbers and empty cells for nulls. */
export function renderCsv<T>(rows: readonly T[], columns: ReadonlyArray<{ header: string; raw: (row: T) => string | number | null }>): string {
  const quote = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const lines = [columns.map((c) => quote(c.header)).join(',')];
  for (const row of rows) lines.push(columns.map((c) => { const v = c.raw(row); return v === null ? '' : quote(String(v)); }).join(','));
  return lines.join('\r\n');
}
