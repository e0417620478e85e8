/**
 * The entry point of the `model-metrics` command (bin/model-metrics.js): wires the jobs of this
 * folder into the command line of src/cli/program.ts (options, parsing, summaries, exit codes) and
 * adds `schema check`. Kept here, beside the jobs, so that src/cli/ never imports jobs/.
 */
import { join, resolve as resolvePath } from 'node:path';
import { alertExitCode, describeAlerts } from '../src/alerts/report.js';
import { defaultOf, optionsOf } from '../src/config/options.js';
import type { RawOptions } from '../src/config/resolve.js';
import { UsageError } from '../src/errors.js';
import type { DayOutcome, DayResult } from '../src/run-results.js';
import type { PhaseResult } from '../src/pipeline/sharded.js';
import { type CliIo, type CommandWiring, asOfOf, processIo, runProgram } from '../src/cli/program.js';
import { registerSchemaCommand } from '../src/cli/schema-command.js';

// Each command's implementation is imported inside its action, so `--version`, `--help` and one
// command load only what that command runs: a local `run` neither the report's HTML and vega nor
// the demo, and nothing here loads the AWS SDK (src/storage/open.ts defers it to the first s3:// request).

export { FAILURE_PREFIX, type CliIo } from '../src/cli/program.js';

/** Runs the CLI on argv (without node and script) and returns the exit code. */
export function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  return runProgram(argv, io, { register: (cli) => registerCommands(cli), alertExitCode });
}

