/**
 * Property tests of schema evolution (issue 3): random writer schemas, readers derived from them by
 * the evolution steps Avro allows (promotions, renames with aliases, dropped fields, added fields
 * with defaults, new enum symbols or an enum default, wider unions, reordered fields, a renamed
 * record), and random values. avsc's resolver is the reference the checker is held against.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkCompatibility, checkableSchema } from '../../src/schema/compatibility.js';

type Primitive = 'null' | 'boolean' | 'int' | 'long' | 'float' | 'double' | 'string' | 'bytes';

/** A writer schema as a tree; named types get their names after generation. */
type Shape =
  | { kind: 'primitive'; name: Primitive }
  | { kind: 'nullable'; inner: Shape }
  | { kind: 'array'; items: Shape }
  | { kind: 'map'; values: Shape }
  | { kind: 'enum'; name: string; symbols: string[] }
  | { kind: 'record'; name: string; fields: Shape[] };

const PRIMITIVES: Primitive[] = ['null', 'boolean', 'int', 'long', 'float', 'double', 'string', 'bytes'];

const primitiveArb: fc.Arbitrary<Shape> = fc.constantFrom(...PRIMITIVES).map((name) => ({ kind: 'primitive', name }));
const enumArb: fc.Arbitrary<Shape> = fc.integer({ min: 1, max: 4 }).map((count) => ({
  kind: 'enum',
  name: '',
  symbols: Array.from({ length: count }, (_, i) => `S${i}`),
}));

function shapeArb(depth: number): fc.Arbitrary<Shape> {
  const leaf = fc.oneof(primitiveArb, enumArb);
  if (depth === 0) return leaf;
  const inner = shapeArb(depth - 1);
  return fc.oneof(
    { arbitrary: leaf, weight: 3 },
    { arbitrary: inner.filter((s) => s.kind !== 'nullable' && !(s.kind === 'primitive' && s.name === 'null')).map((s): Shape => ({ kind: 'nullable', inner: s })), weight: 2 },
    { arbitrary: inner.map((s): Shape => ({ kind: 'array', items: s })), weight: 1 },
    { arbitrary: inner.map((s): Shape => ({ kind: 'map', values: s })), weight: 1 },
    { arbitrary: recordArb(depth - 1), weight: 1 },
  );
}

function recordArb(depth: number): fc.Arbitrary<Shape> {
  return fc.array(shapeArb(depth), { minLength: 1, maxLength: 4 }).map((fields): Shape => ({ kind: 'record', name: '', fields }));
}

/** Gives every record and enum a unique name (R1, E2, ...), as one schema requires. */
function named(shape: Shape, counter = { next: 0 }): Shape {
  switch (shape.kind) {
    case 'primitive':
      return shape;
    case 'nullable':
      return { kind: 'nullable', inner: named(shape.inner, counter) };
    case 'array':
      return { kind: 'array', items: named(shape.items, counter) };
    case 'map':
      return { kind: 'map', values: named(shape.values, counter) };
    case 'enum':
      return { ...shape, name: `E${++counter.next}` };
    case 'record': {
      const name = `R${++counter.next}`;
      return { kind: 'record', name, fields: shape.fields.map((f) => named(f, counter)) };
    }
  }
}

/** A random writer: always a record at the top, like the job's inputs. */
const writerArb: fc.Arbitrary<Shape> = recordArb(2).map((shape) => named(shape));

function fieldName(index: number): string {
  return `f${index}`;
}

function schemaOf(shape: Shape): unknown {
  switch (shape.kind) {
    case 'primitive':
      return shape.name;
    case 'nullable':
      return ['null', schemaOf(shape.inner)];
    case 'array':
      return { type: 'array', items: schemaOf(shape.items) };
    case 'map':
      return { type: 'map', values: schemaOf(shape.values) };
    case 'enum':
      return { type: 'enum', name: shape.name, symbols: shape.symbols };
    case 'record':
      return { type: 'record', name: shape.name, fields: shape.fields.map((f, i) => ({ name: fieldName(i), type: schemaOf(f) })) };
  }
}

