/**
 * Turns the tally file of a test run into the reliability table the global teardown prints.
 * Pure (text in, text out) so that it is unit-testable without a run.
 */
import { renderTable } from '../../src/cli/format.js';
import type { ReliabilityEntry } from './reliability-tally.js';

const columns = ['category', 'kind', 'injected', 'completed', 'identical', 'hangs', 'crashes', 'wrong'] as const;
const counts = columns.slice(2) as Exclude<(typeof columns)[number], 'category' | 'kind'>[];
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
    for (const name of counts) {
      row[name] = (row[name] as number) + entry[name];
      total[name] = (total[name] as number) + entry[name];
    }
  }
  const order = { fault: 0, crash: 1, hostile: 2 } as Record<string, number>;
  const body = [...rows.values()].sort(
    (a, b) => (order[a.category as string] ?? 9) - (order[b.category as string] ?? 9) || String(a.kind).localeCompare(String(b.kind)),
  );
  const table = renderTable([...body, total], columns.map((name, i) => ({ header: name, value: (row: Row) => row[name], numeric: i >= 2 }))).split('\n');
  // A rule (the one under the header) above the total row too.
  table.splice(-1, 0, table[1]!);
  return `Reliability (hangs, crashes and wrong must be 0)\n${table.join('\n')}`;
}
