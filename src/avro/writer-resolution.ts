/**
 * Resolving an object's writer schema against our reader type (SPEC §2): record names and
 * namespaces need not match, promotions are allowed, timestamps must keep their unit. An
 * incompatible writer is a SchemaIncompatibleError naming the object's URI and the first field
 * that cannot be read, never skipped. Resolvers are cached per reader type and writer fingerprint.
 */
import type { Type, types } from 'avsc';
import { SchemaIncompatibleError } from '../errors.js';
import { checkableSchema, checkCompatibility, type Incompatibility } from '../schema/compatibility.js';
import { describeType, parseAvroType, type Resolver } from './avro-types.js';
import type { ContainerHeader } from './container-header.js';
import { schemaFingerprint } from './schemas.js';

function isRecord(type: Type): type is types.RecordType {
  return type.typeName === 'record' || type.typeName === 'error';
}

/** Fresh options per resolution: avsc stores a resolver registry (keyed by record names) in the object it is given. */
function resolveOptions(): { ignoreNamespaces: boolean } {
  return { ignoreNamespaces: true };
}

/**
 * Why a writer record cannot be read as a reader record, explained by the compatibility checker
 * (schema/compatibility.ts, the rules of the `schema check` command): the first field it names.
 */
function explainIncompatibility(readerType: Type, writerType: Type): { field: string; detail: string } | undefined {
  let findings: Incompatibility[];
  try {
    findings = checkCompatibility(checkableSchema(readerType.schema({ exportAttrs: true })), checkableSchema(writerType.schema({ exportAttrs: true })));
  } catch {
    return undefined;
  }
  const found = findings.find((finding) => finding.field !== undefined);
  if (found === undefined) return undefined;
  const field = found.field!;
  if (found.type === 'READER_FIELD_MISSING_DEFAULT_VALUE') return { field, detail: `field "${field}" is missing in the writer and has no default in the reader` };
  return { field, detail: `field "${field}" is ${found.writer} in the writer, expected ${found.reader} (${found.message})` };
}

