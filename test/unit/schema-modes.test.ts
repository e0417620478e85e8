import { describe, expect, it } from 'vitest';
import {
  checkAgainstHistory,
  compatibilityModes,
  labelledSchema,
  parseCompatibilityMode,
  plannedChecks,
  type CompatibilityMode,
} from '../../src/schema/check.js';

function version(label: string, fields: unknown[]): ReturnType<typeof labelledSchema> {
  return labelledSchema({ type: 'record', name: 'Event', fields }, label);
}

const a = { name: 'a', type: 'int' };
const aLong = { name: 'a', type: 'long' };
const b = { name: 'b', type: 'string' };
const bDefault = { name: 'b', type: 'string', default: 'x' };
const cDefault = { name: 'c', type: ['null', 'double'], default: null };

/** One evolution step: the history (oldest first), the candidate, and the modes it passes (NONE always passes). */
interface ModeCase {
  name: string;
  history: unknown[][];
  candidate: unknown[];
  passes: CompatibilityMode[];
}

const ALL: CompatibilityMode[] = ['BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD', 'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE'];

/**
 * The classic evolution steps and what each mode says about them (Confluent's documentation:
 * "Schema Evolution and Compatibility"), plus two histories that tell the transitive modes apart.
 */
const modeTable: ModeCase[] = [
  { name: 'identical schema', history: [[a, b]], candidate: [a, b], passes: ALL },
  { name: 'add a field with a default', history: [[a]], candidate: [a, cDefault], passes: ALL },
  { name: 'delete a field with a default', history: [[a, cDefault]], candidate: [a], passes: ALL },
  {
    name: 'add a field without a default (old data lacks it)',
    history: [[a]],
    candidate: [a, b],
    passes: ['FORWARD', 'FORWARD_TRANSITIVE'],
  },
  {
    name: 'delete a field without a default (old readers need it)',
    history: [[a, b]],
    candidate: [a],
    passes: ['BACKWARD', 'BACKWARD_TRANSITIVE'],
  },
  { name: 'widen int to long', history: [[a]], candidate: [aLong], passes: ['BACKWARD', 'BACKWARD_TRANSITIVE'] },
  { name: 'narrow long to int', history: [[aLong]], candidate: [a], passes: ['FORWARD', 'FORWARD_TRANSITIVE'] },
  {
    name: 'rename with an alias (reader-side only)',
    history: [[a, { name: 'featureset_version', type: 'string' }]],
    candidate: [a, { name: 'feature_set_version', type: 'string', aliases: ['featureset_version'] }],
    passes: ['BACKWARD', 'BACKWARD_TRANSITIVE'],
  },
  {
    // v1 data has no b and v2 read it with a default; the candidate requires b: fine against v2, not against v1 data.
    name: 'required field whose default only the latest version had',
    history: [[a], [a, bDefault]],
    candidate: [a, b],
    passes: ['BACKWARD', 'FORWARD', 'FORWARD_TRANSITIVE', 'FULL'],
  },
  {
    // v1 readers require b; v2 readers default it; the candidate stops writing it.
    name: 'dropping a field that an older version requires',
    history: [[a, b], [a, bDefault]],
    candidate: [a],
    passes: ['BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD', 'FULL'],
  },
];

describe('checkAgainstHistory: the modes of Confluent Schema Registry', () => {
  for (const row of modeTable) {
    const history = row.history.map((fields, i) => version(`v${i + 1}`, fields));
    const candidate = version('new', row.candidate);
    it.each(compatibilityModes)(`${row.name}: %s`, (mode) => {
      const report = checkAgainstHistory(candidate, history, mode);
      const expected = mode === 'NONE' || row.passes.includes(mode);
      expect(report.compatible, JSON.stringify(report.checks)).toBe(expected);
      expect(report.mode).toBe(mode);
      expect(report.history).toEqual(history.map((v) => v.label));
    });
  }

  it('names which version read which in every check, with field-level reasons', () => {
    const report = checkAgainstHistory(version('new', [a]), [version('v1', [a, b]), version('v2', [a, bDefault])], 'FULL_TRANSITIVE');
    expect(report.checks.map(({ direction, reader, writer, compatible }) => ({ direction, reader, writer, compatible }))).toEqual([
      { direction: 'backward', reader: 'new', writer: 'v2', compatible: true },
      { direction: 'forward', reader: 'v2', writer: 'new', compatible: true },
      { direction: 'backward', reader: 'new', writer: 'v1', compatible: true },
      { direction: 'forward', reader: 'v1', writer: 'new', compatible: false },
    ]);
    expect(report.checks[3]!.incompatibilities).toEqual([
      expect.objectContaining({ type: 'READER_FIELD_MISSING_DEFAULT_VALUE', path: '/fields/b', field: 'b' }),
    ]);
  });
});

describe('plannedChecks', () => {
  it.each([
    ['BACKWARD', [{ index: 2, direction: 'backward' }]],
    ['FORWARD', [{ index: 2, direction: 'forward' }]],
    ['FULL', [{ index: 2, direction: 'backward' }, { index: 2, direction: 'forward' }]],
    ['BACKWARD_TRANSITIVE', [2, 1, 0].map((index) => ({ index, direction: 'backward' }))],
    ['FORWARD_TRANSITIVE', [2, 1, 0].map((index) => ({ index, direction: 'forward' }))],
    ['FULL_TRANSITIVE', [2, 1, 0].flatMap((index) => [{ index, direction: 'backward' }, { index, direction: 'forward' }])],
    ['NONE', []],
  ] as const)('%s against 3 versions', (mode, expected) => {
    expect(plannedChecks(mode, 3)).toEqual(expected);
  });

  it('plans nothing against an empty history', () => {
    expect(plannedChecks('FULL_TRANSITIVE', 0)).toEqual([]);
  });
});

describe('parseCompatibilityMode', () => {
  it('accepts every mode, in any case', () => {
    for (const mode of compatibilityModes) {
      expect(parseCompatibilityMode(mode, '--mode')).toBe(mode);
      expect(parseCompatibilityMode(mode.toLowerCase(), '--mode')).toBe(mode);
    }
  });

  it('refuses an unknown mode, naming the option and the modes', () => {
    expect(() => parseCompatibilityMode('SIDEWAYS', '--mode')).toThrow(
      expect.objectContaining({ code: 'E_USAGE', context: { option: '--mode' }, message: expect.stringContaining('--mode must be one of BACKWARD, BACKWARD_TRANSITIVE') }),
    );
  });
});

describe('labelledSchema', () => {
  it('refuses an invalid schema, naming it', () => {
    expect(() => labelledSchema({ type: 'record', name: 'R', fields: [{ name: 'a', type: 'integer' }] }, 'v7 (x/v7.avsc)')).toThrow(
      expect.objectContaining({ code: 'E_USAGE', message: expect.stringMatching(/^v7 \(x\/v7\.avsc\) is not a valid Avro schema: .*integer/) }),
    );
  });

  it('explains a union the job cannot read unwrapped', () => {
    expect(() => labelledSchema(['null', 'int', 'long'], 'new')).toThrow(expect.objectContaining({ message: expect.stringContaining('such as int and long') }));
  });
});
