/**
 * The policy of the run lease (issue 5), without I/O: what a lease document holds, when it has
 * expired, who may take it over, and how long its holder may go on touching a published partition.
 * `lease.ts` does the store requests; everything it decides is decided here (STYLE habit 8).
 *
 * Two clocks are in play. Wall clocks of different hosts decide expiry (`expires_at` is the holder's
 * wall time; a taker adds `clockSkewMs` before trusting it). The holder's own monotonic clock
 * decides how long it may act: it stops touching the published partition `safetyMarginMs` before
 * its lease could expire, counted from the moment it sent its last successful renewal.
 */
import { z } from 'zod';

/** Format tag of the lease document; bump on an incompatible change (older versions then refuse to touch it). */
export const LEASE_FORMAT = 'model-metrics/lease@1';

/** Timing of a lease; every figure in milliseconds. */
export interface LeaseTiming {
  /** How long a lease lasts after its last renewal. */
  ttlMs: number;
  /** How often a working run renews it. */
  renewEveryMs: number;
  /** A holder stops touching the published partition once less than this is left of its lease. */
  safetyMarginMs: number;
  /** How far hosts' wall clocks may disagree: a taker waits this long past `expires_at`. */
  clockSkewMs: number;
}

/** Default lease lifetime: long next to a renewal request, short enough that a crashed run blocks a rerun for about a minute. */
export const DEFAULT_LEASE_TTL_MS = 60_000;

/** Shortest lease accepted: renewals every quarter of it must stay far above one request's latency. */
export const MIN_LEASE_TTL_MS = 4_000;

/**
 * The timing of a lease of `ttlMs`: renewed every quarter of it (three renewals may fail in a row
 * before it lapses), and a holder keeps a quarter as its safety margin for the commit step in flight.
 */
export function leaseTimingOf(ttlMs: number): LeaseTiming {
  if (!Number.isFinite(ttlMs) || ttlMs < MIN_LEASE_TTL_MS) {
    throw new RangeError(`lease TTL must be at least ${MIN_LEASE_TTL_MS} ms, got ${ttlMs}`);
  }
  return {
    ttlMs,
    renewEveryMs: Math.floor(ttlMs / 4),
    safetyMarginMs: Math.floor(ttlMs / 4),
    // NTP keeps hosts within milliseconds; ten seconds covers a host whose sync is failing.
    clockSkewMs: Math.min(10_000, Math.floor(ttlMs / 2)),
  };
}

/** The default timing (60 s lease, renewed every 15 s). */
export const DEFAULT_LEASE_TIMING: LeaseTiming = leaseTimingOf(DEFAULT_LEASE_TTL_MS);

/** Who holds a lease: the host, the process space its pid belongs to, and the pid. */
export interface HolderIdentity {
  host: string;
  /**
   * Hosts and containers whose pids are comparable share this value (Linux: hostname, boot id and
   * pid namespace); only then can a taker tell that a holder's process is gone.
   */
  process_space: string;
  pid: number;
}

/** The lease object: `<dataset>/_staging/stage=…/dt=…/_lease.json`. */
export interface LeaseDocument extends HolderIdentity {
  format: typeof LEASE_FORMAT;
  /** The run's id; its staging folder is `_staging/stage=…/dt=…/<run_id>/`. */
  run_id: string;
  stage: string;
  date: string;
  job_version: string;
  started_at: string;
  renewed_at: string;
  /** Holder's wall clock at renewal + TTL. */
  expires_at: string;
  /** Incremented by every renewal, so each write of the lease has different bytes. */
  renewals: number;
}

const leaseSchema = z
  .object({
    format: z.literal(LEASE_FORMAT),
    run_id: z.string().min(1),
    stage: z.string(),
    date: z.string(),
    host: z.string(),
    process_space: z.string(),
    pid: z.number().int(),
    job_version: z.string(),
    started_at: z.string(),
    renewed_at: z.string(),
    expires_at: z.string().refine((text) => !Number.isNaN(Date.parse(text)), 'an ISO-8601 instant'),
    renewals: z.number().int().nonnegative(),
  })
  .passthrough();

/** What a run writes about itself. */
export interface LeaseClaim {
  runId: string;
  stage: string;
  date: string;
  jobVersion: string;
  holder: HolderIdentity;
  startedAtMs: number;
}

