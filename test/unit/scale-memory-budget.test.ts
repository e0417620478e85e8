/**
 * `--memory-budget` (SPEC §9): sizes with units, bad values refused naming the option (E_USAGE,
 * exit 2), the default from a cgroup v2 or v1 memory limit written as the kernel writes it, and the
 * spill decision.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveJobConfig } from '../../src/config/resolve.js';
import { UsageError } from '../../src/errors.js';
import { FALLBACK_MEMORY_BUDGET, MIN_MEMORY_BUDGET, bucketsFor, cgroupMemoryLimit, defaultMemoryBudget, joinStateBytes, parseSize } from '../../src/scale/memory-budget.js';
import { planSpill } from '../../src/scale/grace-join.js';

const folders: string[] = [];
afterAll(async () => {
  await Promise.all(folders.map((f) => rm(f, { recursive: true, force: true })));
});

async function cgroup(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'mm-cgroup-'));
  folders.push(root);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

describe('parseSize', () => {
  it.each([
    ['512MiB', 512 * 2 ** 20],
    ['1GiB', 2 ** 30],
    ['1gib', 2 ** 30],
    ['2G', 2e9],
    ['2GB', 2e9],
    ['1.5GiB', 1.5 * 2 ** 30],
    ['256Mi', 256 * 2 ** 20],
    ['64KiB', 65_536],
    ['1073741824', 1_073_741_824],
    [' 3 MiB ', 3 * 2 ** 20],
    ['1TiB', 2 ** 40],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseSize(text, '--memory-budget')).toBe(bytes);
  });

  it.each(['', 'abc', '-1GiB', '1.5.2G', '10XB', 'GiB', '1 G i B', '0', '1e9', '0x100'])('refuses %j naming the option', (text) => {
    let thrown: unknown;
    try {
      parseSize(text, '--memory-budget', MIN_MEMORY_BUDGET);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(UsageError);
    expect((thrown as UsageError).code).toBe('E_USAGE');
    expect((thrown as UsageError).message).toMatch(/^--memory-budget: /);
    expect((thrown as UsageError).context.option).toBe('--memory-budget');
  });

  it('refuses a size below the minimum, saying the minimum', () => {
    expect(() => parseSize('1KiB', '--memory-budget', MIN_MEMORY_BUDGET)).toThrow(`--memory-budget: "1KiB" is 1024 bytes; expected at least ${MIN_MEMORY_BUDGET}`);
  });
});

describe('the default budget', () => {
  it('is 60% of a cgroup v2 memory.max', async () => {
    const root = await cgroup({ 'memory.max': '4294967296\n' });
    expect(cgroupMemoryLimit(root)).toBe(4 * 2 ** 30);
    expect(defaultMemoryBudget(root)).toBe(Math.floor(4 * 2 ** 30 * 0.6));
  });

  it('is 60% of a cgroup v1 memory.limit_in_bytes', async () => {
    const root = await cgroup({ 'memory/memory.limit_in_bytes': '1073741824\n' });
    expect(defaultMemoryBudget(root)).toBe(Math.floor(2 ** 30 * 0.6));
  });

  it('is 2 GiB without a limit: v2 "max", v1 unlimited (2^63 rounded to a page), or no cgroup files', async () => {
    expect(defaultMemoryBudget(await cgroup({ 'memory.max': 'max\n' }))).toBe(FALLBACK_MEMORY_BUDGET);
    expect(defaultMemoryBudget(await cgroup({ 'memory/memory.limit_in_bytes': '9223372036854771712\n' }))).toBe(FALLBACK_MEMORY_BUDGET);
    expect(defaultMemoryBudget(await cgroup({}))).toBe(FALLBACK_MEMORY_BUDGET);
    expect(FALLBACK_MEMORY_BUDGET).toBe(2 * 2 ** 30);
  });
});

describe('the spill plan', () => {
  it('joins in memory while the estimate fits, else enough buckets that each fills at most 70% of the budget', () => {
    expect(bucketsFor(1000, 1000)).toBe(1);
    expect(bucketsFor(1001, 1000)).toBe(2);
    expect(bucketsFor(10_000, 1000)).toBe(15);
    const plan = planSpill(1_000_000, 2_000_000, 64 * 2 ** 20);
    expect(plan.estimateBytes).toBe(joinStateBytes(1_000_000, 2_000_000));
    expect(plan.buckets).toBe(Math.ceil(plan.estimateBytes / (64 * 2 ** 20 * 0.7)));
  });
});

describe('resolveJobConfig', () => {
  const base = { root: '/data/ml' };
  it('takes --memory-budget and --spill-dir', () => {
    const config = resolveJobConfig({ ...base, 'memory-budget': '1.5GiB', 'spill-dir': 'spill-here' }, {});
    expect(config.memoryBudget).toBe(1.5 * 2 ** 30);
    expect(config.spillDir).toBe(join(process.cwd(), 'spill-here'));
    expect(resolveJobConfig({ ...base, 'spill-dir': 'file:///var/spill' }, {}).spillDir).toBe('/var/spill');
    expect(resolveJobConfig(base, {}).spillDir).toBe(tmpdir());
  });

  it('refuses a bad --memory-budget and an s3:// --spill-dir, naming the option', () => {
    expect(() => resolveJobConfig({ ...base, 'memory-budget': 'lots' }, {})).toThrow(/^--memory-budget: expected a size/);
    expect(() => resolveJobConfig({ ...base, 'spill-dir': 's3://bucket/spill' }, {})).toThrow(/^--spill-dir must be a local folder/);
  });
});
