/**
 * Renders a report (SPEC §7) as text: an aligned table that fits TABLE_WIDTH columns, Markdown, CSV
 * and JSON. Every format names its fields as the JSON keys of ReportRow do; the human formats write
 * numbers through one formatter per column, so a column never mixes precisions.
 */
import type { Report, ReportRow } from '../report/build.js';
import { dateRanges, humanDuration } from '../report/build.js';
import { type Column, type NumberKind, columnFormatter, renderCsv, renderMarkdown, renderTable, wrapText } from './format.js';

/** The text formats (html is written by src/report/html.ts). */
export type TextFormat = 'table' | 'md' | 'csv' | 'json';

/** A terminal table is cut to this many characters per line (what a default terminal shows). */
export const TABLE_WIDTH = 100;

type FieldName = keyof ReportRow;
interface Field {
  name: FieldName;
  kind: 'text' | NumberKind | 'duration' | 'flag' | 'notes';
}

/** Every field of a row, in the order of the CSV header and the Markdown table. */
const fields: readonly Field[] = [
  { name: 'kind', kind: 'text' },
  { name: 'model', kind: 'text' },
  { name: 'version', kind: 'text' },
  { name: 'slice', kind: 'text' },
  { name: 'window', kind: 'text' },
  { name: 'window_start', kind: 'text' },
  { name: 'window_end', kind: 'text' },
  { name: 'stage', kind: 'text' },
  { name: 'days', kind: 'count' },
  { name: 'count', kind: 'count' },
  { name: 'labeled', kind: 'count' },
  { name: 'coverage', kind: 'percent' },
  { name: 'mse', kind: 'metric' },
  { name: 'mse_ci_low', kind: 'metric' },
  { name: 'mse_ci_high', kind: 'metric' },
  { name: 'rmse', kind: 'metric' },
  { name: 'mae', kind: 'metric' },
  { name: 'mae_ci_low', kind: 'metric' },
  { name: 'mae_ci_high', kind: 'metric' },
  { name: 'mape', kind: 'percent' },
  { name: 'bias', kind: 'metric' },
  { name: 'r2', kind: 'metric' },
  { name: 'label_delay_p95_s', kind: 'duration' },
  { name: 'label_age_s', kind: 'duration' },
  { name: 'restated_mse_delta', kind: 'metric' },
  { name: 'preliminary_ci_covers_final', kind: 'flag' },
  { name: 'notes', kind: 'notes' },
];

/** The CSV header: exactly the JSON keys of a row. */
export const csvHeader: readonly string[] = fields.map((f) => f.name);

function rawValue(row: ReportRow, field: Field): string | number | null {
  const value = row[field.name];
  if (field.kind === 'notes') return (value as string[]).join('; ');
  if (typeof value === 'boolean') return String(value);
  return value as string | number | null;
}

/** Human cells of one field over all rows, with one formatter for the whole column. */
function humanColumn(rows: readonly ReportRow[], field: Field, sharedWith: readonly FieldName[] = []): (row: ReportRow) => string {
  if (field.kind === 'text') return (row) => (row[field.name] as string | null) ?? '-';
  if (field.kind === 'notes') return (row) => row.notes.join('; ');
  if (field.kind === 'flag') return (row) => (row[field.name] === null ? '-' : row[field.name] ? 'yes' : 'no');
  if (field.kind === 'duration') return (row) => (row[field.name] === null ? '-' : humanDuration(row[field.name] as number));
  const names = [field.name, ...sharedWith];
  const format = columnFormatter(rows.flatMap((r) => names.map((n) => r[n] as number | null)), field.kind);
  return (row) => format(row[field.name] as number | null);
}

const fieldOf = (name: FieldName): Field => fields.find((f) => f.name === name)!;

/** A metric with its interval in one cell, all three written by the same column formatter: `9.123 [9.010, 9.236]`. */
function withInterval(rows: readonly ReportRow[], name: 'mse' | 'mae'): Column<ReportRow> {
  const format = humanColumn(rows, fieldOf(name), [`${name}_ci_low`, `${name}_ci_high`]);
  const low = humanColumn(rows, { name: `${name}_ci_low`, kind: 'metric' }, [name, `${name}_ci_high`]);
  const high = humanColumn(rows, { name: `${name}_ci_high`, kind: 'metric' }, [name, `${name}_ci_low`]);
  const halfWidth = humanColumn(rows, { name: `${name}_ci_high`, kind: 'metric' }, [name]);
  const value = (r: ReportRow): string => {
    const [center, lo, hi] = [r[name], r[`${name}_ci_low`], r[`${name}_ci_high`]];
    if (center === null) return '-';
    if (lo === null || hi === null) return format(r);
    // A symmetric interval (not clipped at 0) as ± its half-width, which is narrower than both bounds.
    const half = hi - center;
    if (Math.abs(center - lo - half) <= 1e-9 * Math.max(Math.abs(hi), 1e-300)) return `${format(r)} ±${halfWidth({ ...r, [`${name}_ci_high`]: half })}`;
    return `${format(r)} [${low(r)}, ${high(r)}]`;
  };
  return { header: `${name} ±95% ci`, numeric: true, value };
}

function plain(rows: readonly ReportRow[], name: FieldName): Column<ReportRow> {
  const field = fieldOf(name);
  return { header: name, numeric: field.kind !== 'text' && field.kind !== 'notes', value: humanColumn(rows, field) };
}

function title(report: Report): string {
  const stage = report.stage === 'both' ? 'preliminary and final' : report.stage;
  const what = [report.model, report.slice === null ? null : `slice ${report.slice}`].filter((x) => x !== null).join(', ');
  return `${stage} metrics by ${report.by}, ${report.from} .. ${report.to}${what === '' ? '' : ` (${what})`}`;
}

