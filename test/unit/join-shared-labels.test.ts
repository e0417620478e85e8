import { describe, expect, it } from 'vitest';
import { SharedLabelIndex } from '../../src/join/shared-labels.js';
import { type LabelBatch, LabelColumns } from '../../src/workers/batches.js';

/** A label batch of these ids (y_true = index, label_ts = index), as the workers build it. */
function labelBatch(ids: readonly string[]): LabelBatch {
  const columns = new LabelColumns(ids.length);
  columns.add(ids.map((id, i) => ({ prediction_id: id, y_true: i, label_ts: i })));
  return columns.take();
}

describe('SharedLabelIndex.entriesOf', () => {
  it('answers what entryOf answers for every row of any range, labeled or not', () => {
    // A small index (many probes past the first slot) of ids of mixed lengths, some non-ASCII.
    const labeled = Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? `é-${i}` : `${i.toString(36)}-${'x'.repeat(i % 40)}`));
    const index = new SharedLabelIndex(16);
    const added = labelBatch(labeled);
    for (let row = 0; row < labeled.length; row++) index.add(added.ids, row === 0 ? 0 : added.idEnds[row - 1]!, added.idEnds[row]!, added.idHash[row]!, row, row);
    const probes = [...labeled.filter((_, i) => i % 3 !== 0), ...Array.from({ length: 1000 }, (_, i) => `absent-${i}`), labeled[0]!, '', labeled[2999]!];
    const batch = labelBatch(probes);
    const expected = probes.map((_, row) => index.entryOf(batch.ids, row === 0 ? 0 : batch.idEnds[row - 1]!, batch.idEnds[row]!, batch.idHash[row]!));
    expect(expected.filter((entry) => entry >= 0)).toHaveLength(probes.length - 1001);
    for (const [from, to] of [[0, probes.length], [0, 1], [17, 145], [probes.length - 3, probes.length]] as const) {
      const out = new Int32Array(to - from);
      index.entriesOf(batch.ids, batch.idEnds, batch.idHash, from, to, out);
      expect(Array.from(out)).toEqual(expected.slice(from, to));
    }
  });
});
