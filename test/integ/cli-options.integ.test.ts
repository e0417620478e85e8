/**
 * The command surface of issue 10, through the real CLI on a local root: each command takes only
 * its own options from flags, environment and config file; a missing predictions partition is
 * not ready; a future --as-of is refused; bad values name their source; failures end with one
 * plain sentence.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { predictionType } from '../../src/avro/schemas.js';
import type { PredictionRecord } from '../../src/join/records.js';
import type { DayOutcome } from '../../src/pipeline/outcome.js';
import { type CliResult, avroFile, describeRun, localRoot, micros, runCli, tempDirectory } from '../helpers/cli.js';

const DAY = '2026-03-02';
const AS_OF = '2026-03-03T06:00:00Z';
const BASE_ENV = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

let dir: { path: string; remove: () => Promise<void> };
let rootArgs: string[];

function cli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { ...BASE_ENV, ...env });
}

function prediction(id: string): PredictionRecord {
  return { prediction_id: id, model_name: 'm', model_version: 'v1', feature_set_version: 'f', y_pred: 1, y_true: null, residual: null, inference_ts: micros(`${DAY}T12:00:00Z`), segment_keys: {} };
}

/** Exit code, stdout empty, and the failure's last line: one plain sentence. */
function expectUsageFailure(result: CliResult, pattern: RegExp): void {
  expect(result.code, describeRun(result)).toBe(2);
  expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
  expect(result.finalLine, describeRun(result)).toMatch(/^model-metrics: error: /);
  expect(result.finalLine).toMatch(pattern);
  expect(result.lastError()).toMatchObject({ event: 'command_failed', code: expect.stringMatching(/^E_(USAGE|CONFIG)$/) });
}

beforeAll(async () => {
  dir = await tempDirectory('options');
  const root = localRoot(join(dir.path, 'root'));
  rootArgs = root.args;
  await root.store('predictions').write(`dt=${DAY}/part-0.avro`, avroFile(predictionType, [prediction('a'), prediction('b')]));
  // An existing partition with a header-only file: a real, empty day.
  await root.store('predictions').write('dt=2026-03-03/part-0.avro', avroFile(predictionType, []));
  await mkdir(join(dir.path, 'cfg'), { recursive: true });
});

afterAll(async () => {
  await dir?.remove();
});

describe('each command takes only its own options', () => {
  it('report --help lists no computing option; run --help marks the required ones', async () => {
    const report = await cli(['report', '--help']);
    expect(report.code).toBe(0);
    for (const absent of ['--codec', '--force', '--lease-ttl', '--on-corrupt', '--avro-max-block-mb', '--predictions', '--label-window']) expect(report.stdout).not.toContain(absent);
    expect(report.stdout).toContain('--metrics');
    const run = await cli(['run', '--help']);
    expect(run.stdout).toMatch(/--date <YYYY-MM-DD>\s+the UTC day to compute \(required\)/);
    expect(run.stdout).toMatch(/--stage <STAGE>[^[]*\(required\)/);
    const demo = await cli(['demo', '--help']);
    expect(demo.stdout).not.toContain('--root');
  });

  it('refuses another command\'s option as a flag, a variable and a section key, naming the command', async () => {
    const range = ['--from', DAY, '--to', DAY, ...rootArgs];
    expectUsageFailure(await cli(['report', ...range, '--codec', 'deflate']), /report does not use --codec \(an option of run, backfill, scheduled\)/);
    expectUsageFailure(await cli(['report', ...range], { MODEL_METRICS_CODEC: 'deflate' }), /MODEL_METRICS_CODEC is set, but report does not use --codec/);
    const file = join(dir.path, 'cfg', 'section.yaml');
    await writeFile(file, 'codec: deflate\nreport:\n  force: true\n');
    expectUsageFailure(await cli(['report', ...range, '--config', file]), /section\.yaml line 3\): section "report" sets "force", which report does not use/);
  });

  it('shares top-level config keys: those of other commands are ignored, the command\'s own section wins', async () => {
    const file = join(dir.path, 'cfg', 'shared.yaml');
    await writeFile(file, `codec: snappy\nlease-ttl: 30\nstage: preliminary\nreport:\n  format: csv\n`);
    const run = await cli(['run', '--date', DAY, '--as-of', AS_OF, '--config', file, '--json', ...rootArgs]);
    expect(run.code, describeRun(run)).toBe(0);
    const report = await cli(['report', '--from', DAY, '--to', DAY, '--stage', 'preliminary', '--config', file, ...rootArgs]);
    expect(report.code, describeRun(report)).toBe(0);
    // csv from the report section, not the default table.
    expect(report.stdout.split('\n')[0]).toContain(',');
  });

  it('reports every missing required option at once', async () => {
    expectUsageFailure(await cli(['run', ...rootArgs]), /run: --date, --stage are required, e\.g\. --date 2026-03-02 --stage preliminary/);
    expectUsageFailure(await cli(['backfill', '--stage', 'final', ...rootArgs]), /backfill: --from, --to are required/);
  });
});