function primitiveValueArb(name: Primitive): fc.Arbitrary<unknown> {
  switch (name) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'int':
      return fc.integer();
    case 'long':
      // avsc 5.7 encodes longs through doubles: below -2^52 the zig-zag value is not exact and the
      // sign comes back flipped, so values stay within ±2^52 (timestamps in µs reach 2^52 in 2112).
      return fc.integer({ min: -(2 ** 52), max: 2 ** 52 });
    case 'float':
      return fc.float({ noNaN: true, noDefaultInfinity: true });
    case 'double':
      return fc.double();
    case 'string':
      return fc.string({ unit: 'grapheme', maxLength: 6 });
    case 'bytes':
      return fc.uint8Array({ maxLength: 6 }).map((bytes) => Buffer.from(bytes));
  }
}

function valueArb(shape: Shape): fc.Arbitrary<unknown> {
  switch (shape.kind) {
    case 'primitive':
      return primitiveValueArb(shape.name);
    case 'nullable':
      return fc.option(valueArb(shape.inner), { nil: null });
    case 'array':
      return fc.array(valueArb(shape.items), { maxLength: 3 });
    case 'map':
      return fc.dictionary(fc.string({ maxLength: 3 }), valueArb(shape.values), { maxKeys: 3, noNullPrototype: true });
    case 'enum':
      return fc.constantFrom(...shape.symbols);
    case 'record':
      return fc.tuple(...shape.fields.map(valueArb)).map((values) => Object.fromEntries(values.map((v, i) => [fieldName(i), v])));
  }
}

/** A reader schema and what a writer value becomes once read with it (undefined: may not be readable). */
interface Evolved {
  schema: unknown;
  convert: ((value: unknown) => unknown) | undefined;
}

const same = (value: unknown): unknown => value;

/**
 * Avro 1.11 promotions of a writer primitive, with the value each produces. avsc hands an int or
 * long read as float over unrounded (a Java reader would round it to float32): nothing is lost.
 */
const PROMOTIONS: Record<Primitive, Array<[Primitive, (value: unknown) => unknown]>> = {
  null: [],
  boolean: [],
  int: [['long', same], ['float', same], ['double', same]],
  long: [['float', same], ['double', same]],
  float: [['double', same]],
  double: [],
  string: [['bytes', (v) => Buffer.from(v as string, 'utf8')]],
  bytes: [['string', (v) => (v as Buffer).toString('utf8')]],
};

/** Fields a reader may add, each with its default (what every old record reads as). */
const ADDED_FIELDS: Array<{ type: unknown; default: unknown }> = [
  { type: ['null', 'string'], default: null },
  { type: 'int', default: 7 },
  { type: 'string', default: 'n/a' },
  { type: { type: 'map', values: 'long' }, default: {} },
  { type: { type: 'array', items: 'double' }, default: [1.5] },
];

/**
 * A reader of `shape`. With `breaking`, some steps may also be ones Avro does not allow (a field
 * added without default, a type changed at random, a symbol dropped, a name changed without alias).
 */
