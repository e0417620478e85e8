/**
 * The run lease (issue 5): one small object per output dataset and (stage, date), at
 * `<dataset>/_staging/stage=…/dt=…/_lease.json`, so two runs of the same day and stage (a CronJob
 * that fires twice, an Airflow retry beside a zombie) cannot both work on its partitions. The first
 * creates it with `If-None-Match: *`; the other finds a live holder and leaves with
 * RunInProgressError before it reads any input object. The holder renews it with `If-Match` while it works
 * and right before its commit, and checks before every step of the commit that its lease cannot
 * have expired meanwhile, so a run that was paused for longer than the lease (and lost it to
 * another run) stops without touching the published partition. A crashed run's lease is taken over
 * at once when its process is known to have exited (same host), otherwise once it has expired.
 *
 * On a store that ignores the conditions (s3rver, older MinIO), two runs that start within one round
 * trip can both create the lease: the last write wins, and each run reads the lease back after
 * writing it. A run that still believes it holds a lease it lost finds out at its next renewal,
 * which always comes before its commit (renewals compare the ETag first, ObjectStore.writeConditional),
 * so it stops before touching the published partition. The policy lives in lease-policy.ts.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname, platform } from 'node:os';
import { performance } from 'node:perf_hooks';
import { type ErrorContext, ModelMetricsError } from '../errors.js';
import type { Logger } from '../observability/log.js';
import { sanitizeForLog } from '../observability/log.js';
import type { ObjectStore, WriteResult } from '../storage/types.js';
import {
  type HolderIdentity,
  type LeaseClaim,
  type LeaseDocument,
  type LeaseTiming,
  actDeadline,
  describeHolder,
  judgeLease,
  leaseDocument,
  parseLease,
  renewalDue,
  serializeLease,
  sharesProcessSpace,
} from './lease-policy.js';

/**
 * Another run holds the lease of this (stage, date): this run did nothing. It is not a failure of
 * the data or the job; retrying once the other run is over gives "already done" or a fresh result.
 */
export class RunInProgressError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext) {
    super('E_RUN_IN_PROGRESS', message, { reason: 'run_in_progress', ...context });
  }
}

/**
 * This run lost its lease (another run took it over after it expired, or renewals failed for too
 * long): it stopped before touching the published partition, which now belongs to the other run.
 */
export class LeaseLostError extends ModelMetricsError {
  constructor(message: string, context: ErrorContext) {
    super('E_CONCURRENT_CHANGE', message, { reason: 'lease_lost', ...context });
  }
}

/** Attempts to create or take over a lease that keeps changing under us before giving up. */
const ACQUIRE_ATTEMPTS = 4;

/** A lease is a few hundred bytes; anything longer than this is not one of ours. */
const MAX_LEASE_BYTES = 64 * 1024;

/** The lease on one store. */
interface Slot {
  store: ObjectStore;
  /** ETag of the lease version we wrote last. */
  etag: string;
}

/** What acquiring needs. */
export interface LeaseOptions {
  /** The output stores whose partitions the run will change (the same store once, if repeated). */
  stores: readonly ObjectStore[];
  /** The lease key, the same on every store (layout.ts `leaseKey`). */
  key: string;
  claim: LeaseClaim;
  timing: LeaseTiming;
  logger: Logger;
}

/** A held lease: renewed in the background, checked before each commit step, released at the end. */
export class RunLease {
  private readonly slots: Slot[] = [];
  private writes = 0;
  private lastRenewalSentMono = 0;
  private lost: ModelMetricsError | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Renewals run one at a time: the background heartbeat and `renew()` before the commit. */
  private chain: Promise<void> = Promise.resolve();
  private released = false;

  private constructor(private readonly options: LeaseOptions) {}

  /**
   * Takes the lease on every store (in the order given) or throws RunInProgressError, having
   * released what it took. Logs `lease_acquired`, and `lease_taken_over` for a crashed holder.
   */
  static async acquire(options: LeaseOptions): Promise<RunLease> {
    const lease = new RunLease(options);
    const seen = new Set<string>();
    try {
      for (const store of options.stores) {
        const uri = store.uriOf(options.key);
        if (seen.has(uri)) continue;
        seen.add(uri);
        lease.slots.push(await lease.acquireOn(store));
      }
    } catch (error) {
      await lease.release();
      throw error;
    }
    options.logger.info(
      {
        event: 'lease_acquired',
        lease_run_id: options.claim.runId,
        leases: lease.slots.map((s) => s.store.uriOf(options.key)),
        ttl_s: options.timing.ttlMs / 1000,
      },
      'run lease acquired',
    );
    lease.heartbeat = setInterval(() => lease.renewInBackground(), options.timing.renewEveryMs);
    lease.heartbeat.unref();
    return lease;
  }

  /** Renews on every store now (before the commit): throws LeaseLostError if another run took it over. */
  async renew(): Promise<void> {
    const next = this.chain.then(() => this.renewOnce());
    this.chain = next.catch(() => undefined);
    await next;
  }