/** The document of `claim` renewed at `nowMs` for the `renewals`-th time (0 for the first write). */
export function leaseDocument(claim: LeaseClaim, nowMs: number, renewals: number, timing: LeaseTiming): LeaseDocument {
  return {
    format: LEASE_FORMAT,
    run_id: claim.runId,
    stage: claim.stage,
    date: claim.date,
    host: claim.holder.host,
    process_space: claim.holder.process_space,
    pid: claim.holder.pid,
    job_version: claim.jobVersion,
    started_at: new Date(claim.startedAtMs).toISOString(),
    renewed_at: new Date(nowMs).toISOString(),
    expires_at: new Date(nowMs + timing.ttlMs).toISOString(),
    renewals,
  };
}

/** The bytes of a lease document (pretty, for people who `cat` it). */
export function serializeLease(document: LeaseDocument): Buffer {
  return Buffer.from(`${JSON.stringify(document, null, 2)}\n`, 'utf8');
}

/** A lease document, or undefined when the bytes are not a lease this version understands. */
export function parseLease(bytes: Uint8Array): LeaseDocument | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  const parsed = leaseSchema.safeParse(json);
  return parsed.success ? (parsed.data as LeaseDocument) : undefined;
}

/** What a run that wants the lease finds. */
export type LeaseVerdict =
  /** Nobody holds it: create it (If-None-Match: *). */
  | { kind: 'free' }
  /** A holder is gone: replace its lease (If-Match on the ETag read). */
  | { kind: 'take_over'; reason: 'expired' | 'holder_exited' }
  /** A live holder: leave, and retry after `retryAfterMs` at the earliest. */
  | { kind: 'held'; holder: LeaseDocument; retryAfterMs: number }
  /** An object this version cannot read (a newer format, or bytes that are no lease): leave it alone. */
  | { kind: 'unreadable' };

/** Whether the holder's pid can be checked from here: same host, same boot, same pid namespace. */
export function sharesProcessSpace(holder: HolderIdentity, self: HolderIdentity): boolean {
  return holder.process_space === self.process_space;
}

/**
 * Decides about the lease found at the key. `holderRunning` is the answer of a liveness probe of
 * the holder's pid, asked only when `sharesProcessSpace`; undefined when not asked. A holder known
 * to have exited (SIGKILL, OOM kill, a crashed host process) is taken over at once; any other holder
 * only once its lease has expired by the taker's clock with the skew allowance.
 */
export function judgeLease(found: { bytes: Uint8Array } | undefined, nowMs: number, timing: LeaseTiming, holderRunning?: boolean): LeaseVerdict {
  if (found === undefined) return { kind: 'free' };
  const holder = parseLease(found.bytes);
  if (holder === undefined) return { kind: 'unreadable' };
  if (holderRunning === false) return { kind: 'take_over', reason: 'holder_exited' };
  const staleAt = Date.parse(holder.expires_at) + timing.clockSkewMs;
  if (nowMs > staleAt) return { kind: 'take_over', reason: 'expired' };
  return { kind: 'held', holder, retryAfterMs: staleAt - nowMs };
}

/**
 * Until when (monotonic ms) a holder may start a step that touches the published partition, given
 * when it sent its last successful renewal: the lease's lifetime minus the safety margin, so the
 * step in flight ends before any taker can consider the lease expired.
 */
export function actDeadline(lastRenewalSentMono: number, timing: LeaseTiming): number {
  return lastRenewalSentMono + timing.ttlMs - timing.safetyMarginMs;
}

/** Whether a holder should renew before a step: less than half its lease is left. */
export function renewalDue(nowMono: number, lastRenewalSentMono: number, timing: LeaseTiming): boolean {
  return nowMono - lastRenewalSentMono >= timing.ttlMs / 2;
}

/** A person's description of a holder, for the "another run holds it" message. */
export function describeHolder(holder: LeaseDocument): string {
  return `run ${holder.run_id} (host ${holder.host}, pid ${holder.pid}, job ${holder.job_version}, started ${holder.started_at}, lease renewed ${holder.renewed_at}, expires ${holder.expires_at})`;
}
