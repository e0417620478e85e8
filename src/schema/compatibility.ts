/**
 * Reader/writer compatibility of two Avro schemas, modelled on Apache Avro's
 * `SchemaCompatibility.java` (the checker Confluent Schema Registry runs): a reader is compatible with
 * a writer when every datum the writer can produce resolves into the reader (Avro 1.11 "Schema
 * Resolution"). Every incompatibility is reported, each with its location in the reader schema as a
 * JSON pointer (`/fields/y_pred/type`), the reader and writer fragments, and the reason.
 *
 * Two deliberate differences from the Java checker: locations name record fields (`/fields/y_pred`)
 * instead of their positions, and a timestamp whose unit differs on the two sides (timestamp-millis
 * written, timestamp-micros read) is incompatible, because resolution ignores logical types and would
 * read every value off by a factor of 1000; the job refuses such files too (SPEC §2).
 */
import type { Type, types } from 'avsc';
import { AVRO_PROMOTIONS, describeType, parseAvroType } from '../avro/avro-types.js';

/** The incompatibility kinds of SchemaCompatibility.java, plus the two this checker adds. */
export type IncompatibilityType =
  | 'NAME_MISMATCH'
  | 'FIXED_SIZE_MISMATCH'
  | 'MISSING_ENUM_SYMBOLS'
  | 'READER_FIELD_MISSING_DEFAULT_VALUE'
  | 'TYPE_MISMATCH'
  | 'MISSING_UNION_BRANCH'
  // A reader field whose name and aliases match several writer fields (Java throws instead).
  | 'AMBIGUOUS_FIELD_ALIAS'
  // Both sides declare a time logical type and the units differ.
  | 'TIMESTAMP_UNIT_MISMATCH';

/** One reason a reader cannot read what a writer wrote. */
export interface Incompatibility {
  type: IncompatibilityType;
  /** JSON pointer into the reader schema, e.g. `/fields/y_pred/type`; `/` is the whole schema. */
  path: string;
  /** Dotted path of the record field concerned (`y_pred`, `address.zip`); absent above the first field. */
  field?: string;
  /** The reader's type at that location, rendered short (named types by name). */
  reader: string;
  /** The writer's type at that location. */
  writer: string;
  /** Why, in words, with the way out where there is one. */
  message: string;
}

/** A schema ready to be checked: the avsc type and the logical types avsc leaves out of it. */
export interface CheckableSchema {
  /** The schema as JSON (what a file or a registry holds). */
  json: unknown;
  /** Parsed with `parseAvroType`, like every type the job reads or writes. */
  type: Type;
  /** Logical type names of the type nodes that declared one (avsc drops unknown ones such as timestamp-millis). */
  logicalTypes: ReadonlyMap<Type, string>;
}

/** Parses a schema (JSON value) for checking; throws avsc's error when it is not a valid schema. */
export function checkableSchema(json: unknown): CheckableSchema {
  const type = parseAvroType(json);
  const logicalTypes = new Map<Type, string>();
  collectLogicalTypes(json, type, logicalTypes);
  return { json, type, logicalTypes };
}

/**
 * Walks the schema JSON and its parsed type side by side and notes the logicalType of every node
 * that declares one. avsc makes a fresh type for every inline object schema, so the node is a safe
 * key; named references (strings) were walked where they were defined.
 */
function collectLogicalTypes(json: unknown, type: Type, into: Map<Type, string>): void {
  if (typeof json === 'string' || json === null || typeof json !== 'object') return;
  if (Array.isArray(json)) {
    const branches = (type as types.UnwrappedUnionType).types;
    json.forEach((branch, i) => {
      const branchType = branches[i];
      if (branchType !== undefined) collectLogicalTypes(branch, branchType, into);
    });
    return;
  }
  const node = json as { type?: unknown; logicalType?: unknown; fields?: Array<{ type?: unknown }>; items?: unknown; values?: unknown };
  if (typeof node.logicalType === 'string') into.set(type, node.logicalType);
  const structural = underlying(type);
  switch (node.type) {
    case 'record':
    case 'error': {
      const fields = (structural as types.RecordType).fields;
      node.fields?.forEach((field, i) => {
        const fieldType = fields[i]?.type;
        if (fieldType !== undefined) collectLogicalTypes(field.type, fieldType, into);
      });
      return;
    }
    case 'array':
      collectLogicalTypes(node.items, (structural as types.ArrayType).itemsType, into);
      return;
    case 'map':
      collectLogicalTypes(node.values, (structural as types.MapType).valuesType, into);
      return;
    default:
      return;
  }
}

