/**
 * The Airflow command module (infra/airflow/model_metrics_commands.py) seen from the tests: Python
 * code run with the module importable, and the daily commands rendered for sample data intervals.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { repoPath } from './infra-helpers.js';

/** The folder of the DAG and its command module. */
export const AIRFLOW = repoPath('infra', 'airflow');
/** The machine's Python (Debian's, as the issue asks). */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** Where KubernetesPodOperator reads XCom; the commands write the summary there. */
export const XCOM_RETURN_FILE = '/airflow/xcom/return.json';

/** Runs Python code with the infra/airflow folder importable; returns stdout parsed as JSON. */
export function python<T>(code: string, input: unknown = null): T {
  const result = spawnSync(PYTHON, ['-c', code, AIRFLOW, JSON.stringify(input)], {
    encoding: 'utf8',
    // No __pycache__ in the repository.
    env: { PATH: process.env.PATH ?? '', PYTHONDONTWRITEBYTECODE: '1' },
  });
  if (result.status !== 0) throw new Error(`${PYTHON} failed (exit ${result.status}): ${result.stderr || result.error?.message}`);
  return JSON.parse(result.stdout) as T;
}

/** Python prelude: the module, and aware datetimes from ISO strings. */
export const PRELUDE = `
import json, sys
from datetime import date, datetime, timedelta, timezone
sys.path.insert(0, sys.argv[1])
import model_metrics_commands as c
request = json.loads(sys.argv[2])
def instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
`;

/** Daily data intervals of the DAG's timetable (06:00 UTC to 06:00 UTC): first day of data, 7 days later (the first final of data), the last final of data. */
export const INTERVALS = [
  ['2026-03-02T06:00:00Z', '2026-03-03T06:00:00Z'],
  ['2026-03-09T06:00:00Z', '2026-03-10T06:00:00Z'],
  ['2026-03-13T06:00:00Z', '2026-03-14T06:00:00Z'],
] as const;

/** The two commands of one daily run. */
export interface Rendered {
  preliminary: string[];
  final: string[];
}

/** The daily commands of every sample interval, for a label window. */
export function renderDaily(labelWindow: string): Rendered[] {
  return python<Rendered[]>(
    `${PRELUDE}
settings = c.CommandSettings(label_window=request["window"])
print(json.dumps([{"preliminary": c.preliminary_args(instant(s), instant(e), settings), "final": c.final_args(instant(e), settings)} for s, e in request["intervals"]]))`,
    { window: labelWindow, intervals: INTERVALS },
  );
}

/** The commands of one stage of the sharded daily DAG: one per shard for partition and join, then commit. */
export interface ShardedPlan {
  partition: string[][];
  join: string[][];
  commit: string[];
}

/** The sharded DAG's commands of both stages for one sample data interval and K shards. */
export function renderSharded(interval: readonly [string, string], shards: number): Record<'preliminary' | 'final', ShardedPlan> {
  return python(
    `${PRELUDE}
start, end = instant(request["interval"][0]), instant(request["interval"][1])
print(json.dumps({stage: c.sharded_plan(stage, start, end, request["shards"]) for stage in ("preliminary", "final")}))`,
    { interval, shards },
  );
}