function evolvedArb(shape: Shape, breaking: boolean, inUnion = false): fc.Arbitrary<Evolved> {
  const options: Array<fc.Arbitrary<Evolved>> = [];
  const broken = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Evolved> => arb.map((schema) => ({ schema, convert: undefined }));
  switch (shape.kind) {
    case 'primitive': {
      options.push(fc.constant({ schema: shape.name, convert: same }));
      for (const [to, convert] of PROMOTIONS[shape.name]) options.push(fc.constant({ schema: to, convert }));
      if (!inUnion && shape.name !== 'null') {
        // A reader union holding (a promotion of) the writer's type reads it.
        options.push(evolvedArb(shape, false, true).map((e) => ({ schema: ['null', e.schema], convert: e.convert })));
      }
      if (breaking) options.push(broken(fc.constantFrom(...PRIMITIVES)));
      break;
    }
    case 'nullable': {
      options.push(evolvedArb(shape.inner, breaking, true).map((e) => ({
        schema: ['null', e.schema],
        convert: e.convert === undefined ? undefined : (v: unknown) => (v === null ? null : e.convert!(v)),
      })));
      if (breaking) options.push(broken(evolvedArb(shape.inner, false, true).map((e) => e.schema)));
      break;
    }
    case 'array':
      options.push(evolvedArb(shape.items, breaking).map((e) => ({
        schema: { type: 'array', items: e.schema },
        convert: e.convert === undefined ? undefined : (v: unknown) => (v as unknown[]).map(e.convert!),
      })));
      if (breaking) options.push(broken(fc.constant({ type: 'map', values: schemaOf(shape.items) })));
      break;
    case 'map':
      options.push(evolvedArb(shape.values, breaking).map((e) => ({
        schema: { type: 'map', values: e.schema },
        convert: e.convert === undefined ? undefined : (v: unknown) => Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, e.convert!(x)])),
      })));
      break;
    case 'enum': {
      const { name, symbols } = shape;
      // New symbols in the reader, all in any order.
      const all = [...symbols, 'NEW_A', 'NEW_B'];
      options.push(fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length }).map((order) => ({ schema: { type: 'enum', name, symbols: order }, convert: same })));
      // Fewer symbols, with a default that unknown ones read as (Avro 1.11 "Enums").
      options.push(fc.subarray(symbols).map((kept) => ({
        schema: { type: 'enum', name, symbols: [...kept, 'OTHER'], default: 'OTHER' },
        convert: (v: unknown) => (kept.includes(v as string) ? v : 'OTHER'),
      })));
      if (breaking && symbols.length > 1) options.push(broken(fc.constant({ type: 'enum', name, symbols: symbols.slice(1) })));
      if (breaking) options.push(broken(fc.constant({ type: 'enum', name: `${name}X`, symbols })));
      break;
    }
    case 'record':
      options.push(evolvedRecordArb(shape, breaking));
      break;
  }
  return fc.oneof(...options);
}

type FieldPlan = 'keep' | 'rename' | 'drop' | 'renameWithoutAlias';

function evolvedRecordArb(shape: Extract<Shape, { kind: 'record' }>, breaking: boolean): fc.Arbitrary<Evolved> {
  const plans: FieldPlan[] = breaking ? ['keep', 'rename', 'drop', 'renameWithoutAlias'] : ['keep', 'rename', 'drop'];
  const fieldArbs = shape.fields.map((field) => fc.tuple(fc.constantFrom(...plans), evolvedArb(field, breaking)));
  const addedArb = fc.array(fc.tuple(fc.constantFrom(...ADDED_FIELDS), breaking ? fc.boolean() : fc.constant(true)), { maxLength: 2 });
  const renamedArb = breaking ? fc.constantFrom('keep', 'alias', 'noAlias') : fc.constantFrom('keep', 'alias');
  return fc.tuple(fc.tuple(...fieldArbs), addedArb, renamedArb, fc.integer({ min: 0, max: 1_000 })).map(([fields, added, renamed, rotation]) => {
    interface ReaderField {
      schema: Record<string, unknown>;
      value: (record: Record<string, unknown>) => unknown;
      readable: boolean;
    }
    const readerFields: ReaderField[] = [];
    fields.forEach(([plan, evolved], i) => {
      const writerName = fieldName(i);
      if (plan === 'drop') return;
      const name = plan === 'keep' ? writerName : `${writerName}_renamed`;
      readerFields.push({
        schema: { name, type: evolved.schema, ...(plan === 'rename' ? { aliases: [writerName] } : {}) },
        value: (record) => evolved.convert?.(record[writerName]),
        readable: evolved.convert !== undefined && plan !== 'renameWithoutAlias',
      });
    });
    added.forEach(([extra, withDefault], i) => {
      readerFields.push({
        schema: { name: `added${i}`, type: extra.type, ...(withDefault ? { default: extra.default } : {}) },
        value: () => extra.default,
        readable: withDefault,
      });
    });
    // Field order is the reader's business: rotate the list.
    const order = readerFields.map((_, i) => readerFields[(i + rotation) % readerFields.length]!);
    const name = renamed === 'keep' ? shape.name : `${shape.name}V2`;
    const schema = {
      type: 'record',
      name,
      ...(renamed === 'alias' ? { aliases: [shape.name] } : {}),
      fields: order.map((f) => f.schema),
    };
    const readable = renamed !== 'noAlias' && order.every((f) => f.readable);
    return {
      schema,
      convert: readable
        ? (v: unknown) => Object.fromEntries(order.map((f) => [f.schema['name'] as string, f.value(v as Record<string, unknown>)]))
        : undefined,
    };
  });
}

