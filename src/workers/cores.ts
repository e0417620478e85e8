/** The cores available to this process: the CPU affinity, capped by a cgroup (v2 or v1) CPU quota. */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** ceil(quota / period) of the process's cgroup, or undefined without a quota. */
function cgroupCpuLimit(): number | undefined {
  const v2 = read('/sys/fs/cgroup/cpu.max')?.split(/\s+/);
  if (v2 !== undefined && v2[0] !== 'max' && v2.length === 2) {
    const quota = Number(v2[0]);
    const period = Number(v2[1]);
    if (quota > 0 && period > 0) return Math.ceil(quota / period);
  }
  const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  if (quota > 0 && period > 0) return Math.ceil(quota / period);
  return undefined;
}

/** At least 1. */
export function availableCores(): number {
  const affinity = availableParallelism();
  const limit = cgroupCpuLimit();
  return Math.max(1, limit === undefined ? affinity : Math.min(affinity, limit));
}
