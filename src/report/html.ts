/**
 * The HTML report of SPEC §7: one self-contained file with no script and no external reference
 * (styles inline, every chart an inline SVG), so it opens offline and no request leaves the page.
 *
 * Charts are Vega-Lite specifications compiled and rendered to SVG here in Node by Vega's headless
 * View (`renderer: 'none'`, `toSVG()`): pure JavaScript from npm, no canvas or browser binary, and
 * the browser only has to draw static SVG. Colours work on light and dark backgrounds; text and
 * axes follow `prefers-color-scheme` through CSS. Every chart has a title, axis titles, an
 * `aria-label` description and a text caption; the table holds every number the charts draw.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { ModelMetricsError } from '../errors.js';
import type { MaturityPoint, Report, ReportRow } from './build.js';
import { humanDuration } from './build.js';

/** One rendered chart: what it shows, and how many data marks (points) it drew. */
export interface RenderedChart {
  id: string;
  title: string;
  caption: string;
  /** Points drawn (one per non-null value); the browser test counts the SVG's symbols against this. */
  points: number;
  svg: string;
}

/**
 * The stage colours and shapes: finals circles, preliminaries triangles. Both colours keep the 3:1
 * contrast of WCAG 1.4.11 against the light and the dark page background.
 */
const STAGE_SCALE = { domain: ['final', 'preliminary'], range: ['#3b82c4', '#c8690f'] };
const STAGE_SHAPES = { domain: ['final', 'preliminary'], range: ['circle', 'triangle-up'] };

/** Colours for series (model versions): each keeps 3:1 contrast against both page backgrounds, unlike Vega's default scheme. */
const SERIES_COLORS = ['#3b82c4', '#c8690f', '#2e8b57', '#9467bd', '#d9483b', '#16917f', '#c04f9e', '#9c7040', '#7f7f7f'];

