/**
 * Turns the tally file of a test run into the reliability table the global teardown prints.
 * Pure (text in, text out) so that it is unit-testable without a run.
 */
import type { ReliabilityEntry } from './tally.js';

const columns = ['category', 'kind', 'injected', 'completed', 'identical', 'hangs', 'crashes', 'wrong'] as const;
type Row = Record<(typeof columns)[number], string | number>;

/** Sums the JSON lines of a tally by (category, kind) and renders them as an aligned table with a total row. */
export function renderReliabilityTable(tally: string): string {
  const rows = new Map<string, Row>();
  const total: Row = { category: 'total', kind: '', injected: 0, completed: 0, identical: 0, hangs: 0, crashes: 0, wrong: 0 };
  for (const line of tally.split('\n')) {
    if (line.trim() === '') continue;
    const entry = JSON.parse(line) as ReliabilityEntry;
    const id = `${entry.category}\u0000${entry.kind}`;
    let row = rows.get(id);
    if (row === undefined) {
      row = { category: entry.category, kind: entry.kind, injected: 0, completed: 0, identical: 0, hangs: 0, crashes: 0, wrong: 0 };
      rows.set(id, row);
    }
    for (const name of ['injected', 'completed', 'identical', 'hangs', 'crashes', 'wrong'] as const) {
      row[name] = (row[name] as number) + entry[name];
      total[name] = (total[name] as number) + entry[name];
    }
  }
  const order = { fault: 0, crash: 1, hostile: 2 } as Record<string, number>;
  const body = [...rows.values()].sort(
    (a, b) => (order[a.category as string] ?? 9) - (order[b.category as string] ?? 9) || String(a.kind).localeCompare(String(b.kind)),
  );
  const table = [...body, total];
  const widths = columns.map((name) => Math.max(name.length, ...table.map((row) => String(row[name]).length)));
  const render = (cells: (string | number)[]) =>
    cells.map((cell, i) => (typeof cell === 'number' ? String(cell).padStart(widths[i]!) : String(cell).padEnd(widths[i]!))).join('  ');
  const lines = [render([...columns]), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const row of body) lines.push(render(columns.map((name) => row[name])));
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
  lines.push(render(columns.map((name) => total[name])));
  return `Reliability (hangs, crashes and wrong must be 0)\n${lines.join('\n')}`;
}
