/**
 * Logs on stderr with stable event names: JSON lines for machines (SPEC §6), or one readable line
 * per entry for a person at a terminal (`--log-format pretty`), plus a live progress line there.
 * Everything that logs receives a `Logger`; nothing writes to stderr itself.
 */
import { pino, type Logger as PinoLogger } from 'pino';

/** The logger every component receives: pino's, with `event` as the stable name of each line. */
export type Logger = PinoLogger;

/** Strips control characters (ANSI escapes, newlines) from text that came from data, before logging it. */
export function sanitizeForLog(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** How log lines are written: JSON lines, or one readable line each. */
export type LogFormat = 'json' | 'pretty';

/** Fields every line carries that a person at a terminal does not need to read. */
const QUIET_FIELDS = new Set(['time', 'level', 'msg', 'event', 'run_id', 'command', 'job_version', 'message', 'stack']);

/**
 * One JSON log line as a readable line: `12:00:01 WARN  lease_taken_over: message (date=… stage=…)`.
 * Values are shown as JSON when they are not plain strings, so nothing is lost but the run's ids.
 */
export function prettyLine(jsonLine: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 19) : '';
  const level = String(entry.level ?? '').toUpperCase().padEnd(5);
  const event = typeof entry.event === 'string' ? `${entry.event}: ` : '';
  const fields = Object.entries(entry)
    .filter(([key, value]) => !QUIET_FIELDS.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return `${time} ${level} ${event}${String(entry.msg ?? '')}${fields.length > 0 ? ` (${fields.join(' ')})` : ''}\n`;
}

/** A logger writing synchronously to stderr (sync, so nothing is lost at exit), as JSON lines or pretty lines. */
export function createLogger(level: string, base: Record<string, unknown>, onLine?: () => void, format: LogFormat = 'json'): Logger {
  const destination = pino.destination({ fd: 2, sync: true });
  const stream = {
    write: (line: string) => {
      onLine?.();
      destination.write(format === 'pretty' ? prettyLine(line) : line);
    },
  };
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, stream);
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
