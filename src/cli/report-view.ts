/**
 * Renders a report in the formats of `report --format`.
 */
import type { Report, ReportRow } from '../../jobs/report.js';
import { type Column, type ReportFormat, humanNumber, renderCsv, renderMarkdown, renderTable } from './format.js';

const fields: Array<{ header: string; raw: (r: ReportRow) => string | number | null; kind: 'text' | 'count' | 'metric' | 'percent' }> = [
  { header: 'model', raw: (r) => r.model_name, kind: 'text' },
  { header: 'version', raw: (r) => r.model_version, kind: 'text' },
  { header: 'window', raw: (r) => r.window, kind: 'text' },
  { header: 'count', raw: (r) => r.count, kind: 'count' },
  { header: 'labeled', raw: (r) => r.labeled_count, kind: 'count' },
  { header: 'MSE', raw: (r) => r.mse, kind: 'metric' },
  { header: 'RMSE', raw: (r) => r.rmse, kind: 'metric' },
  { header: 'MAE', raw: (r) => r.mae, kind: 'metric' },
  { header: 'MAPE', raw: (r) => r.mape, kind: 'percent' },
  { header: 'R2', raw: (r) => r.r2, kind: 'metric' },
  { header: 'coverage', raw: (r) => r.coverage, kind: 'percent' },
];

const columns: Column<ReportRow>[] = fields.map((f) => ({
  header: f.header,
  numeric: f.kind !== 'text',
  value: (r) => (f.kind === 'text' ? (f.raw(r) as string) : humanNumber(f.raw(r) as number | null, f.kind)),
}));

/** The report as text in the given format. */
export function renderReport(report: Report, format: ReportFormat): string {
  if (format === 'json') return JSON.stringify(report, null, 2);
  if (format === 'csv') return renderCsv(report.rows, fields);
  const title = `${report.stage} metrics, ${report.from} .. ${report.to}`;
  const missing = report.missing_dates.length === 0 ? '' : `\nno committed ${report.stage} metrics for: ${report.missing_dates.join(', ')}`;
  if (format === 'md') return `**${title}**\n\n${renderMarkdown(report.rows, columns)}${missing}`;
  return `${title}\n${report.rows.length === 0 ? '(no rows)' : renderTable(report.rows, columns)}${missing}`;
}
