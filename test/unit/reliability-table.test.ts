import { describe, expect, it } from 'vitest';
import { renderReliabilityTable } from '../helpers/reliability-table.js';

describe('reliability table', () => {
  it('sums entries by category and kind, orders fault, crash, hostile, and adds a total row', () => {
    const entry = (category: string, kind: string, injected: number, completed: number) =>
      JSON.stringify({ category, kind, injected, completed, identical: completed, hangs: 0, crashes: 0, wrong: 0 });
    const tally = [
      entry('hostile', 'overlong varint', 1, 1),
      entry('fault', 'timeout', 2, 2),
      entry('crash', 'SIGKILL', 3, 3),
      entry('fault', '503 SlowDown', 4, 3),
      entry('fault', 'timeout', 10, 10),
      '',
    ].join('\n');
    expect(renderReliabilityTable(tally).split('\n')).toEqual([
      'Reliability (hangs, crashes and wrong must be 0)',
      'category  kind             injected  completed  identical  hangs  crashes  wrong',
      '--------  ---------------  --------  ---------  ---------  -----  -------  -----',
      'fault     503 SlowDown            4          3          3      0        0      0',
      'fault     timeout                12         12         12      0        0      0',
      'crash     SIGKILL                 3          3          3      0        0      0',
      'hostile   overlong varint         1          1          1      0        0      0',
      '--------  ---------------  --------  ---------  ---------  -----  -------  -----',
      'total                            20         19         19      0        0      0',
    ]);
  });
});