/** avsc's verdict: whether it builds a resolver, the way the job's reader does. */
function avscResolves(reader: ReturnType<typeof checkableSchema>, writer: ReturnType<typeof checkableSchema>): boolean {
  try {
    reader.type.createResolver(writer.type, { ignoreNamespaces: true });
    return true;
  } catch {
    return false;
  }
}

describe('schema evolution properties', () => {
  it('resolution between random compatible pairs never loses a field both sides have', () => {
    const caseArb = writerArb.chain((writer) => fc.tuple(fc.constant(writer), evolvedArb(writer, false), valueArb(writer)));
    fc.assert(
      fc.property(caseArb, ([writerShape, evolved, value]) => {
        const writer = checkableSchema(schemaOf(writerShape));
        const reader = checkableSchema(evolved.schema);
        expect(checkCompatibility(reader, writer)).toEqual([]);
        const resolver = reader.type.createResolver(writer.type, { ignoreNamespaces: true });
        const decoded = reader.type.fromBuffer(writer.type.toBuffer(value), resolver);
        // Every field on both sides (by name or alias) comes through with the writer's value,
        // promoted; every field only the reader has comes with its default.
        expect(decoded).toEqual(evolved.convert!(value));
      }),
      { numRuns: 300, seed: 20260303 },
    );
  });

  it('the checker and avsc agree on whether random pairs resolve, and compatible ones decode', () => {
    let compatibleSeen = 0;
    let incompatibleSeen = 0;
    const caseArb = writerArb.chain((writer) => fc.tuple(fc.constant(writer), evolvedArb(writer, true), valueArb(writer)));
    fc.assert(
      fc.property(caseArb, ([writerShape, evolved, value]) => {
        const writer = checkableSchema(schemaOf(writerShape));
        let reader: ReturnType<typeof checkableSchema>;
        try {
          reader = checkableSchema(evolved.schema);
        } catch {
          // A random change made an invalid schema (e.g. a union avsc cannot tell apart): nothing to compare.
          return;
        }
        const found = checkCompatibility(reader, writer);
        expect(found.length === 0, JSON.stringify({ reader: evolved.schema, writer: schemaOf(writerShape), found })).toBe(avscResolves(reader, writer));
        if (found.length === 0) {
          compatibleSeen++;
          const resolver = reader.type.createResolver(writer.type, { ignoreNamespaces: true });
          reader.type.fromBuffer(writer.type.toBuffer(value), resolver);
        } else {
          incompatibleSeen++;
          for (const incompatibility of found) expect(incompatibility.path).toMatch(/^\//);
        }
      }),
      { numRuns: 400, seed: 20260304 },
    );
    // Both verdicts must actually occur, or the property says nothing.
    expect(compatibleSeen).toBeGreaterThan(20);
    expect(incompatibleSeen).toBeGreaterThan(20);
  });
});