describe('no data is not success (SPEC §3)', () => {
  it('run on a day without a predictions partition is not ready and writes nothing', async () => {
    const result = await cli(['run', '--date', '2026-03-01', '--stage', 'preliminary', '--as-of', AS_OF, '--json', ...rootArgs]);
    expect(result.code, describeRun(result)).toBe(3);
    expect(result.json()).toMatchObject({ status: 'not_ready', code: 'E_NOT_READY', reason: 'no_predictions_partition' });
    expect(result.finalLine).toMatch(/^model-metrics: error: 2026-03-01 is not ready: its predictions partition .*predictions\/dt=2026-03-01\/ does not exist/);
    for (const dataset of ['curated', 'metrics']) expect(existsSync(join(dir.path, 'root', dataset, 'stage=preliminary', 'dt=2026-03-01'))).toBe(false);
  });

  it('an existing partition with a header-only file is a real empty day', async () => {
    const result = await cli(['run', '--date', '2026-03-03', '--stage', 'preliminary', '--as-of', '2026-03-04T06:00:00Z', '--json', ...rootArgs]);
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.json()).toMatchObject({ status: 'done', predictions_read: 0 });
    expect(result.finalLine).toBeUndefined();
  });

  it('backfill over days without partitions writes no partition: each day not ready, exit 3', async () => {
    const result = await cli(['backfill', '--from', '2020-01-01', '--to', '2020-01-05', '--stage', 'final', '--json', ...rootArgs]);
    expect(result.code, describeRun(result)).toBe(3);
    const outcomes = result.json<DayOutcome[]>();
    expect(outcomes.map((o) => o.status)).toEqual(Array(5).fill('not_ready'));
    expect(result.finalLine).toMatch(/^model-metrics: error: 0 of 5 day\(s\) failed and 5 not ready/);
    const finals = await readdir(join(dir.path, 'root', 'metrics', 'stage=final')).catch(() => []);
    expect(finals.filter((name) => name.startsWith('dt=2020-'))).toEqual([]);
  });
});

describe('--as-of', () => {
  it('a future --as-of is bad usage; one within the skew allowance is not', async () => {
    const future = new Date(Date.now() + 24 * 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    expectUsageFailure(await cli(['run', '--date', DAY, '--stage', 'final', '--as-of', future, ...rootArgs]), /--as-of .* lies in the future .*up to 5 minutes of skew/);
    expectUsageFailure(await cli(['scheduled', '--as-of', future, ...rootArgs]), /lies in the future/);
    const nearly = new Date(Date.now() + 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const ok = await cli(['run', '--date', DAY, '--stage', 'final', '--as-of', nearly, '--json', ...rootArgs]);
    expect(ok.code, describeRun(ok)).toBe(0);
  });
});

describe('config and environment errors name their source', () => {
  it('a bad value from a variable names the variable; from a file, the file and line', async () => {
    expectUsageFailure(await cli(['run', '--date', DAY, ...rootArgs], { MODEL_METRICS_STAGE: 'weekly' }), /--stage must be one of preliminary, final, got "weekly" \(the value comes from MODEL_METRICS_STAGE\)/);
    const file = join(dir.path, 'cfg', 'bad-value.yaml');
    await writeFile(file, 'codec: deflate\nmax-slice-values: many\n');
    expectUsageFailure(await cli(['run', '--date', DAY, '--stage', 'final', '--config', file, ...rootArgs]), /--max-slice-values \(from bad-value\.yaml line 2 \("max-slice-values"\)\): expected a whole number/);
  });

  it('a YAML syntax error is one readable line with its position', async () => {
    const file = join(dir.path, 'cfg', 'broken.yaml');
    await writeFile(file, 'codec: deflate\nslice-keys: [region\n');
    const result = await cli(['run', '--date', DAY, '--stage', 'final', '--config', file, ...rootArgs]);
    expectUsageFailure(result, /broken\.yaml" line \d+, column \d+ is neither valid JSON nor YAML: /);
    expect(result.finalLine).not.toContain('?');
  });

  it('an unknown MODEL_METRICS_* name is a warning with a did-you-mean', async () => {
    const result = await cli(['run', '--date', DAY, '--stage', 'final', '--json', ...rootArgs], { MODEL_METRICS_LABLE_WINDOW: 'P3D' });
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.logs.find((l) => l.event === 'config_warning')?.message).toBe('environment variable MODEL_METRICS_LABLE_WINDOW is not an option of any command and is ignored; did you mean MODEL_METRICS_LABEL_WINDOW?');
  });

  it('commander\'s did-you-mean reads as one sentence', async () => {
    expectUsageFailure(await cli(['run', '--date', DAY, '--stage', 'final', '--codex', 'x', ...rootArgs]), /run: unknown option '--codex'; did you mean --codec\? Add --help for usage$/);
  });
});

describe('log format', () => {
  it('--log-format pretty writes readable lines; a bad format is exit 2', async () => {
    const pretty = await cli(['run', '--date', DAY, '--stage', 'final', '--force', '--log-format', 'pretty', ...rootArgs]);
    expect(pretty.code, describeRun(pretty)).toBe(0);
    expect(pretty.logs).toEqual([]);
    expect(pretty.nonJsonStderr.some((line) => /^\d\d:\d\d:\d\d INFO  run_started: /.test(line)), describeRun(pretty)).toBe(true);
    expectUsageFailure(await cli(['run', '--date', DAY, '--stage', 'final', '--log-format', 'xml', ...rootArgs]), /--log-format must be one of pretty, json/);
  });
});