/** The commands of the table: run, backfill, scheduled, report, demo; and `schema check`. */
function registerCommands(cli: CommandWiring): void {
  cli.define('run', 'compute one day and stage', async ({ raw, warnings }) => {
    const [{ checkDate, formatMicros }, { oneOf, resolveJobConfig, shardRunOf }, { dailyRun }] = await Promise.all([
      import('../src/calendar.js'),
      import('../src/config/resolve.js'),
      import('./daily-run.js'),
    ]);
    const date = raw.date as string;
    checkDate(date, '--date');
    const stage = oneOf(raw, 'stage', ['preliminary', 'final'] as const);
    const asOfMicros = asOfOf(raw);
    const shardRun = shardRunOf(raw, cli.io.env);
    const config = resolveJobConfig(raw, cli.io.env);
    const { ctx, report } = await cli.startReporting(raw, config, 'run', [stage]);
    cli.warnAll(ctx.logger, warnings);
    const local = { args: shardChildArgs(raw, formatMicros(asOfMicros)), env: shardChildEnv(cli.io.env), stderr: (chunk: Buffer) => process.stderr.write(chunk) };
    const result = await dailyRun(ctx, { date, stage, asOfMicros }, shardRun, local);
    if ('phase' in result) {
      // A partition or join phase publishes nothing: its summary names its marker, no day outcome.
      cli.print(describePhase(result), result);
      return;
    }
    report.outcomes = [{ date, stage, status: result.status, result }];
    cli.print(describeResult(result), result);
  });

  cli.define('backfill', 'compute every day of a range, several at once', async ({ raw, warnings }) => {
    const [{ checkDate, dayWindow, formatMicros }, { oneOf, resolveJobConfig }, { shardOf }, { backfill }] = await Promise.all([
      import('../src/calendar.js'),
      import('../src/config/resolve.js'),
      import('../src/cli/reporting.js'),
      import('./backfill.js'),
    ]);
    const from = raw.from as string;
    const to = raw.to as string;
    const stage = oneOf(raw, 'stage', ['preliminary', 'final'] as const);
    const concurrency = (raw.concurrency as number | undefined) ?? defaultOf<number>('concurrency', 'backfill');
    if (concurrency < 1 || concurrency > 32) throw new UsageError(`--concurrency must be from 1 to 32, got ${concurrency}`, { option: '--concurrency' });
    const shard = shardOf(raw, cli.io.env);
    const config = resolveJobConfig(raw, cli.io.env);
    const asOfMicros = asOfOf(raw);
    checkDate(to, '--to');
    if (stage === 'preliminary' && dayWindow(to).startMicros > asOfMicros) {
      // Caught here rather than as one failed day each: the whole range is a usage mistake.
      throw new UsageError(`--to ${to} begins after --as-of ${formatMicros(asOfMicros)}; a preliminary backfill can only cover days that have started`, { option: '--to' });
    }
    const { ctx, report } = await cli.startReporting(raw, config, 'backfill', [stage]);
    cli.warnAll(ctx.logger, warnings);
    const outcomes = await backfill(ctx, { from, to, stage, asOfMicros, concurrency, shard });
    report.outcomes = outcomes;
    cli.print(describeOutcomes(outcomes), outcomes);
    await cli.outcomesVerdict(outcomes);
  });

  cli.define('scheduled', 'CronJob entry: preliminary for yesterday, final for every closed window without one', async ({ raw, warnings }) => {
    const [{ parseLabelWindow }, { resolveJobConfig }, { scheduled }] = await Promise.all([
      import('../src/join/policy.js'),
      import('../src/config/resolve.js'),
      import('./scheduled.js'),
    ]);
    const lookbackIso = (raw.lookback as string | undefined) ?? defaultOf<string>('lookback', 'scheduled');
    let lookbackMicros: number;
    try {
      lookbackMicros = parseLabelWindow(lookbackIso).micros;
    } catch (error) {
      throw new UsageError(`--lookback must be an ISO-8601 duration in days/hours (e.g. P30D), got ${JSON.stringify(lookbackIso)}`, { option: '--lookback' }, { cause: error });
    }
    const asOfMicros = asOfOf(raw);
    const config = resolveJobConfig(raw, cli.io.env);
    const { ctx, report } = await cli.startReporting(raw, config, 'scheduled', ['preliminary', 'final']);
    cli.warnAll(ctx.logger, warnings);
    const outcomes = await scheduled(ctx, { asOfMicros, lookbackMicros });
    report.outcomes = outcomes;
    cli.print(describeOutcomes(outcomes), outcomes);
    // A day not ready yet is the normal state of a schedule (its next run catches up): only failures fail it.
    await cli.outcomesVerdict(outcomes.filter((o) => o.status !== 'not_ready'));
  });

  cli.define('report', 'the metrics of a date range per model version and window: table, md, csv, json or html (SPEC §7)', async ({ raw, warnings }) => {
    const [{ reportRequestOf }, { reportFormats }, { datasetUri, logSettingsOf, oneOf, s3SettingsOf }, { openStore }, { commandLogger }, { buildReport, checkOutFile, renderAny, writeOutFile }] = await Promise.all([
      import('../src/report/request.js'),
      import('../src/cli/format.js'),
      import('../src/config/resolve.js'),
      import('../src/storage/open.js'),
      import('../src/cli/context.js'),
      import('./report.js'),
    ]);
    const request = reportRequestOf(raw);
    const format = oneOf(raw, 'format', reportFormats, raw.json === true ? 'json' : defaultOf<string>('format', 'report'));
    const out = raw.out as string | undefined;
    if (format === 'html' && out === undefined) throw new UsageError('--format html writes a file: add --out FILE, e.g. --out report.html', { option: '--out' });
    if (out !== undefined) checkOutFile(out);
    const metrics = openStore(datasetUri(raw, 'metrics'), s3SettingsOf(raw, cli.io.env), '--metrics');
    cli.warnAll(commandLogger(logSettingsOf(raw), 'report'), warnings);
    const text = await renderAny(await buildReport(metrics, request), format);
    if (out === undefined) cli.io.stdout(text);
    else {
      writeOutFile(out, text);
      cli.io.stdout(`report written to ${resolvePath(out)}\n`);
    }
  });

  cli.define('demo', 'generate sample data locally, run both stages and print the tables (no server, no credentials)', async ({ raw, warnings }) => {
    const [{ resolveJobConfig }, { createRunContext }, { demo, describeDemoAlerts }, { writeHtmlReport }, { renderReport }] = await Promise.all([
      import('../src/config/resolve.js'),
      import('../src/cli/context.js'),
      import('./demo.js'),
      import('./report.js'),
      import('../src/cli/report-view.js'),
    ]);
    const dir = resolvePath((raw.dir as string | undefined) ?? defaultOf<string>('dir', 'demo'));
    const config = resolveJobConfig({ root: dir, 'log-level': raw['log-level'] ?? defaultOf<string>('log-level', 'demo'), ...(raw['log-format'] === undefined ? {} : { 'log-format': raw['log-format'] }) }, {});
    const ctx = createRunContext(config, 'demo', cli.signal);
    cli.warnAll(ctx.logger, warnings);
    const result = await demo(ctx, {
      htmlOut: join(dir, 'report.html'),
      writeHtmlReport: async (c, r) => {
        await writeHtmlReport(c.stores.metrics, { from: r.from, to: r.to, stage: 'both', by: 'day' }, r.out);
      },
    });
    const failed = result.outcomes.filter((o) => o.status !== 'done' && o.status !== 'already_done');
    const human = [
      `sample data: ${result.sample.predictions.toLocaleString('en-US')} predictions in ${result.sample.predictionFiles} files, ${result.sample.labels.toLocaleString('en-US')} labels in ${result.sample.labelFiles} files under ${dir}`,
      '',
      renderReport(result.preliminary, 'table'),
      '',
      renderReport(result.final, 'table'),
      '',
      ...describeDemoAlerts(result, dir),
      ...(result.htmlReport === undefined ? [] : [`HTML report: ${result.htmlReport}`]),
      `try: npx model-metrics report --root ${dir} --from ${result.final.from} --to ${result.final.to} --format md`,
      ...failed.map((o) => `${o.date} ${o.stage}: ${o.status}`),
    ].join('\n');
    cli.print(human, result);
    await cli.outcomesVerdict(result.outcomes);
  });

  registerSchemaCommand(cli.program, cli.io);
}