/** A logical type's underlying type (timestamp-micros → long); any other type itself. */
function underlying(type: Type): Type {
  let current = type;
  while (current.typeName.startsWith('logical:')) current = (current as types.LogicalType).underlyingType;
  return current;
}

/** The Avro kind of a type, as SchemaCompatibility.java compares them: logical types and errors count as their base. */
function kindOf(type: Type): string {
  const name = underlying(type).typeName;
  if (name.startsWith('union')) return 'union';
  return name === 'error' ? 'record' : name;
}


/** Logical types that fix the unit of a long or int; two different ones cannot stand for each other. */
const TIME_UNIT_LOGICAL_TYPES = new Set([
  'timestamp-millis',
  'timestamp-micros',
  'timestamp-nanos',
  'local-timestamp-millis',
  'local-timestamp-micros',
  'local-timestamp-nanos',
  'time-millis',
  'time-micros',
]);

/** An incompatibility found below some node, its location relative to that node. */
interface Finding {
  type: IncompatibilityType;
  /** Reference tokens from the node down to the location. */
  location: string[];
  /** The reader's type there, or a description when there is no type to show. */
  reader: Type | string;
  writer: Type | string;
  message: string;
}

/** Prefixes relative findings with the tokens leading to them. */
function under(tokens: readonly string[], findings: readonly Finding[]): Finding[] {
  return findings.map((finding) => ({ ...finding, location: [...tokens, ...finding.location] }));
}