/** The logicalType of a field's schema JSON, looking inside a nullable union. */
function logicalTypeOf(schema: unknown): string | undefined {
  if (Array.isArray(schema)) {
    for (const branch of schema) {
      const found = logicalTypeOf(branch);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (schema !== null && typeof schema === 'object') {
    const logical = (schema as { logicalType?: unknown }).logicalType;
    return typeof logical === 'string' ? logical : undefined;
  }
  return undefined;
}

/** A reader field holding a timestamp: its name, the names it matches and its unit. */
interface TimestampField {
  name: string;
  names: string[];
  logicalType: string;
}

/** The timestamp fields of each reader type, found once (a reader's schema never changes). */
const readerTimestampFields = new WeakMap<Type, TimestampField[]>();

function timestampFieldsOf(readerType: Type): TimestampField[] {
  let found = readerTimestampFields.get(readerType);
  if (found === undefined) {
    const fields = (readerType.schema({ exportAttrs: true }) as { fields?: Array<{ name: string; aliases?: string[]; type: unknown }> }).fields ?? [];
    found = [];
    for (const field of fields) {
      const logicalType = logicalTypeOf(field.type);
      if (logicalType !== undefined && logicalType.startsWith('timestamp-')) found.push({ name: field.name, names: [field.name, ...(field.aliases ?? [])], logicalType });
    }
    readerTimestampFields.set(readerType, found);
  }
  return found;
}

/**
 * Schema resolution ignores logical types, so a `timestamp-millis` writer field would silently be
 * read as microseconds — every delay off by a factor of 1000. A timestamp field whose writer states
 * another unit is refused; a plain long is taken to be in the reader's unit. The Parsing Canonical
 * Form drops logicalType, so this is checked for every object, whatever its fingerprint.
 */
export function checkTimestampUnits(readerType: Type, header: ContainerHeader, uri: string): void {
  const writerFields = (header.writerSchema as { fields?: unknown }).fields;
  if (!Array.isArray(writerFields)) return;
  for (const readerField of timestampFieldsOf(readerType)) {
    const writerField = (writerFields as Array<{ name?: unknown; type?: unknown } | null>).find(
      (f) => typeof f?.name === 'string' && readerField.names.includes(f.name),
    );
    const actual = writerField === undefined || writerField === null ? undefined : logicalTypeOf(writerField.type);
    if (actual !== undefined && actual !== readerField.logicalType) {
      throw new SchemaIncompatibleError(
        `object "${uri}": writer schema is incompatible with ${readerType.name ?? describeType(readerType)}: ` +
          `field "${readerField.name}" is ${actual} in the writer, expected ${readerField.logicalType} (a long of that unit); ` +
          "convert the producer's timestamps; an incompatible object is never skipped",
        { uri, field: readerField.name },
      );
    }
  }
}

function shortName(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/**
 * A copy of a schema whose record fields named like Object.prototype members ("constructor",
 * "toString", "__proto__") get a trailing "_" until unique; undefined when it has none. avsc 5.7
 * keys fields by name in plain objects when it resolves records (RecordType._update) and throws a
 * TypeError on such a name. Field names do not change the bytes, and no reader of ours has such a
 * field, so the renamed writer fields are skipped exactly as the originals would be.
 */
function withoutPrototypeFieldNames(schema: unknown): unknown {
  let changed = false;
  const copy = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(copy);
    if (value === null || typeof value !== 'object') return value;
    const result: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const child of ['type', 'items', 'values']) if (child in result) result[child] = copy(result[child]);
    const fields = result['fields'];
    if (Array.isArray(fields)) {
      const taken = new Set(fields.map((field) => (field as { name?: unknown } | null)?.name));
      result['fields'] = fields.map((field: unknown) => {
        if (field === null || typeof field !== 'object') return field;
        const renamed: Record<string, unknown> = { ...(field as Record<string, unknown>), type: copy((field as { type?: unknown }).type) };
        const original = renamed['name'];
        if (typeof original === 'string' && original in Object.prototype) {
          changed = true;
          let name = `${original}_`;
          while (taken.has(name) || name in Object.prototype) name = `${name}_`;
          taken.add(name);
          renamed['name'] = name;
        }
        return renamed;
      });
    }
    return result;
  };
  const result = copy(schema);
  return changed ? result : undefined;
}

/**
 * The writer type to resolve against `readerType`. SPEC §2: the writer's record name and namespace
 * need not match ours. Namespaces are ignored by resolving with `ignoreNamespaces`; for a different
 * name the writer type is re-parsed under the reader's short name (same fields, same bytes), so the
 * resolver stays bound to `readerType` itself. Fields avsc cannot resolve by name are renamed too.
 */
function writerNamedLikeReader(readerType: Type, header: ContainerHeader): Type {
  const writerType = header.writerType;
  if (!isRecord(readerType) || !isRecord(writerType) || writerType.name === undefined) return writerType;
  let schema = (withoutPrototypeFieldNames(header.writerSchema) ?? header.writerSchema) as Record<string, unknown>;
  const accepted = [readerType.name ?? '', ...(readerType.aliases ?? [])].map(shortName);
  if (!accepted.includes(shortName(writerType.name))) {
    const writerName = String(schema['name']);
    schema = { ...schema, name: writerName.slice(0, writerName.lastIndexOf('.') + 1) + shortName(readerType.name ?? '') };
  }
  if (schema === header.writerSchema) return writerType;
  try {
    return parseAvroType(schema);
  } catch {
    // A recursive writer schema refers to its own name; resolution then reports the name mismatch.
    return writerType;
  }
}

/** Resolvers per reader type and writer fingerprint: many objects share a few writer schemas. */
const resolverCache = new WeakMap<Type, Map<string, Resolver>>();
/** Writer schemas remembered per reader type; the cache is dropped when full, so it stays bounded. */
const RESOLVER_CACHE_SIZE = 64;

/** Resolves a file's writer schema against our reader type; SchemaIncompatibleError naming the URI, field path, writer type and reader type. */
export function resolveWriter(readerType: Type, header: ContainerHeader, uri: string): Resolver {
  checkTimestampUnits(readerType, header, uri);
  let cache = resolverCache.get(readerType);
  const cached = cache?.get(header.fingerprint);
  if (cached !== undefined) return cached;
  const writerType = writerNamedLikeReader(readerType, header);
  let resolver: Resolver;
  try {
    resolver = readerType.createResolver(writerType, resolveOptions());
  } catch (error) {
    const readerName = readerType.name ?? describeType(readerType);
    const found =
      isRecord(readerType) && isRecord(writerType) ? explainIncompatibility(readerType, writerType) : undefined;
    const detail =
      found?.detail ??
      (isRecord(readerType) && !isRecord(writerType)
        ? `the writer schema is ${describeType(writerType)}, expected a record`
        : `${describeType(writerType)} cannot be read as ${readerName} (${(error as Error).message})`);
    throw new SchemaIncompatibleError(
      `object "${uri}": writer schema is incompatible with ${readerName}: ${detail}; ` +
        'fix the producer or convert the object (an incompatible object is never skipped)',
      found === undefined ? { uri } : { uri, field: found.field },
      { cause: error },
    );
  }
  if (cache === undefined) {
    cache = new Map();
    resolverCache.set(readerType, cache);
  } else if (cache.size >= RESOLVER_CACHE_SIZE) {
    cache.clear();
  }
  cache.set(header.fingerprint, resolver);
  return resolver;
}

/** Reader fingerprints, computed once per type (a SHA-256 of the canonical form). */
const readerFingerprints = new WeakMap<Type, string>();

export function fingerprintOf(type: Type): string {
  let fingerprint = readerFingerprints.get(type);
  if (fingerprint === undefined) {
    fingerprint = schemaFingerprint(type);
    readerFingerprints.set(type, fingerprint);
  }
  return fingerprint;
}