function describeResult(r: DayResult): string {
  const coverage = r.label_coverage === null ? '-' : `${(r.label_coverage * 100).toFixed(1)}%`;
  const head = `${r.date} ${r.stage}: ${r.status === 'already_done' ? 'already done (same inputs and options; --force recomputes)' : 'done'}`;
  return [
    `${head} — ${r.predictions_read.toLocaleString('en-US')} predictions read, ${r.predictions_kept.toLocaleString('en-US')} kept, ${r.labeled.toLocaleString('en-US')} labeled (${coverage}), ${r.curated_files} curated file(s), ${r.metrics_records} metrics record(s)${r.skipped_objects > 0 ? `, ${r.skipped_objects} object(s) skipped` : ''}, ${r.duration_s.toFixed(1)} s`,
    `  curated: ${r.curated_manifest}`,
    `  metrics: ${r.metrics_manifest}`,
    ...describeAlerts(r.alerts),
  ].join('\n');
}

function describeOutcomes(outcomes: readonly DayOutcome[]): string {
  const lines = outcomes.map((o) => ('result' in o ? describeResult(o.result) : `${o.date} ${o.stage}: ${o.status.replace('_', ' ')} [${o.code}] ${o.error}`));
  const count = (status: DayOutcome['status']): number => outcomes.filter((o) => o.status === status).length;
  lines.push(`${outcomes.length} day(s): ${count('done')} done, ${count('already_done')} already done, ${count('not_ready')} not ready, ${count('failed')} failed`);
  return lines.join('\n');
}

function describePhase(r: PhaseResult): string {
  const what = r.status === 'already_done' ? 'already committed with the same inputs and options, nothing to do' : `done, ${r.records.toLocaleString('en-US')} records, ${r.buckets} buckets`;
  return [`${r.date} ${r.stage}: ${r.phase} phase of shard ${r.shard} of ${r.shards} ${what}, ${r.duration_s.toFixed(1)} s`, `  marker: ${r.marker}`].join('\n');
}

/** Options a child of a local sharded run must not repeat: the sharding itself (the runner adds it) and the parent's own reporting. */
const PARENT_ONLY = new Set(['shards', 'shard-index', 'phase', 'json', 'summary-file', 'pushgateway', 'pushgateway-job', 'fail-on-alert', 'as-of']);

/**
 * The options of a local sharded run as flags for its children, whatever their source (flags,
 * environment, --config), plus the run's as-of fixed once: a preliminary's "now" must be the same
 * instant in every phase, or each would list and fingerprint a different run.
 */
function shardChildArgs(raw: RawOptions, asOf: string): string[] {
  const args = ['run', `--as-of=${asOf}`];
  for (const spec of optionsOf('run')) {
    const value = raw[spec.name];
    if (value === undefined || PARENT_ONLY.has(spec.name)) continue;
    if (spec.kind === 'boolean') {
      if (value === true) args.push(`--${spec.name}`);
    } else if (spec.kind === 'list') args.push(`--${spec.name}=${(value as string[]).join(',')}`);
    else if (spec.kind === 'mapping') args.push(`--${spec.name}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
    else args.push(`--${spec.name}=${String(value)}`);
  }
  return args;
}

/** The children's environment: the parent's, without MODEL_METRICS_* (already in their flags; a summary file or config must not apply twice). */
function shardChildEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('MODEL_METRICS_') && name !== 'JOB_COMPLETION_INDEX'));
}
