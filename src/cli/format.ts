/**
 * Output formats for people and machines: aligned terminal tables, Markdown, CSV and JSON.
 */

/** The formats of `report --format`. */
export const reportFormats = ['table', 'csv', 'md', 'json', 'html'] as const;
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

/** How a column of numbers is written for people. */
export type NumberKind = 'count' | 'metric' | 'percent';

/** Significant digits of every metric cell: a column never mixes 9.123 with 9.12508. */
export const METRIC_DIGITS = 4;

const metricFormat = new Intl.NumberFormat('en-US', { minimumSignificantDigits: METRIC_DIGITS, maximumSignificantDigits: METRIC_DIGITS });
const countFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/**
 * A formatter for one column, chosen from all its values so the column reads uniformly: counts with
 * thousands separators, percentages with one decimal, metrics with METRIC_DIGITS significant digits
 * and thousands separators — or, when any value of the column is at or above 1e9 or below 1e-3
 * (and not 0), every value in the same scientific notation.
 */
export function columnFormatter(values: ReadonlyArray<number | null>, kind: NumberKind): (value: number | null) => string {
  if (kind === 'count') return (v) => (v === null ? '-' : countFormat.format(v));
  if (kind === 'percent') return (v) => (v === null ? '-' : `${(v * 100).toFixed(1)}%`);
  const scientific = values.some((v) => v !== null && Number.isFinite(v) && v !== 0 && (Math.abs(v) >= 1e9 || Math.abs(v) < 1e-3));
  return (v) => {
    if (v === null) return '-';
    if (!Number.isFinite(v)) return String(v);
    return scientific ? v.toExponential(METRIC_DIGITS - 1) : metricFormat.format(v);
  };
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

/** Word-wraps prose to `width` characters, continuation lines indented by `indent` spaces; a word longer than a line stays whole. */
export function wrapText(text: string, width: number, indent = 4): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = ' '.repeat(indent) + word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}
