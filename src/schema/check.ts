/**
 * The compatibility modes of Confluent Schema Registry, applied to a candidate schema and the
 * history it must stay compatible with (issue 3, compatibility gate). "Backward": the candidate, as
 * reader, reads data written with a registered schema; "forward": a registered schema, as reader,
 * reads data written with the candidate. The plain modes compare with the latest registered
 * version, the transitive ones with every version, FULL does both directions, NONE checks nothing.
 */
import { UsageError } from '../errors.js';
import { checkCompatibility, checkableSchema, type CheckableSchema, type Incompatibility } from './compatibility.js';

/** The modes, spelled as Confluent spells them. */
export const compatibilityModes = [
  'BACKWARD',
  'BACKWARD_TRANSITIVE',
  'FORWARD',
  'FORWARD_TRANSITIVE',
  'FULL',
  'FULL_TRANSITIVE',
  'NONE',
] as const;

/** One of `compatibilityModes`. */
export type CompatibilityMode = (typeof compatibilityModes)[number];

/** Confluent's default mode. */
export const defaultCompatibilityMode: CompatibilityMode = 'BACKWARD';

/** The mode named by `text` (case-insensitive); a UsageError naming `option` and the modes otherwise. */
export function parseCompatibilityMode(text: string, option: string): CompatibilityMode {
  const mode = compatibilityModes.find((candidate) => candidate === text.trim().toUpperCase());
  if (mode === undefined) {
    throw new UsageError(`${option} must be one of ${compatibilityModes.join(', ')}; got ${JSON.stringify(text)}`, { option });
  }
  return mode;
}

/** Which way data flows in one check. */
export type CheckDirection = 'backward' | 'forward';

/** One planned comparison: the history version (by index, oldest = 0) and the direction. */
export interface PlannedCheck {
  index: number;
  direction: CheckDirection;
}

/** The comparisons a mode asks for against a history of `length` versions, latest version first. */
export function plannedChecks(mode: CompatibilityMode, length: number): PlannedCheck[] {
  if (mode === 'NONE' || length === 0) return [];
  const transitive = mode.endsWith('_TRANSITIVE');
  const directions: CheckDirection[] = mode.startsWith('FULL') ? ['backward', 'forward'] : mode.startsWith('FORWARD') ? ['forward'] : ['backward'];
  const indexes = transitive ? Array.from({ length }, (_, i) => length - 1 - i) : [length - 1];
  return indexes.flatMap((index) => directions.map((direction) => ({ index, direction })));
}

/** A schema with the name reports give it, e.g. `v1 (schemas/prediction/v1.avsc)` or `subject s version 3`. */
export interface LabelledSchema extends CheckableSchema {
  label: string;
}

/** Parses a schema's JSON under its label; a UsageError naming it when it is not a schema the job can read. */
export function labelledSchema(json: unknown, label: string): LabelledSchema {
  try {
    return { ...checkableSchema(json), label };
  } catch (error) {
    const reason = (error as Error).message;
    const hint = reason.includes('ambiguous unwrapped union')
      ? ' (model-metrics reads unions unwrapped, so a union must not hold two branches a value could belong to, such as int and long, or two records or maps; the job could not read such data either)'
      : '';
    throw new UsageError(`${label} is not a valid Avro schema: ${reason}${hint}`, { schema: label }, { cause: error });
  }
}

/** The result of one comparison. */
export interface PairCheck {
  direction: CheckDirection;
  /** Label of the reader schema. */
  reader: string;
  /** Label of the writer schema. */
  writer: string;
  compatible: boolean;
  incompatibilities: Incompatibility[];
}

/** The result of a gate run. */
export interface CompatibilityReport {
  mode: CompatibilityMode;
  compatible: boolean;
  /** Label of the candidate schema. */
  candidate: string;
  /** Labels of the history versions, oldest first. */
  history: string[];
  checks: PairCheck[];
}

/** Checks `candidate` against `history` (oldest first) under `mode`. */
export function checkAgainstHistory(candidate: LabelledSchema, history: readonly LabelledSchema[], mode: CompatibilityMode): CompatibilityReport {
  const checks = plannedChecks(mode, history.length).map(({ index, direction }): PairCheck => {
    const registered = history[index]!;
    const [reader, writer] = direction === 'backward' ? [candidate, registered] : [registered, candidate];
    const incompatibilities = checkCompatibility(reader, writer);
    return { direction, reader: reader.label, writer: writer.label, compatible: incompatibilities.length === 0, incompatibilities };
  });
  return {
    mode,
    compatible: checks.every((check) => check.compatible),
    candidate: candidate.label,
    history: history.map((version) => version.label),
    checks,
  };
}
