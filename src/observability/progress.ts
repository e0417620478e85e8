/**
 * Progress of a run: objects, records, bytes, rate and ETA. At a terminal it is a live line on
 * stderr, redrawn at most a few times a second; elsewhere a `progress` log line every interval.
 */
import type { Logger } from './log.js';

/** Counters a run updates as it reads. */
export interface ProgressState {
  phase: string;
  objectsDone: number;
  objectsTotal: number;
  bytesDone: number;
  bytesTotal: number;
  records: number;
}

/** Formats a byte count for people: 1.5 MiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Renders and throttles progress output. */
export class Progress {
  readonly state: ProgressState = { phase: 'starting', objectsDone: 0, objectsTotal: 0, bytesDone: 0, bytesTotal: 0, records: 0 };
  private startedAt = Date.now();
  private lastDraw = 0;
  private lineShown = false;

  constructor(
    private readonly logger: Logger,
    private readonly terminal: NodeJS.WriteStream | undefined,
    private readonly logIntervalMs = 30_000,
  ) {}

  /** Starts counting a new unit of work (a day) with its totals: counters, rate and ETA restart. */
  begin(objectsTotal: number, bytesTotal: number): void {
    Object.assign(this.state, { objectsDone: 0, bytesDone: 0, records: 0, objectsTotal, bytesTotal });
    this.startedAt = Date.now();
  }

  /** Call often; draws or logs only when due. */
  tick(): void {
    const now = Date.now();
    const interval = this.terminal !== undefined ? 250 : this.logIntervalMs;
    if (now - this.lastDraw < interval) return;
    this.lastDraw = now;
    if (this.terminal !== undefined) {
      this.terminal.write(`\r\x1b[2K${this.describe(now)}`);
      this.lineShown = true;
    } else {
      const { rate, etaSeconds } = this.pace(now);
      const s = this.state;
      this.logger.info(
        {
          event: 'progress',
          phase: s.phase,
          objects_done: s.objectsDone,
          objects_total: s.objectsTotal,
          records: s.records,
          bytes_done: s.bytesDone,
          bytes_total: s.bytesTotal,
          bytes_per_s: Math.round(rate),
          eta_s: etaSeconds,
          elapsed_s: (now - this.startedAt) / 1000,
        },
        this.describe(now),
      );
    }
  }

  /** Erases the live line so that a log line can be printed cleanly (the line comes back on the next tick). */
  clearLine(): void {
    if (this.lineShown && this.terminal !== undefined) {
      this.terminal.write('\r\x1b[2K');
      this.lineShown = false;
      this.lastDraw = 0;
    }
  }

  /** Bytes per second so far and the seconds left at that rate (null until it means something). */
  pace(now = Date.now()): { rate: number; etaSeconds: number | null } {
    const s = this.state;
    const seconds = Math.max((now - this.startedAt) / 1000, 0.001);
    const rate = s.bytesDone / seconds;
    // The first seconds' rate is mostly start-up: no ETA until it means something.
    const etaSeconds = seconds >= 2 && rate > 0 && s.bytesTotal > s.bytesDone ? Math.ceil((s.bytesTotal - s.bytesDone) / rate) : null;
    return { rate, etaSeconds };
  }

  /** One line: phase, objects, records, bytes, rate, ETA. */
  describe(now = Date.now()): string {
    const s = this.state;
    const { rate, etaSeconds } = this.pace(now);
    const eta = etaSeconds === null ? '-' : `${etaSeconds}s`;
    return `${s.phase}: ${s.objectsDone}/${s.objectsTotal} objects, ${s.records.toLocaleString('en-US')} records, ${formatBytes(s.bytesDone)}/${formatBytes(s.bytesTotal)}, ${formatBytes(rate)}/s, ETA ${eta}`;
  }
}
