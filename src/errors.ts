/**
 * The one error hierarchy of model-metrics. Every error has a stable `code` that tests and callers
 * match on, an optional `cause`, and context naming what failed and where (URI, key, byte offset,
 * field). Messages say what, where, expected versus actual, and the way out; they never carry
 * credentials or signed URLs.
 */

/** Stable error codes. Adding one is fine; renaming one breaks users' alerting. */
export type ErrorCode =
  | 'E_USAGE' // bad command line or config value
  | 'E_CONFIG' // config file unreadable or invalid
  | 'E_NOT_READY' // final stage asked for before the label window closed
  | 'E_STORAGE' // listing, reading or writing the object store failed
  | 'E_NOT_FOUND' // an object or root that must exist does not
  | 'E_CORRUPT_OBJECT' // an input object is not a valid Avro container file
  | 'E_SCHEMA_INCOMPATIBLE' // a writer schema cannot be resolved against our reader schema
  | 'E_CONCURRENT_CHANGE' // an input changed between listing and reading, or this run lost its lease
  | 'E_RUN_IN_PROGRESS' // another run of the same date and stage holds the lease; nothing done, retry later
  | 'E_INTERRUPTED' // SIGTERM or SIGINT: the run stopped cleanly, nothing committed
  | 'E_INTERNAL'; // a bug: an invariant did not hold

/** Context attached to an error; every field optional, all safe to log. */
export interface ErrorContext {
  uri?: string;
  key?: string;
  offset?: number;
  block?: number;
  field?: string;
  option?: string;
  operation?: string;
  attempts?: number;
  [extra: string]: unknown;
}

/** Base class: `code` is stable, `context` is structured and safe to log. */
export class ModelMetricsError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = context;
  }

  /** A plain object for JSON logs and the `--json` summary. */
  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, ...this.context };
  }
}

/** Bad command line or config value (exit 2). `option` names the flag. */
export class UsageError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_USAGE', message, context, options);
  }
}

/** Config file unreadable or invalid (exit 2). */
export class ConfigError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_CONFIG', message, context, options);
  }
}

/** The final window is still open (exit 3). */
export class NotReadyError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext = {}) {
    super('E_NOT_READY', message, context);
  }
}

/** The object store failed an operation (exit 1). */
export class StorageError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_STORAGE', message, context, options);
  }
}

/** Something that must exist does not (exit 1, or 2 when it is a root given on the command line). */
export class NotFoundError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_NOT_FOUND', message, context, options);
  }
}

/** An input object is not a valid Avro object container file. Skippable with `--on-corrupt skip`. */
export class CorruptObjectError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_CORRUPT_OBJECT', message, context, options);
  }
}

/** A writer schema cannot be resolved against the reader schema. Never skipped. */
export class SchemaIncompatibleError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_SCHEMA_INCOMPATIBLE', message, context, options);
  }
}

/** An input object changed (ETag) between listing and reading. */
export class ConcurrentChangeError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_CONCURRENT_CHANGE', message, context, options);
  }
}

/** The run was stopped by a signal; partial outputs were removed and nothing was committed. */
export class InterruptedError extends ModelMetricsError {
  constructor(readonly signal: 'SIGTERM' | 'SIGINT') {
    super('E_INTERRUPTED', `stopped by ${signal}: partial outputs removed, nothing committed; rerun to complete the work`, { signal });
  }
}

/** Process exit codes of SPEC §6. */
export const ExitCode = { ok: 0, failed: 1, usage: 2, notReady: 3, alert: 4 } as const;

/** The exit code an error maps to. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof ModelMetricsError) {
    if (error.code === 'E_USAGE' || error.code === 'E_CONFIG') return ExitCode.usage;
    // Both mean "nothing done, nothing wrong: try again later" to a scheduler.
    if (error.code === 'E_NOT_READY' || error.code === 'E_RUN_IN_PROGRESS') return ExitCode.notReady;
    // The shell convention for death by signal: 128 + its number (SIGTERM 15 → 143, SIGINT 2 → 130).
    if (error instanceof InterruptedError) return error.signal === 'SIGTERM' ? 143 : 130;
  }
  return ExitCode.failed;
}

/** A one-line description of any thrown value, without stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