  /**
   * Throws unless this run may touch the published partition now: the lease is still ours and
   * cannot expire before the step that follows is over (lease-policy `actDeadline`).
   */
  assertHeld(): void {
    if (this.lost !== undefined) throw this.lost;
    const now = performance.now();
    if (now > actDeadline(this.lastRenewalSentMono, this.options.timing)) {
      const since = ((now - this.lastRenewalSentMono) / 1000).toFixed(1);
      this.lost = new LeaseLostError(
        `run ${this.options.claim.runId} could not renew its lease on ${this.describeKey()} for ${since} s (store errors, or the process was paused); it stops before touching the published partition, since another run may take over; rerun to complete the work`,
        { key: this.options.key, run_id: this.options.claim.runId, seconds_since_renewal: Number(since) },
      );
      throw this.lost;
    }
  }

  /**
   * Before a step of the commit: renews first when half the lease is gone (a long commit of many
   * files keeps its lease fresh), then throws unless the lease is held (`assertHeld`).
   */
  async ensureHeld(): Promise<void> {
    if (this.lost === undefined && renewalDue(performance.now(), this.lastRenewalSentMono, this.options.timing)) await this.renew();
    this.assertHeld();
  }

  /** Whether the lease is still ours and in time (for cleanup decisions; never throws). */
  isHeld(): boolean {
    try {
      this.assertHeld();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stops renewing and deletes the lease where it is still the version we wrote. A lease that was
   * lost, or is too close to expiry to delete safely, is left to expire. Never throws.
   */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    await this.chain;
    const { key, logger } = this.options;
    if (this.slots.length === 0) return;
    if (!this.isHeld()) {
      logger.warn({ event: 'lease_left_to_expire', key, lease_run_id: this.options.claim.runId }, 'lease not released (lost or not renewed in time); it expires on its own');
      return;
    }
    for (const slot of [...this.slots].reverse()) {
      try {
        // Still the version we wrote? Then no one took it over, and no one can before it is deleted:
        // a taker waits for the expiry, which is further away than the act deadline just checked.
        if ((await readVersion(slot.store, key, slot.etag)) !== undefined) await slot.store.delete([key]);
      } catch (error) {
        logger.warn({ event: 'lease_release_failed', uri: slot.store.uriOf(key), error: sanitizeForLog(String(error)) }, 'could not delete the run lease; it expires on its own');
      }
    }
    logger.info({ event: 'lease_released', lease_run_id: this.options.claim.runId }, 'run lease released');
  }

  private async acquireOn(store: ObjectStore): Promise<Slot> {
    const { key, timing, logger } = this.options;
    for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
      const info = await store.head(key);
      let written: WriteResult | undefined;
      let body: Buffer;
      const sentMono = performance.now();
      if (info === undefined) {
        body = this.nextBody();
        written = await store.writeConditional(key, body, { ifNoneMatch: '*' });
      } else {
        const bytes = await readVersion(store, key, info.etag);
        if (bytes === undefined) continue; // changed or gone between head and read: look again
        const found = parseLease(bytes);
        const running = found !== undefined && sharesProcessSpace(found, thisProcess()) ? processRunning(found.pid) : undefined;
        const verdict = judgeLease({ bytes }, Date.now(), timing, running);
        if (verdict.kind === 'held') throw this.heldError(store, verdict.holder, verdict.retryAfterMs);
        if (verdict.kind === 'unreadable') {
          throw new RunInProgressError(
            `${store.uriOf(key)} is not a run lease this version can read (another run writing it right now, or a newer version of the job holds it); this run did nothing; retry later, or delete it if no run of this stage and date is active`,
            { uri: store.uriOf(key), key },
          );
        }
        if (verdict.kind === 'take_over') {
          logger.warn(
            { event: 'lease_taken_over', uri: store.uriOf(key), reason: verdict.reason, previous_run_id: found?.run_id, previous_host: found?.host, previous_pid: found?.pid, previous_expires_at: found?.expires_at },
            `taking over the lease of ${found === undefined ? 'a previous run' : describeHolder(found)}: ${verdict.reason === 'holder_exited' ? 'its process has exited' : 'it has expired'}`,
          );
        }
        body = this.nextBody();
        written = await store.writeConditional(key, body, { ifMatch: info.etag });
      }
      if (written === undefined) continue; // another run wrote first: judge its lease
      const slot = await this.confirm(store, written, body);
      if (slot === undefined) continue;
      if (this.slots.length === 0) this.lastRenewalSentMono = sentMono;
      return slot;
    }
    const holder = await readLease(store, key);
    throw holder === undefined
      ? new RunInProgressError(`the run lease ${store.uriOf(key)} kept changing while this run tried to take it; another run is starting; this run did nothing`, { uri: store.uriOf(key), key })
      : this.heldError(store, holder, Math.max(0, Date.parse(holder.expires_at) + timing.clockSkewMs - Date.now()));
  }

  /**
   * After a successful conditional write, reads the lease back and compares the bytes: on a store
   * that ignores the conditions, a rival's later write wins silently, and this is where we see it.
   * Undefined when the lease is not ours after all.
   */
  private async confirm(store: ObjectStore, written: WriteResult, body: Buffer): Promise<Slot | undefined> {
    // A store that enforces the conditions let only this write through: nothing to read back.
    if (store.capabilities.conditionalWrites) return { store, etag: written.etag };
    const back = await readVersion(store, this.options.key, written.etag);
    return back !== undefined && Buffer.from(back).equals(body) ? { store, etag: written.etag } : undefined;
  }

