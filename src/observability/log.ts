/**
 * JSON-lines logs on stderr (SPEC §6) with stable event names, plus a live progress line for a
 * person at a terminal. Everything that logs receives a `Logger`; nothing writes to stderr itself.
 */
import { pino, type Logger as PinoLogger } from 'pino';

/** The logger every component receives: pino's, with `event` as the stable name of each line. */
export type Logger = PinoLogger;

/** Strips control characters (ANSI escapes, newlines) from text that came from data, before logging it. */
export function sanitizeForLog(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** A logger writing JSON lines synchronously to stderr (sync, so nothing is lost at exit). */
export function createLogger(level: string, base: Record<string, unknown>, onLine?: () => void): Logger {
  const destination = pino.destination({ fd: 2, sync: true });
  const stream = onLine === undefined ? destination : { write: (line: string) => { onLine(); destination.write(line); } };
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, stream);
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
