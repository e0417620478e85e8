/**
 * Facts about a schema's shape that need no decoding: the promotions of schema resolution, the
 * nesting depth of a schema and of its JSON text (both bounded, iterative), and a short rendering
 * of a type for messages.
 */
import type { Type } from 'avsc';

/** Avro 1.11 "Schema Resolution" promotions: the writer types each reader type accepts besides itself. */
export const AVRO_PROMOTIONS: Readonly<Record<string, readonly string[]>> = {
  long: ['int'],
  float: ['int', 'long'],
  double: ['int', 'long', 'float'],
  string: ['bytes'],
  bytes: ['string'],
};

/**
 * Nesting depth of a schema (JSON value), stopping as soon as it exceeds `limit`: 1 for a primitive,
 * one more per record field, array items, map values and union branch; default values and other
 * attributes add one per level of their JSON. Iterative, so a schema of 10^6 levels costs no stack.
 */
export function schemaDepth(schema: unknown, limit: number): number {
  const values: unknown[] = [schema];
  const depths: number[] = [1];
  const isType: boolean[] = [true];
  let deepest = 0;
  const push = (value: unknown, depth: number, type: boolean): void => {
    values.push(value);
    depths.push(depth);
    isType.push(type);
  };
  while (values.length > 0) {
    const value = values.pop();
    const depth = depths.pop()!;
    const type = isType.pop()!;
    if (depth > deepest) {
      deepest = depth;
      if (deepest > limit) return deepest;
    }
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (const item of value) push(item, depth + 1, type);
      continue;
    }
    for (const [name, child] of Object.entries(value)) {
      if (type && name === 'fields' && Array.isArray(child)) {
        for (const field of child) {
          if (field !== null && typeof field === 'object' && !Array.isArray(field)) {
            for (const [attribute, attributeValue] of Object.entries(field)) push(attributeValue, depth + 1, attribute === 'type');
          } else {
            push(field, depth + 1, false);
          }
        }
      } else {
        push(child, depth + 1, type && (name === 'type' || name === 'items' || name === 'values'));
      }
    }
  }
  return deepest;
}

/**
 * JSON nesting depth of a schema document's bytes (arrays and objects), stopping past `limit`: a
 * linear scan run before JSON.parse, which takes seconds to build a value nested millions deep.
 */
export function jsonNestingDepth(text: Buffer, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const byte = text[i];
    if (inString) {
      if (byte === 0x5c) i++; // backslash: the next byte is escaped
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) {
      inString = true;
    } else if (byte === 0x5b || byte === 0x7b) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (byte === 0x5d || byte === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

/** A short rendering of a type for error messages: `"double"`, `["null","double"]`, a record's name. */
export function describeType(type: Type): string {
  const text = JSON.stringify(type.schema({ noDeref: true }));
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