/** The unqualified part of a full name. */
function shortName(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/** One reader/writer comparison, memoized per pair of type objects so recursive schemas terminate. */
class CompatibilityChecker {
  /** Results per (reader, writer); `inProgress` while that pair is being compared higher up the stack. */
  private readonly memo = new Map<Type, Map<Type, Finding[] | 'inProgress'>>();

  constructor(
    private readonly readerLogical: ReadonlyMap<Type, string>,
    private readonly writerLogical: ReadonlyMap<Type, string>,
  ) {}

  /** Findings of one pair, relative to it. */
  compare(reader: Type, writer: Type): Finding[] {
    let byWriter = this.memo.get(reader);
    if (byWriter === undefined) {
      byWriter = new Map();
      this.memo.set(reader, byWriter);
    }
    const known = byWriter.get(writer);
    // As in SchemaCompatibility.java: a pair met again while it is being compared is compatible
    // unless proven otherwise (the outer comparison reports what is wrong with it).
    if (known === 'inProgress') return [];
    if (known !== undefined) return known;
    byWriter.set(writer, 'inProgress');
    const findings = this.calculate(reader, writer);
    byWriter.set(writer, findings);
    return findings;
  }

  private calculate(reader: Type, writer: Type): Finding[] {
    const readerKind = kindOf(reader);
    const writerKind = kindOf(writer);
    const r = underlying(reader);
    const w = underlying(writer);
    if (readerKind === writerKind) {
      switch (readerKind) {
        case 'array':
          return under(['items'], this.compare((r as types.ArrayType).itemsType, (w as types.ArrayType).itemsType));
        case 'map':
          return under(['values'], this.compare((r as types.MapType).valuesType, (w as types.MapType).valuesType));
        case 'fixed':
          return [...this.checkNames(r, w), ...this.checkFixedSize(r as types.FixedType, w as types.FixedType)];
        case 'enum':
          return [...this.checkNames(r, w), ...this.checkEnumSymbols(r as types.EnumType, w as types.EnumType)];
        case 'record':
          return [...this.checkNames(r, w), ...this.checkFields(r as types.RecordType, w as types.RecordType)];
        case 'union':
          return this.checkWriterUnionBranches(r as types.UnwrappedUnionType, w as types.UnwrappedUnionType);
        default:
          return this.checkTimeUnits(reader, writer);
      }
    }
    // Different kinds. A writer union is readable when each of its branches is.
    if (writerKind === 'union') {
      return (w as types.UnwrappedUnionType).types.flatMap((branch, i) => under([String(i)], this.compare(reader, branch)));
    }
    if (readerKind === 'union') {
      const branches = (r as types.UnwrappedUnionType).types;
      if (branches.some((branch) => this.compare(branch, writer).length === 0)) return [];
      return [{
        type: 'MISSING_UNION_BRANCH',
        location: [],
        reader,
        writer,
        message: `the reader's union has no branch that can read the writer's ${writerKind}; add one`,
      }];
    }
    if (AVRO_PROMOTIONS[readerKind]?.includes(writerKind) === true) return this.checkTimeUnits(reader, writer);
    return [this.typeMismatch(reader, writer, readerKind, writerKind)];
  }

  private typeMismatch(reader: Type, writer: Type, readerKind: string, writerKind: string): Finding {
    const promotable = AVRO_PROMOTIONS[readerKind];
    const hint = promotable === undefined ? '' : ` (a reader ${readerKind} accepts ${[readerKind, ...promotable].join(', ')})`;
    return {
      type: 'TYPE_MISMATCH',
      location: [],
      reader,
      writer,
      message: `a writer's ${writerKind} cannot be read as ${readerKind}${hint}`,
    };
  }

  /** SchemaCompatibility.schemaNameEquals: same unqualified name, or the writer's full name among the reader's aliases. */
  private checkNames(reader: Type, writer: Type): Finding[] {
    const readerName = reader.name ?? '';
    const writerName = writer.name ?? '';
    if (shortName(readerName) === shortName(writerName) || (reader.aliases ?? []).includes(writerName)) return [];
    return [{
      type: 'NAME_MISMATCH',
      location: ['name'],
      reader,
      writer,
      message: `the reader's ${kindOf(reader)} is named ${readerName}, the writer's ${writerName}; keep the name or add "${writerName}" to the reader's aliases`,
    }];
  }

  private checkFixedSize(reader: types.FixedType, writer: types.FixedType): Finding[] {
    if (reader.size === writer.size) return [];
    return [{
      type: 'FIXED_SIZE_MISMATCH',
      location: ['size'],
      reader,
      writer,
      message: `the writer's fixed holds ${writer.size} bytes, the reader's ${reader.size}`,
    }];
  }

  /** Writer symbols the reader lacks are fine only when the reader enum has a default symbol (Avro 1.11 "Enums"). */
  private checkEnumSymbols(reader: types.EnumType, writer: types.EnumType): Finding[] {
    const missing = writer.symbols.filter((symbol) => !reader.symbols.includes(symbol)).sort();
    const readerDefault = (reader as types.EnumType & { default?: string }).default;
    if (missing.length === 0 || (readerDefault !== undefined && reader.symbols.includes(readerDefault))) return [];
    return [{
      type: 'MISSING_ENUM_SYMBOLS',
      location: ['symbols'],
      reader,
      writer,
      message: `the writer's symbols ${missing.join(', ')} are not in the reader's enum, which has no default symbol; add them or give the reader enum a default`,
    }];
  }

  /** Every reader field must come from a writer field (by name or alias) or have a default. */
  private checkFields(reader: types.RecordType, writer: types.RecordType): Finding[] {
    const findings: Finding[] = [];
    for (const readerField of reader.fields) {
      const names = [readerField.name, ...(readerField.aliases ?? [])];
      const matches = writer.fields.filter((candidate) => names.includes(candidate.name));
      const at = ['fields', readerField.name];
      if (matches.length > 1) {
        findings.push({
          type: 'AMBIGUOUS_FIELD_ALIAS',
          location: at,
          reader,
          writer,
          message: `reader field "${readerField.name}" matches several writer fields by name and aliases (${matches.map((m) => m.name).join(', ')}); drop one alias`,
        });
        continue;
      }
      const writerField = matches[0];
      if (writerField === undefined) {
        const enumDefault = (readerField.type as types.EnumType & { default?: string }).default;
        if (readerField.defaultValue() === undefined && kindOf(readerField.type) === 'enum' && enumDefault !== undefined) {
          // SchemaCompatibility.java compares such a field's enum with the writer record itself,
          // which always fails as TYPE_MISMATCH; the same kind is reported here, with the reason.
          findings.push({
            type: 'TYPE_MISMATCH',
            location: [...at, 'type'],
            reader: readerField.type,
            writer,
            message: `reader field "${readerField.name}" is not in the writer and has no default (the default symbol of its enum only stands in for unknown symbols); give the field a default`,
          });
        } else if (readerField.defaultValue() === undefined) {
          findings.push({
            type: 'READER_FIELD_MISSING_DEFAULT_VALUE',
            location: at,
            reader: readerField.type,
            writer: `no field ${readerField.name} in ${describeType(writer)}`,
            message: `reader field "${readerField.name}" is not in the writer${readerField.aliases.length > 0 ? ` (nor its aliases ${readerField.aliases.join(', ')})` : ''} and has no default; give it a default`,
          });
        }
        continue;
      }
      findings.push(...under([...at, 'type'], this.compare(readerField.type, writerField.type)));
    }
    return findings;
  }

  /** Same kinds, both unions: every writer branch must be readable by the reader union. */
  private checkWriterUnionBranches(reader: types.UnwrappedUnionType, writer: types.UnwrappedUnionType): Finding[] {
    const findings: Finding[] = [];
    writer.types.forEach((branch, i) => {
      if (this.compare(reader, branch).length === 0) return;
      findings.push({
        type: 'MISSING_UNION_BRANCH',
        location: [String(i)],
        reader,
        writer: branch,
        message: `the reader's union has no branch that can read the writer's branch ${i} (${kindOf(branch)}); add one`,
      });
    });
    return findings;
  }

  private checkTimeUnits(reader: Type, writer: Type): Finding[] {
    const readerUnit = this.readerLogical.get(reader) ?? logicalNameOf(reader);
    const writerUnit = this.writerLogical.get(writer) ?? logicalNameOf(writer);
    if (readerUnit === undefined || writerUnit === undefined || readerUnit === writerUnit) return [];
    if (!TIME_UNIT_LOGICAL_TYPES.has(readerUnit) || !TIME_UNIT_LOGICAL_TYPES.has(writerUnit)) return [];
    return [{
      type: 'TIMESTAMP_UNIT_MISMATCH',
      location: [],
      reader,
      writer,
      message: `the writer's ${writerUnit} would be read as ${readerUnit}: schema resolution ignores logical types, so every value would be off by the unit ratio; keep the unit or add a new field`,
    }];
  }
}

/** The logical type of a type avsc instantiated as one (timestamp-micros in parseAvroType). */
function logicalNameOf(type: Type): string | undefined {
  return type.typeName.startsWith('logical:') ? type.typeName.slice('logical:'.length) : undefined;
}

/** JSON pointer of reference tokens (RFC 6901 escaping). */
function pointerOf(location: readonly string[]): string {
  return `/${location.map((token) => token.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
}

/** The dotted record-field path of a location: the token after each `fields`. */
function fieldOf(location: readonly string[]): string | undefined {
  const names: string[] = [];
  location.forEach((token, i) => {
    if (token === 'fields' && i + 1 < location.length) names.push(location[i + 1]!);
  });
  return names.length === 0 ? undefined : names.join('.');
}

/** Every reason `reader` cannot read data written with `writer`; empty when it always can. */
export function checkCompatibility(reader: CheckableSchema, writer: CheckableSchema): Incompatibility[] {
  const checker = new CompatibilityChecker(reader.logicalTypes, writer.logicalTypes);
  return checker.compare(reader.type, writer.type).map((finding) => {
    const field = fieldOf(finding.location);
    return {
      type: finding.type,
      path: pointerOf(finding.location),
      ...(field === undefined ? {} : { field }),
      reader: typeof finding.reader === 'string' ? finding.reader : describeType(finding.reader),
      writer: typeof finding.writer === 'string' ? finding.writer : describeType(finding.writer),
      message: finding.message,
    };
  });
}