  private async renewOnce(): Promise<void> {
    if (this.lost !== undefined) throw this.lost;
    const { key } = this.options;
    const sentMono = performance.now();
    for (const slot of this.slots) {
      const written = await slot.store.writeConditional(key, this.nextBody(), { ifMatch: slot.etag });
      if (written === undefined) throw await this.markLost(slot);
      slot.etag = written.etag;
    }
    this.lastRenewalSentMono = sentMono;
  }

  private renewInBackground(): void {
    if (this.released || this.lost !== undefined) return;
    this.renew().catch((error: unknown) => {
      const { logger } = this.options;
      if (error instanceof LeaseLostError) logger.error({ event: 'lease_lost', ...error.toJSON() }, error.message);
      else logger.warn({ event: 'lease_renewal_failed', error: sanitizeForLog(String(error)) }, 'could not renew the run lease; retrying at the next renewal');
    });
  }

  private async markLost(slot: Slot): Promise<LeaseLostError> {
    const { key, claim } = this.options;
    const holder = await readLease(slot.store, key).catch(() => undefined);
    this.lost = new LeaseLostError(
      `run ${claim.runId} lost its lease on ${slot.store.uriOf(key)} to ${holder === undefined ? 'another run' : describeHolder(holder)} (this run was paused past its lease, or the store ignores conditional writes and both runs started together); it commits nothing and leaves the partition to that run`,
      { uri: slot.store.uriOf(key), key, run_id: claim.runId, ...(holder === undefined ? {} : { holder_run_id: holder.run_id, holder_host: holder.host, holder_pid: holder.pid }) },
    );
    return this.lost;
  }

  private heldError(store: ObjectStore, holder: LeaseDocument, retryAfterMs: number): RunInProgressError {
    const { claim, key } = this.options;
    const retryAt = new Date(Date.now() + retryAfterMs).toISOString();
    return new RunInProgressError(
      `another run is computing ${claim.stage} ${claim.date}: ${describeHolder(holder)} holds ${store.uriOf(key)}; this run did nothing. Let that run finish (a rerun is then "already done"), or retry after ${retryAt} if it has died`,
      { uri: store.uriOf(key), key, holder_run_id: holder.run_id, holder_host: holder.host, holder_pid: holder.pid, holder_expires_at: holder.expires_at, retry_after_s: Math.ceil(retryAfterMs / 1000) },
    );
  }

  private describeKey(): string {
    return this.slots.map((s) => s.store.uriOf(this.options.key)).join(' and ');
  }

  /** The next version of our lease document; every write has different bytes (`renewals`). */
  private nextBody(): Buffer {
    return serializeLease(leaseDocument(this.options.claim, Date.now(), this.writes++, this.options.timing));
  }
}

/** The object's bytes if it still has ETag `etag` (capped at MAX_LEASE_BYTES); undefined when it changed or is gone. */
async function readVersion(store: ObjectStore, key: string, etag: string): Promise<Buffer | undefined> {
  try {
    const stream = await store.read(key, { ifMatch: etag });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size > MAX_LEASE_BYTES) {
        stream.destroy();
        break;
      }
    }
    return Buffer.concat(chunks);
  } catch (error) {
    if (error instanceof ModelMetricsError && (error.code === 'E_CONCURRENT_CHANGE' || error.code === 'E_NOT_FOUND')) return undefined;
    throw error;
  }
}

/** The lease at `key`, if there is one this version can read. */
async function readLease(store: ObjectStore, key: string): Promise<LeaseDocument | undefined> {
  const bytes = await store.readSmall(key);
  return bytes === undefined ? undefined : parseLease(bytes);
}

let identity: HolderIdentity | undefined;

/** This process as a lease holder. */
export function thisProcess(): HolderIdentity {
  identity ??= { host: hostname(), process_space: processSpace(), pid: process.pid };
  return identity;
}

/**
 * Where pids are comparable. Linux: the host name, the boot id and the pid namespace, so two
 * containers that share a host name (or a pod's) but not a pid namespace never judge each other's
 * pids. Where that cannot be read on Linux, a value no one else has (no pid is ever judged).
 * Elsewhere (macOS, Windows) there are no pid namespaces, and the host name is enough.
 */
function processSpace(): string {
  const host = hostname();
  if (platform() !== 'linux') return host;
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return `${host}/${boot}/${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    return `${host}/unknown/${randomUUID()}`;
  }
}

/**
 * Whether a process of this process space runs with `pid`: kill(pid, 0) tells whether it exists
 * (EPERM: it does, owned by another user); on Linux an exited process not yet reaped by its parent
 * (state Z in /proc/<pid>/stat) counts as exited.
 */
export function processRunning(pid: number): boolean {
  // 0 and negative "pids" name process groups for kill(2): not a holder we can judge.
  if (!Number.isSafeInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (platform() !== 'linux') return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}