const CHART_CONFIG = {
  background: 'transparent',
  range: { category: SERIES_COLORS },
  font: 'system-ui, -apple-system, Segoe UI, Roboto, sans-serif',
  view: { stroke: null },
  axis: { labelColor: '#666', titleColor: '#666', gridColor: '#8884', domainColor: '#888', tickColor: '#888' },
  legend: { labelColor: '#666', titleColor: '#666' },
  title: { color: '#666', anchor: 'start', fontSize: 13 },
  header: { labelColor: '#666', titleColor: '#666' },
};

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Renders a Vega-Lite spec to an SVG string without a browser. */
async function toSvg(spec: Record<string, unknown> & { data: { values: readonly object[] } }): Promise<string> {
  // Vega tags the objects it is given (a vega_id symbol): it gets copies, so the report stays as built.
  const data = { values: spec.data.values.map((value) => ({ ...value })) };
  // The specs are built from literals here; Vega-Lite's own types are too deep to infer through spreads.
  const view = new vega.View(vega.parse(compile({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: CHART_CONFIG, ...spec, data } as unknown as TopLevelSpec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** A metric's points with 95% CI bars over the windows, finals and preliminaries apart (offset and shaped). */
function metricLayers(metric: 'mse' | 'mae'): unknown[] {
  const x = { field: 'window', type: 'ordinal', title: 'window', sort: null, axis: { labelAngle: -40 } } as const;
  const xOffset = { field: 'stage', type: 'nominal', scale: { domain: STAGE_SCALE.domain } } as const;
  const color = { field: 'stage', type: 'nominal', title: 'stage', scale: STAGE_SCALE } as const;
  return [
    { mark: { type: 'rule', strokeWidth: 1.5 }, encoding: { x, xOffset, y: { field: `${metric}_ci_low`, type: 'quantitative', title: `${metric.toUpperCase()} (95% CI)` }, y2: { field: `${metric}_ci_high` }, color } },
    {
      mark: { type: 'point', filled: true, size: 50 },
      encoding: {
        x,
        xOffset,
        y: { field: metric, type: 'quantitative' },
        color,
        shape: { field: 'stage', type: 'nominal', scale: STAGE_SHAPES, title: 'stage' },
        tooltip: [{ field: 'window' }, { field: 'stage' }, { field: metric, format: '.4~g' }, { field: `${metric}_ci_low`, format: '.4~g' }, { field: `${metric}_ci_high`, format: '.4~g' }, { field: 'labeled', format: ',' }],
      },
    },
  ];
}

function seriesKey(r: { model: string | null; version: string | null }): string {
  return `${r.model}@${r.version}`;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const id = key(item);
    const list = groups.get(id) ?? [];
    list.push(item);
    groups.set(id, list);
  }
  return groups;
}

const countNonNull = (rows: readonly object[], field: string): number => rows.filter((r) => (r as Record<string, unknown>)[field] !== null).length;

/** Per model version: MSE and MAE over time. */
async function metricCharts(report: Report, windowRows: readonly ReportRow[]): Promise<RenderedChart[]> {
  const charts: RenderedChart[] = [];
  for (const [series, rows] of groupBy(windowRows.filter((r) => r.slice === 'all'), seriesKey)) {
    for (const metric of ['mse', 'mae'] as const) {
      const title = `${series}: ${metric.toUpperCase()} by ${report.by}, 95% CI`;
      const caption = `${metric.toUpperCase()} of ${series} for ${new Set(rows.map((r) => r.window)).size} window(s), ${describeStages(rows)}; bars are 95% confidence intervals. Every value is in the table below.`;
      const svg = await toSvg({ title, description: caption, width: 560, height: 220, data: { values: rows }, layer: metricLayers(metric) });
      charts.push({ id: `${metric}-${series}`, title, caption, points: countNonNull(rows, metric), svg });
    }
  }
  return charts;
}

function describeStages(rows: ReadonlyArray<{ stage: string }>): string {
  const stages = [...new Set(rows.map((r) => r.stage))];
  return stages.length === 2 ? 'finals as blue circles, preliminaries as orange triangles' : `${stages[0]} only`;
}

/** Per model version and segment key: one small multiple per segment value. */
async function segmentCharts(report: Report): Promise<RenderedChart[]> {
  const source = report.slice === null ? report.segment_rows : report.rows.filter((r) => r.kind === 'window');
  const charts: RenderedChart[] = [];
  const keyOf = (r: ReportRow): string => `${seriesKey(r)} ${r.slice!.split('=')[0]}`;
  for (const [id, rows] of groupBy(source.filter((r) => r.kind === 'window'), keyOf)) {
    const [series, key] = id.split(' ') as [string, string];
    const values = rows.map((r) => ({ ...r, segment: r.slice!.slice(key.length + 1) }));
    const segments = new Set(values.map((v) => v.segment)).size;
    const title = `${series}: MSE per ${key}, 95% CI`;
    const caption = `MSE of ${series} for each of ${segments} ${key} value(s) by ${report.by}, one small chart per value on a shared scale, ${describeStages(rows)}.`;
    const svg = await toSvg({
      title,
      description: caption,
      data: { values: values },
      facet: { field: 'segment', type: 'nominal', title: key },
      columns: 4,
      spec: { width: 170, height: 110, layer: metricLayers('mse') },
    });
    charts.push({ id: `segments-${id}`, title, caption, points: countNonNull(values, 'mse'), svg });
  }
  return charts;
}

/** Label coverage over time, one line per model version (and stage). */
async function coverageChart(report: Report, windowRows: readonly ReportRow[]): Promise<RenderedChart[]> {
  const rows = windowRows.filter((r) => r.slice === 'all' || report.slice !== null).map((r) => ({ ...r, series: report.slice === null ? seriesKey(r) : `${seriesKey(r)} ${r.slice}` }));
  if (rows.length === 0) return [];
  const title = `Label coverage by ${report.by}`;
  const caption = `Share of valid predictions with a usable label, per ${report.slice === null ? 'model version' : 'model version and slice'} (${new Set(rows.map((r) => r.series)).size} line(s)), ${describeStages(rows)}.`;
  const svg = await toSvg({
    title,
    description: caption,
    width: 560,
    height: 200,
    data: { values: rows },
    encoding: {
      x: { field: 'window', type: 'ordinal', sort: null, title: 'window', axis: { labelAngle: -40 } },
      y: { field: 'coverage', type: 'quantitative', title: 'coverage', axis: { format: '.0%' }, scale: { domain: [0, 1] } },
      color: { field: 'series', type: 'nominal', title: 'model version' },
      strokeDash: { field: 'stage', type: 'nominal', title: 'stage', scale: { domain: ['final', 'preliminary'], range: [[1, 0], [4, 3]] } },
    },
    layer: [{ mark: { type: 'line' } }, { mark: { type: 'point', filled: true, size: 30 }, encoding: { shape: { field: 'stage', type: 'nominal', scale: STAGE_SHAPES } } }],
  });
  return [{ id: 'coverage', title, caption, points: countNonNull(rows, 'coverage'), svg }];
}

/** Coverage and MSE against label age, per model version (SPEC §5.1 label-age records). */
async function maturityCharts(report: Report): Promise<RenderedChart[]> {
  const charts: RenderedChart[] = [];
  for (const [series, points] of groupBy(report.maturity, (p) => `${seriesKey(p)}${p.slice === 'all' ? '' : ` ${p.slice}`}`)) {
    const values = points.map((p: MaturityPoint) => ({ ...p, label_age_h: p.label_age_s / 3600, age: humanDuration(p.label_age_s) }));
    for (const metric of ['coverage', 'mse'] as const) {
      const title = `${series}: ${metric === 'mse' ? 'MSE' : 'coverage'} against label age`;
      const ages = [...new Set(points.map((p) => p.label_age_s))].sort((a, b) => a - b);
      const caption = `${metric === 'mse' ? 'MSE' : 'Label coverage'} of ${series} as labels arrive: ${ages.length} label age(s) from ${humanDuration(ages[0]!)} to ${humanDuration(ages.at(-1)!)}, ${describeStages(points)}, over the days of the range.`;
      const y = metric === 'mse' ? { field: 'mse', type: 'quantitative', title: 'MSE (95% CI)' } : { field: 'coverage', type: 'quantitative', title: 'coverage', axis: { format: '.0%' }, scale: { domain: [0, 1] } };
      const x = { field: 'label_age_h', type: 'quantitative', title: 'label age (hours after the end of the day)', scale: { type: 'symlog' } };
      const color = { field: 'stage', type: 'nominal', title: 'stage', scale: STAGE_SCALE };
      const layer = [
        ...(metric === 'mse' ? [{ mark: { type: 'rule' }, encoding: { x, y: { field: 'mse_ci_low', type: 'quantitative' }, y2: { field: 'mse_ci_high' }, color } }] : []),
        { mark: { type: 'line' }, encoding: { x, y, color } },
        { mark: { type: 'point', filled: true, size: 40 }, encoding: { x, y, color, shape: { field: 'stage', type: 'nominal', title: 'stage', scale: STAGE_SHAPES }, tooltip: [{ field: 'age' }, { field: metric, format: '.4~g' }, { field: 'days' }] } },
      ];
      const svg = await toSvg({ title, description: caption, width: 420, height: 200, data: { values: values }, layer });
      charts.push({ id: `maturity-${metric}-${series}`, title, caption, points: countNonNull(values, metric), svg });
    }
  }
  return charts;
}

/** Every chart of the report, in page order, grouped by section. */
export async function renderCharts(report: Report): Promise<Array<{ section: string; charts: RenderedChart[]; empty?: string }>> {
  const windowRows = report.rows.filter((r) => r.kind === 'window');
  const maturity = await maturityCharts(report);
  return [
    { section: report.slice === null ? 'MSE and MAE over time' : `Slices of ${report.slice}`, charts: report.slice === null ? await metricCharts(report, windowRows) : await segmentCharts(report) },
    ...(report.slice === null ? [{ section: 'Per segment value', charts: await segmentCharts(report), empty: 'No segment slices in this range.' }] : []),
    { section: 'Label coverage', charts: await coverageChart(report, windowRows) },
    {
      section: 'Label maturity',
      charts: maturity,
      empty:
        'No label-age records in this range, so there is no maturity curve: metrics v1 partitions carry none; v2 runs write one per slice and label age of --label-ages (SPEC §5.1), and coverage and MSE against label age appear here once such partitions are in the range.',
    },
  ];
}

/** The chart's SVG as one image with a name (its title) and a description (its caption) for assistive technology. */
function accessibleSvg(chart: RenderedChart): string {
  const open = /^<svg\b[^>]*>/.exec(chart.svg);
  if (open === null) throw new ModelMetricsError('E_INTERNAL', `chart ${chart.id}: Vega did not render an <svg> element`, { operation: 'render the HTML report' });
  const label = escapeHtml(`${chart.title}. ${chart.caption}`);
  return `${open[0].slice(0, -1)} role="img" aria-label="${label}"><title>${escapeHtml(chart.title)}</title><desc>${escapeHtml(chart.caption)}</desc>${chart.svg.slice(open[0].length)}`;
}

const STYLE = `
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #ffffff; --muted: #555; --rule: #ddd; --stripe: #f5f5f7; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8ea; --bg: #16171a; --muted: #aaa; --rule: #3a3b40; --stripe: #1f2024; } }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); margin: 1.5rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid var(--rule); }
.meta, figcaption, .empty { color: var(--muted); }
figure { margin: 1rem 0; overflow-x: auto; }
svg text { fill: var(--muted); }
svg .role-title-text { fill: var(--fg); }
svg .role-axis-grid line { stroke: var(--rule); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 12px; }
th, td { padding: 0.2rem 0.5rem; border-bottom: 1px solid var(--rule); text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; }
td.notes { white-space: normal; min-width: 18rem; }
tbody tr:nth-child(even) { background: var(--stripe); }
`;

/**
 * The report as one self-contained HTML document; `table` is the report's rows as [header, cells,
 * numeric] columns, `trailer` the report-wide notes and missing days listed above the charts.
 */
export async function renderHtml(report: Report, table: { headers: Array<{ name: string; numeric: boolean }>; rows: string[][] }, trailer: readonly string[]): Promise<string> {
  const sections = await renderCharts(report);
  const stage = report.stage === 'both' ? 'preliminary and final' : report.stage;
  const heading = `Model metrics: ${stage}, ${report.from} .. ${report.to}`;
  const figure = (c: RenderedChart): string => `<figure data-chart="${escapeHtml(c.id)}" data-points="${c.points}">${accessibleSvg(c)}<figcaption>${escapeHtml(c.caption)}</figcaption></figure>`;
  const body = sections
    .map((s) => `<section><h2>${escapeHtml(s.section)}</h2>${s.charts.length === 0 ? `<p class="empty">${escapeHtml(s.empty ?? 'Nothing to draw in this range.')}</p>` : s.charts.map(figure).join('\n')}</section>`)
    .join('\n');
  const head = table.headers.map((h) => `<th scope="col"${h.numeric ? ' class="num"' : ''}>${escapeHtml(h.name)}</th>`).join('');
  const rows = table.rows.map((cells) => `<tr>${cells.map((c, i) => `<td class="${table.headers[i]!.numeric ? 'num' : table.headers[i]!.name === 'notes' ? 'notes' : ''}">${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(heading)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(heading)}</h1>
<p class="meta">Metrics from ${escapeHtml(report.metrics_uri)}, by ${escapeHtml(report.by)}${report.model === null ? '' : `, model ${escapeHtml(report.model)}`}${report.slice === null ? '' : `, slice ${escapeHtml(report.slice)}`}. Roll-ups are computed exactly from the daily sufficient statistics; intervals are 95% normal-approximation intervals.</p>
${trailer.length === 0 ? '' : `<ul class="report-notes">${trailer.map((m) => `<li>${escapeHtml(m)}</li>`).join('')}</ul>`}
${body}
<section><h2>Table</h2><div class="scroll"><table><caption class="meta">Every row of the report (the JSON format has the same fields).</caption><thead><tr>${head}</tr></thead><tbody>
${rows}
</tbody></table></div></section>
</body>
</html>
`;
}
