import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkCompatibility, checkableSchema, type Incompatibility } from '../../src/schema/compatibility.js';

/** A record schema named R with the given fields. */
function record(fields: unknown[], extra: Record<string, unknown> = {}): unknown {
  return { type: 'record', name: 'R', namespace: 'ns', fields, ...extra };
}

function field(name: string, type: unknown, extra: Record<string, unknown> = {}): unknown {
  return { name, type, ...extra };
}

/** Incompatibilities of reading data written with `writer` using `reader`, reduced to what the table pins. */
function check(reader: unknown, writer: unknown): Array<Pick<Incompatibility, 'type' | 'path'> & { field?: string }> {
  return checkCompatibility(checkableSchema(reader), checkableSchema(writer)).map(({ type, path, field }) => ({
    type,
    path,
    ...(field === undefined ? {} : { field }),
  }));
}

/** One row of test/fixtures/schemas/compatibility-pairs.json. */
interface PairRow {
  name: string;
  reader: unknown;
  writer: unknown;
  /** Every incompatibility, in order; empty for a compatible pair. */
  expected: ReturnType<typeof check>;
  /** Why the Avro reference implementations answer otherwise, when they do. */
  deviation?: string;
}

/** Apache Avro's checker (Python avro 1.11.1) on the table's pairs and on random ones; see make_reference.py. */
interface ReferenceRow {
  name: string;
  reader: unknown;
  writer: unknown;
  compatible: boolean;
  types: string[];
}

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'schemas');
const pairs = JSON.parse(fs.readFileSync(path.join(fixtures, 'compatibility-pairs.json'), 'utf8')) as PairRow[];
const reference = JSON.parse(fs.readFileSync(path.join(fixtures, 'python-reference.json'), 'utf8')) as ReferenceRow[];

describe('checkCompatibility: the table of pairs (test/fixtures/schemas/compatibility-pairs.json)', () => {
  it('covers every incompatibility kind and compatible pairs of every type', () => {
    const kinds = new Set(pairs.flatMap((row) => row.expected.map((found) => found.type)));
    expect([...kinds].sort()).toEqual([
      'AMBIGUOUS_FIELD_ALIAS', 'FIXED_SIZE_MISMATCH', 'MISSING_ENUM_SYMBOLS', 'MISSING_UNION_BRANCH', 'NAME_MISMATCH',
      'READER_FIELD_MISSING_DEFAULT_VALUE', 'TIMESTAMP_UNIT_MISMATCH', 'TYPE_MISMATCH',
    ]);
    expect(pairs.filter((row) => row.expected.length === 0).length).toBeGreaterThan(20);
  });

  it.each(pairs.map((row) => [row.name, row] as const))('%s', (_, row) => {
    expect(check(row.reader, row.writer)).toEqual(row.expected);
  });
});

describe('checkCompatibility agrees with Apache Avro\'s checker (test/fixtures/schemas/python-reference.json)', () => {
  it('has both verdicts among the reference pairs', () => {
    expect(reference.filter((row) => row.compatible).length).toBeGreaterThan(50);
    expect(reference.filter((row) => !row.compatible).length).toBeGreaterThan(50);
  });

  it.each(reference.map((row) => [row.name, row] as const))('%s', (_, row) => {
    const found = checkCompatibility(checkableSchema(row.reader), checkableSchema(row.writer));
    expect(found.length === 0).toBe(row.compatible);
    expect([...new Set(found.map((f) => f.type))].sort()).toEqual(row.types);
  });
});

describe('checkCompatibility: what it reports', () => {
  it('names the reader and writer fragments and says why', () => {
    const [found] = checkCompatibility(
      checkableSchema(record([field('y_pred', 'double')])),
      checkableSchema(record([field('y_pred', 'string')])),
    );
    expect(found).toEqual({
      type: 'TYPE_MISMATCH',
      path: '/fields/y_pred/type',
      field: 'y_pred',
      reader: '"double"',
      writer: '"string"',
      message: "a writer's string cannot be read as double (a reader double accepts double, int, long, float)",
    });
  });

  it('explains a missing field with the writer record it is missing from', () => {
    const [found] = checkCompatibility(
      checkableSchema(record([field('a', 'int'), field('b', 'string', { aliases: ['bee'] })])),
      checkableSchema(record([field('a', 'int')])),
    );
    expect(found?.reader).toBe('"string"');
    expect(found?.writer).toBe('no field b in "ns.R"');
    expect(found?.message).toBe('reader field "b" is not in the writer (nor its aliases bee) and has no default; give it a default');
  });

  it('reports the missing enum symbols, sorted', () => {
    const color = (symbols: string[]): unknown => ({ type: 'enum', name: 'Color', symbols });
    const [found] = checkCompatibility(checkableSchema(color(['RED'])), checkableSchema(color(['RED', 'GREEN', 'BLUE'])));
    expect(found?.message).toContain('symbols BLUE, GREEN are not in the reader');
  });

  it('matches a renamed record through the writer full name in the reader aliases', () => {
    // Java's schemaNameEquals: aliases are compared with the writer's full name, namespace included.
    const writer = record([field('a', 'int')]);
    expect(check(record([field('a', 'int')], { name: 'New', aliases: ['ns.R'] }), writer)).toEqual([]);
    expect(check(record([field('a', 'int')], { name: 'New', namespace: 'x', aliases: ['other.R'] }), writer)).toEqual([{ type: 'NAME_MISMATCH', path: '/name' }]);
  });
});
