/**
 * The run lease policy (issue 5) without I/O: the document, expiry with the clock-skew allowance,
 * takeover of an exited holder, the holder's act deadline and renewal schedule, and the keys.
 */
import { describe, expect, it } from 'vitest';
import { leaseKey, runStagingPrefix, stagingPartition } from '../../src/dataset/layout.js';
import {
  DEFAULT_LEASE_TIMING,
  LEASE_FORMAT,
  type LeaseClaim,
  actDeadline,
  describeHolder,
  judgeLease,
  leaseDocument,
  leaseTimingOf,
  parseLease,
  renewalDue,
  serializeLease,
  sharesProcessSpace,
} from '../../src/pipeline/lease-policy.js';

const T0 = Date.parse('2026-03-03T06:00:00Z');
const timing = leaseTimingOf(60_000);
const claim: LeaseClaim = {
  runId: '0b9a4a3e-6f6d-4a53-9a8e-5f1b2c3d4e5f',
  stage: 'preliminary',
  date: '2026-03-02',
  jobVersion: '1.2.3',
  holder: { host: 'worker-7', process_space: 'worker-7/boot-1/pid:[4026531836]', pid: 4242 },
  startedAtMs: T0 - 5_000,
};
const leaseBytes = (renewedAtMs: number, renewals = 0): Buffer => serializeLease(leaseDocument(claim, renewedAtMs, renewals, timing));

describe('lease timing', () => {
  it('renews every quarter of the TTL and keeps a quarter as the safety margin', () => {
    expect(leaseTimingOf(60_000)).toEqual({ ttlMs: 60_000, renewEveryMs: 15_000, safetyMarginMs: 15_000, clockSkewMs: 10_000 });
    expect(DEFAULT_LEASE_TIMING.ttlMs).toBe(60_000);
  });

  it('caps the clock-skew allowance at half a short lease', () => {
    expect(leaseTimingOf(8_000).clockSkewMs).toBe(4_000);
  });

  it('refuses a TTL too short for renewals to keep up', () => {
    expect(() => leaseTimingOf(1_000)).toThrow(/at least 4000 ms/);
    expect(() => leaseTimingOf(Number.NaN)).toThrow(RangeError);
  });
});

describe('lease document', () => {
  it('holds the run, the holder and an expiry one TTL after the renewal', () => {
    const doc = leaseDocument(claim, T0, 3, timing);
    expect(doc).toEqual({
      format: LEASE_FORMAT,
      run_id: claim.runId,
      stage: 'preliminary',
      date: '2026-03-02',
      host: 'worker-7',
      process_space: claim.holder.process_space,
      pid: 4242,
      job_version: '1.2.3',
      started_at: '2026-03-03T05:59:55.000Z',
      renewed_at: '2026-03-03T06:00:00.000Z',
      expires_at: '2026-03-03T06:01:00.000Z',
      renewals: 3,
    });
    expect(parseLease(serializeLease(doc))).toEqual(doc);
  });

  it('gives every renewal different bytes, even within one millisecond', () => {
    expect(leaseBytes(T0, 1).equals(leaseBytes(T0, 2))).toBe(false);
  });

  it('reads nothing that is not a lease of this format', () => {
    expect(parseLease(Buffer.from(''))).toBeUndefined();
    expect(parseLease(Buffer.from('{"format":"model-metrics/lease@2","run_id":"x"}'))).toBeUndefined();
    const doc = leaseDocument(claim, T0, 0, timing);
    expect(parseLease(Buffer.from(JSON.stringify({ ...doc, expires_at: 'soon' })))).toBeUndefined();
    expect(parseLease(Buffer.from(JSON.stringify({ ...doc, pid: 'one' })))).toBeUndefined();
  });

  it('describes the holder for the "another run holds it" message', () => {
    expect(describeHolder(leaseDocument(claim, T0, 0, timing))).toBe(
      `run ${claim.runId} (host worker-7, pid 4242, job 1.2.3, started 2026-03-03T05:59:55.000Z, lease renewed 2026-03-03T06:00:00.000Z, expires 2026-03-03T06:01:00.000Z)`,
    );
  });
});

