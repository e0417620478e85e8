/**
 * "Loading the data" (README): examples/load_metrics.py, shown verbatim in the README, run with
 * Debian's /usr/bin/python3 (python3-avro, python3-pandas) against the curated and metrics datasets a
 * real job wrote. Its numbers must be the job's: rows per partition as the _SUCCESS manifests count
 * them, valid predictions per day as the metrics count them, and MSE/MAE roll-ups as `report` computes
 * them. Skipped outside CI when the Python packages are missing (.ci/run installs them).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays } from '../../src/calendar.js';
import { generateSample } from '../../src/demo/generate.js';
import type { Report } from '../../src/report/build.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { REPO_ROOT, runCli, tempDirectory } from '../helpers/cli.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(REPO_ROOT, 'examples', 'load_metrics.py');
const hasPandasAvro = spawnSync(PYTHON, ['-c', 'import avro, pandas'], { stdio: 'ignore' }).status === 0;
const inCi = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';

const FROM = '2026-02-02';
const DAYS = 3;
const TO = addDays(FROM, DAYS - 1);

/** What the Python side computed from the datasets. */
interface PythonView {
  partitions: Array<{ dataset: string; stage: string; dt: string; rows: number }>;
  valid: Array<{ model_name: string; model_version: string; stage: string; dt: string; rows: number }>;
  rollup: Array<{ model_name: string; model_version: string; stage: string; days: number; count: number; labeled: number; mse: number; mae: number }>;
}

/** Loads both datasets with the example's functions and prints what the test compares, as JSON. */
const PROBE = `
import json, sys
import numpy as np
sys.path.insert(0, ${JSON.stringify(path.dirname(SCRIPT))})
from load_metrics import load_dataset, rollup
root = sys.argv[1]
out = {"partitions": [], "valid": []}
for dataset in ("curated", "metrics"):
    frame = load_dataset(f"{root}/{dataset}")
    for (stage, dt), rows in frame.groupby(["stage", "dt"]).size().items():
        out["partitions"].append({"dataset": dataset, "stage": stage, "dt": dt, "rows": int(rows)})
    if dataset == "curated":
        valid = frame[np.isfinite(frame["y_pred"])].groupby(["model_name", "model_version", "stage", "dt"]).size()
        out["valid"] = [{"model_name": k[0], "model_version": k[1], "stage": k[2], "dt": k[3], "rows": int(v)} for k, v in valid.items()]
    else:
        out["rollup"] = json.loads(rollup(frame).to_json(orient="records"))
print(json.dumps(out))
`;

describe.skipIf(!hasPandasAvro && !inCi)(`the pandas loader (examples/load_metrics.py)${hasPandasAvro || inCi ? '' : ` (skipped: ${PYTHON} lacks avro or pandas; apt-get install python3-avro python3-pandas, as .ci/run does)`}`, { timeout: 180_000 }, () => {
  let dir: { path: string; remove: () => Promise<void> };
  let report: Report;
  let view: PythonView;

  beforeAll(async () => {
    if (!hasPandasAvro) throw new Error(`${PYTHON} cannot import avro and pandas in CI: .ci/run installs python3-avro and python3-pandas`);
    dir = await tempDirectory('load-snippets');
    const root = dir.path;
    await generateSample(new LocalObjectStore(path.join(root, 'predictions')), new LocalObjectStore(path.join(root, 'labels')), { from: FROM, days: DAYS, predictionsPerDay: 1500, filesPerDay: 3, seed: 3 });
    for (const stage of ['final', 'preliminary']) {
      const asOf = stage === 'preliminary' ? ['--as-of', `${addDays(TO, 1)}T06:00:00Z`] : [];
      const run = await runCli(['backfill', '--root', root, '--from', FROM, '--to', TO, '--stage', stage, ...asOf, '--json'], {});
      expect(run.code, run.stderr).toBe(0);
    }
    const json = await runCli(['report', '--root', root, '--from', FROM, '--to', TO, '--stage', 'both', '--format', 'json'], {});
    expect(json.code, json.stderr).toBe(0);
    report = JSON.parse(json.stdout) as Report;
    const probe = spawnSync(PYTHON, ['-c', PROBE, root], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(probe.stderr).toBe('');
    expect(probe.status).toBe(0);
    view = JSON.parse(probe.stdout) as PythonView;
  });
  afterAll(async () => {
    await dir?.remove();
  });

  it('reads every committed partition whole: rows as the _SUCCESS manifests count them', () => {
    expect(view.partitions).toHaveLength(2 * 2 * DAYS);
    for (const p of view.partitions) {
      const manifest = JSON.parse(fs.readFileSync(path.join(dir.path, p.dataset, `stage=${p.stage}`, `dt=${p.dt}`, '_SUCCESS'), 'utf8')) as { outputs: Array<{ records: number }> };
      expect(p.rows, `${p.dataset} ${p.stage} ${p.dt}`).toBe(manifest.outputs.reduce((a, o) => a + o.records, 0));
    }
  });

  it('counts the valid curated predictions of each day as the job counted them', () => {
    const days = report.rows.filter((r) => r.kind === 'window' && r.slice === 'all');
    expect(view.valid).toHaveLength(days.length);
    for (const v of view.valid) {
      const row = days.find((r) => r.model === v.model_name && r.version === v.model_version && r.stage === v.stage && r.window === v.dt)!;
      expect(v.rows, `${v.model_name}@${v.model_version} ${v.stage} ${v.dt}`).toBe(row.count);
    }
  });

  it("rolls MSE and MAE up from the sums as the report does", () => {
    const totals = report.rows.filter((r) => r.kind === 'range' && r.slice === 'all');
    expect(view.rollup).toHaveLength(totals.length);
    expect(totals.length).toBeGreaterThanOrEqual(4);
    for (const p of view.rollup) {
      const row = totals.find((r) => r.model === p.model_name && r.version === p.model_version && r.stage === p.stage)!;
      expect([p.days, p.count, p.labeled]).toEqual([row.days, row.count, row.labeled]);
      expect(Math.abs(p.mse - row.mse!) / row.mse!).toBeLessThan(1e-9);
      expect(Math.abs(p.mae - row.mae!) / row.mae!).toBeLessThan(1e-9);
    }
  });

  it('runs as a script and prints the same roll-up', () => {
    const run = spawnSync(PYTHON, [SCRIPT, dir.path], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const curatedRows = view.partitions.filter((p) => p.dataset === 'curated').reduce((a, p) => a + p.rows, 0);
    const metricsRecords = view.partitions.filter((p) => p.dataset === 'metrics').reduce((a, p) => a + p.rows, 0);
    expect(run.stdout.split('\n')[0]).toBe(`curated: ${curatedRows} rows; metrics: ${metricsRecords} records`);
    for (const p of view.rollup) expect(run.stdout).toMatch(new RegExp(`${p.model_name}\\s+${p.model_version}\\s+${p.stage}\\s+${p.days}\\s+${p.count}\\s+${p.labeled}\\s`));
  });
});

describe('README "Loading the data"', () => {
  it('shows examples/load_metrics.py verbatim', () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    expect(readme).toContain(`\`\`\`python\n${fs.readFileSync(SCRIPT, 'utf8')}\`\`\``);
  });
});
