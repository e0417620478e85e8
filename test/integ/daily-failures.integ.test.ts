/**
 * Failure paths of one day's run, in-process on local folders: a failure between the two commit
 * points, a failure before the commit, a failure moving a file in the middle of the commit (issue 5:
 * never old files beside new ones), an already-done run whose outputs were deleted behind its back,
 * and a preliminary backfill past its as-of.
 */
import { mkdtemp, readFile, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../jobs/main.js';
import { coerceAll, resolveJobConfig } from '../../src/config/resolve.js';
import { optionsOf } from '../../src/config/options.js';
import { generateSample } from '../../src/demo/generate.js';
import { StorageError } from '../../src/errors.js';
import { dayWindow } from '../../src/join/policy.js';
import { silentLogger } from '../../src/observability/log.js';
import { type RunContext, type Stores, runDay } from '../../src/pipeline/daily.js';
import { openStore } from '../../src/storage/index.js';
import type { ObjectStore } from '../../src/storage/types.js';

const DAY = '2026-03-02';
const AS_OF = dayWindow('2026-03-03').startMicros + 6 * 3600e6;
let root: string;

function context(stores?: Partial<Stores>): RunContext {
  const config = resolveJobConfig(coerceAll({ root }, optionsOf('run')), {});
  const opened: Stores = {
    predictions: openStore(config.predictions, {}, '--predictions'),
    labels: openStore(config.labels, {}, '--labels'),
    curated: openStore(config.curated, {}, '--curated'),
    metrics: openStore(config.metrics, {}, '--metrics'),
  };
  return { config, stores: { ...opened, ...stores }, logger: silentLogger(), jobVersion: 'test' };
}

/** A store whose writes of some keys fail, as a store that drops the connection would. */
function failingWrites(store: ObjectStore, fails: string | ((key: string) => boolean)): ObjectStore {
  const failKey = typeof fails === 'string' ? (key: string) => key === fails : fails;
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'write') {
        return async (key: string, ...rest: unknown[]) => {
          if (failKey(key)) throw new StorageError(`injected failure writing ${key}`, { key });
          return (target.write as (...args: unknown[]) => Promise<unknown>).call(target, key, ...rest);
        };
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name));
  } catch {
    return [];
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mm-daily-failures-'));
  const ctx = context();
  await generateSample(ctx.stores.predictions, ctx.stores.labels, { from: DAY, days: 1, predictionsPerDay: 3000, filesPerDay: 3 });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('daily run failure paths', () => {
  it('a failure writing the second _SUCCESS leaves neither _SUCCESS nor any data file', async () => {
    const base = context();
    const metrics = failingWrites(base.stores.metrics, `stage=preliminary/dt=${DAY}/_SUCCESS`);
    await expect(runDay(context({ metrics }), { date: DAY, stage: 'preliminary', asOfMicros: AS_OF })).rejects.toMatchObject({ code: 'E_STORAGE' });
    expect(await filesUnder(join(root, 'curated'))).toEqual([]);
    expect(await filesUnder(join(root, 'metrics'))).toEqual([]);
    // and the next run completes
    const result = await runDay(context(), { date: DAY, stage: 'preliminary', asOfMicros: AS_OF });
    expect(result.status).toBe('done');
  });

  it('a rerun that fails before its commit leaves the published partition exactly as it was', async () => {
    await runDay(context(), { date: DAY, stage: 'preliminary', asOfMicros: AS_OF });
    const published = async () => Promise.all(['curated', 'metrics'].map(async (dataset) => {
      const paths = (await filesUnder(join(root, dataset))).sort();
      return Promise.all(paths.map(async (path) => [path, (await readFile(path)).toString('base64')]));
    }));
    const before = await published();
    expect(before.flat().some(([path]) => path!.endsWith('_SUCCESS'))).toBe(true);
    const base = context();
    const metrics = failingWrites(base.stores.metrics, (key) => key.endsWith('metrics.avro'));
    const forced = context({ metrics });
    forced.config = { ...forced.config, force: true };
    await expect(runDay(forced, { date: DAY, stage: 'preliminary', asOfMicros: AS_OF })).rejects.toMatchObject({ code: 'E_STORAGE' });
    expect(await published()).toEqual(before);
  });

  it('a failure moving a file mid-commit leaves no _SUCCESS and never old files beside new ones; the rerun converges', async () => {
    const OLD_AS_OF = dayWindow(DAY).startMicros + 20 * 3600e6;
    const small = (stores?: Partial<Stores>): RunContext => {
      const ctx = context(stores);
      // Several curated parts from a small day (a part holds at least one 256 KiB block).
      ctx.config = { ...ctx.config, partBytes: 64 * 1024, force: true };
      return ctx;
    };
    const old = await runDay(small(), { date: DAY, stage: 'preliminary', asOfMicros: OLD_AS_OF });
    expect(old.curated_files).toBeGreaterThanOrEqual(2);
    const base = context();
    let moves = 0;
    const curated = new Proxy(base.stores.curated, {
      get(target, property, receiver) {
        if (property === 'move') {
          return async (from: string, to: string) => {
            if (++moves === 2) throw new StorageError(`injected failure moving ${from}`, { key: from });
            return target.move(from, to);
          };
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    await expect(runDay(small({ curated }), { date: DAY, stage: 'preliminary', asOfMicros: AS_OF })).rejects.toMatchObject({ code: 'E_STORAGE' });
    expect(moves).toBe(2);
    // The old result was unpublished and its files removed before any new file moved in; the one
    // new file moved is removed again: the partitions are simply not there.
    expect(await filesUnder(join(root, 'curated', 'stage=preliminary'))).toEqual([]);
    expect(await filesUnder(join(root, 'metrics', 'stage=preliminary'))).toEqual([]);
    expect([...(await filesUnder(join(root, 'curated', '_staging'))), ...(await filesUnder(join(root, 'metrics', '_staging')))]).toEqual([]);
    const rerun = await runDay(small(), { date: DAY, stage: 'preliminary', asOfMicros: AS_OF });
    expect(rerun).toMatchObject({ status: 'done', curated_files: expect.any(Number) });
    const committed = (await filesUnder(join(root, 'curated', 'stage=preliminary'))).map((f) => f.split('/').at(-1)).sort();
    expect(committed).toEqual(['_SUCCESS', ...Array.from({ length: rerun.curated_files }, (_, i) => `part-${String(i).padStart(5, '0')}.avro`)]);
  });

  it('"already done" recomputes when an output listed in the manifest is gone', async () => {
    const first = await runDay(context(), { date: DAY, stage: 'preliminary', asOfMicros: AS_OF });
    expect(['done', 'already_done']).toContain(first.status);
    expect((await runDay(context(), { date: DAY, stage: 'preliminary', asOfMicros: AS_OF })).status).toBe('already_done');
    await unlink(join(root, 'curated', `stage=preliminary/dt=${DAY}/part-00000.avro`));
    const again = await runDay(context(), { date: DAY, stage: 'preliminary', asOfMicros: AS_OF });
    expect(again.status).toBe('done');
    expect((await filesUnder(join(root, 'curated'))).some((f) => f.endsWith('part-00000.avro'))).toBe(true);
  });

  it('a preliminary backfill reaching past --as-of is bad usage (exit 2) before any day runs', async () => {
    const out: string[] = [];
    const code = await main(['backfill', '--root', root, '--from', DAY, '--to', '2026-03-09', '--stage', 'preliminary', '--as-of', '2026-03-05T00:00:00Z', '--json', '--log-level', 'silent'], { stdout: (t) => out.push(t), env: {} });
    expect(code).toBe(2);
    expect(JSON.parse(out.join(''))).toMatchObject({ status: 'failed', code: 'E_USAGE', option: '--to' });
  });
});