/** The lines under a report's table: the report-wide notes, then one line per stage with missing dates. */
export function trailerLines(report: Report): string[] {
  return [...report.notes, ...missingLines(report)];
}

/** One line per stage with missing dates. */
export function missingLines(report: Report): string[] {
  return (['preliminary', 'final'] as const)
    .map((stage) => ({ stage, dates: report.missing.filter((m) => m.stage === stage).map((m) => m.date) }))
    .filter((m) => m.dates.length > 0)
    .map((m) => `no committed ${m.stage} metrics for ${m.dates.length} day(s): ${dateRanges(m.dates)}`);
}

/** The table's columns, most important first; the optional tail is cut from the end to fit the width. */
function tableColumns(rows: readonly ReportRow[], noteRefs: Map<ReportRow, string>): { required: Column<ReportRow>[]; optional: Array<{ column: Column<ReportRow>; name: string }> } {
  const sliced = rows.some((r) => r.slice !== 'all');
  const required = [
    plain(rows, 'model'),
    plain(rows, 'version'),
    ...(sliced ? [plain(rows, 'slice')] : []),
    plain(rows, 'window'),
    plain(rows, 'stage'),
    plain(rows, 'count'),
    plain(rows, 'labeled'),
    plain(rows, 'coverage'),
    withInterval(rows, 'mse'),
  ];
  const optional = (['label_age_s', 'mae', 'label_delay_p95_s', 'bias', 'r2', 'rmse', 'mape', 'restated_mse_delta'] as const)
    .filter((name) => name !== 'restated_mse_delta' || rows.some((r) => r.restated_mse_delta !== null))
    .filter((name) => name !== 'label_age_s' || rows.some((r) => r.stage === 'preliminary'))
    .map((name) => ({ name, column: name === 'mae' ? withInterval(rows, 'mae') : plain(rows, name) }));
  const notes: Column<ReportRow> = { header: 'notes', value: (r) => noteRefs.get(r) ?? '' };
  return { required: [...required, notes], optional };
}

/** The terminal table: the columns that fit TABLE_WIDTH, the notes as numbered footnotes, the missing days. */
function renderTerminal(report: Report, rows: readonly ReportRow[]): string {
  const noteRefs = new Map<ReportRow, string>();
  const footnotes: string[] = [];
  for (const row of rows) {
    if (row.notes.length === 0) continue;
    // One reference per row keeps the column narrow; the row's notes share it.
    const ref = String(noteRefs.size + 1);
    noteRefs.set(row, ref);
    footnotes.push(...wrapText(`[${ref}] ${row.model}@${row.version}${row.slice === 'all' ? '' : ` ${row.slice}`} ${row.window} ${row.stage}: ${row.notes.join('; ')}`, TABLE_WIDTH));
  }
  const { required, optional } = tableColumns(rows, noteRefs);
  let kept = optional.length;
  const build = (n: number): string => {
    const columns = [...required.slice(0, -1), ...optional.slice(0, n).map((o) => o.column), required.at(-1)!];
    return renderTable(rows, columns);
  };
  let table = build(kept);
  while (kept > 0 && Math.max(...table.split('\n').map((l) => l.length)) > TABLE_WIDTH) table = build(--kept);
  const lines = [title(report), `from ${report.metrics_uri}`, rows.length === 0 ? '(no rows)' : table];
  if (kept < optional.length) {
    lines.push(...wrapText(`left out to fit ${TABLE_WIDTH} columns: ${optional.slice(kept).map((o) => o.name).join(', ')}`, TABLE_WIDTH), '(--format md, csv or json has every field)');
  }
  if (footnotes.length > 0) lines.push('', 'notes:', ...footnotes);
  const trailer = trailerLines(report);
  if (trailer.length > 0) lines.push('', ...trailer.flatMap((line) => wrapText(line, TABLE_WIDTH)));
  return lines.join('\n');
}

/** Every field as a human column (Markdown and the HTML table). */
function documentColumns(rows: readonly ReportRow[]): Column<ReportRow>[] {
  return fields.map((f) => plain(rows, f.name));
}

/** The rows (without the missing dates, which are listed apart) as header and cell strings for the HTML table. */
export function documentTable(report: Report): { headers: Array<{ name: string; numeric: boolean }>; rows: string[][] } {
  const rows = report.rows.filter((r) => r.kind !== 'missing');
  const columns = documentColumns(rows);
  return { headers: columns.map((c) => ({ name: c.header, numeric: c.numeric === true })), rows: rows.map((row) => columns.map((c) => String(c.value(row) ?? '-'))) };
}

/** The report as text in one of the text formats. */
export function renderReport(report: Report, format: TextFormat): string {
  if (format === 'json') return JSON.stringify(report, null, 2);
  if (format === 'csv') return renderCsv(report.rows, fields.map((f) => ({ header: f.name, raw: (row: ReportRow) => rawValue(row, f) })));
  const rows = report.rows.filter((r) => r.kind !== 'missing');
  if (format === 'table') return renderTerminal(report, rows);
  const columns = documentColumns(rows);
  // A blank line ends the Markdown table, so the notes and missing days are a list and not table rows.
  const trailer = trailerLines(report);
  return [`**${title(report)}**`, '', `From ${report.metrics_uri}.`, '', rows.length === 0 ? '(no rows)' : renderMarkdown(rows, columns), ...(trailer.length === 0 ? [] : ['', ...trailer.map((m) => `- ${m}`)])].join('\n');
}