describe('judgeLease', () => {
  it('finds a missing lease free', () => {
    expect(judgeLease(undefined, T0, timing)).toEqual({ kind: 'free' });
  });

  it('leaves a live holder alone until its expiry plus the clock-skew allowance', () => {
    const bytes = leaseBytes(T0);
    const held = judgeLease({ bytes }, T0 + 30_000, timing);
    expect(held).toMatchObject({ kind: 'held', retryAfterMs: 40_000, holder: { run_id: claim.runId } });
    // Past expires_at but within the skew allowance: the holder's clock may be behind ours.
    expect(judgeLease({ bytes }, T0 + 65_000, timing)).toMatchObject({ kind: 'held', retryAfterMs: 5_000 });
    expect(judgeLease({ bytes }, T0 + 70_000, timing)).toMatchObject({ kind: 'held', retryAfterMs: 0 });
    expect(judgeLease({ bytes }, T0 + 70_001, timing)).toEqual({ kind: 'take_over', reason: 'expired' });
  });

  it('takes over at once from a holder known to have exited, and never from one known to run', () => {
    const bytes = leaseBytes(T0);
    expect(judgeLease({ bytes }, T0 + 1, timing, false)).toEqual({ kind: 'take_over', reason: 'holder_exited' });
    expect(judgeLease({ bytes }, T0 + 1, timing, true)).toMatchObject({ kind: 'held' });
    // A running holder whose lease lapsed (paused, or cut off from the store) is taken over all the same.
    expect(judgeLease({ bytes }, T0 + 70_001, timing, true)).toEqual({ kind: 'take_over', reason: 'expired' });
  });

  it('refuses to judge a lease it cannot read', () => {
    expect(judgeLease({ bytes: Buffer.from('{"format":"model-metrics/lease@9"}') }, T0, timing, false)).toEqual({ kind: 'unreadable' });
    expect(judgeLease({ bytes: Buffer.from('garbage') }, T0 + 1e9, timing)).toEqual({ kind: 'unreadable' });
  });

  it('judges pids only within one process space', () => {
    const self = { host: 'worker-7', process_space: claim.holder.process_space, pid: 1 };
    expect(sharesProcessSpace(claim.holder, self)).toBe(true);
    // Same host name, another pid namespace (a second container): its pids say nothing about ours.
    expect(sharesProcessSpace(claim.holder, { ...self, process_space: 'worker-7/boot-1/pid:[4026532001]' })).toBe(false);
  });
});

describe("the holder's clock", () => {
  it('acts until a safety margin before the lease could expire', () => {
    expect(actDeadline(1_000, timing)).toBe(1_000 + 60_000 - 15_000);
  });

  it('leaves a step started at the act deadline at least a second before the earliest takeover', () => {
    for (const ttl of [4_000, 60_000, 600_000]) {
      const t = leaseTimingOf(ttl);
      const sent = 1_000;
      // expires_at is at most sent + TTL on the holder's clock; a taker whose clock runs ahead by the
      // whole allowance acts when its clock passes expires_at + skew, i.e. at real time sent + TTL.
      const takerAhead = t.clockSkewMs;
      const earliestTakeover = sent + t.ttlMs + t.clockSkewMs - takerAhead;
      expect(earliestTakeover - actDeadline(sent, t)).toBeGreaterThanOrEqual(1_000);
    }
  });

  it('renews before a step once half the lease is gone', () => {
    expect(renewalDue(29_999, 0, timing)).toBe(false);
    expect(renewalDue(30_000, 0, timing)).toBe(true);
  });
});

describe('staging layout', () => {
  it('keeps leases and staged files under the hidden staging area of the partition', () => {
    expect(stagingPartition('final', '2026-03-02')).toBe('_staging/stage=final/dt=2026-03-02/');
    expect(leaseKey('final', '2026-03-02')).toBe('_staging/stage=final/dt=2026-03-02/_lease.json');
    expect(runStagingPrefix('preliminary', '2026-03-02', 'run-1')).toBe('_staging/stage=preliminary/dt=2026-03-02/run-1/');
  });
});
