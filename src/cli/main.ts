/**
 * The command line (SPEC §6). Parses flags with commander, merges them over `MODEL_METRICS_*`
 * environment variables and a `--config` file, validates once into a JobConfig, runs a job from
 * `jobs/`, prints the summary on stdout and returns the exit code (0 done, 1 failed, 2 bad usage,
 * 3 not ready). It never calls process.exit, so tests can run it in-process too.
 */
import { resolve as resolvePath } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { backfill } from '../../jobs/backfill.js';
import { dailyRun } from '../../jobs/daily-run.js';
import { demo } from '../../jobs/demo.js';
import { type DayOutcome, combinedExitCode } from '../../jobs/outcome.js';
import { buildReport, checkOutFile, renderAny, writeOutFile } from '../../jobs/report.js';
import { reportRequestOf } from '../report/request.js';
import { reportGrains } from '../report/rollup.js';
import { scheduled } from '../../jobs/scheduled.js';
import { checkDate } from '../config/dates.js';
import { type OptionSpec, camelNameOf, commonOptions, envNameOf } from '../config/options.js';
import { type JobConfig, type RawOptions, coerceAll, mergeOptions, oneOf, readConfigFile, readEnvOptions, resolveJobConfig } from '../config/resolve.js';
import { ExitCode, InterruptedError, ModelMetricsError, UsageError, exitCodeOf } from '../errors.js';
import { dayWindow, formatMicros, parseLabelWindow, parseTimestamp } from '../join/policy.js';
import type { Stage } from '../join/records.js';
import { type Logger, sanitizeForLog } from '../observability/log.js';
import { JOB_VERSION } from '../package-root.js';
import type { DayResult, RunContext } from '../pipeline/daily.js';
import { destroyStores } from '../storage/index.js';
import { commandLogger, createRunContext, openStores } from './context.js';
import { reportFormats } from './format.js';
import { renderReport } from './report-view.js';
import { registerSchemaCommand } from './schema-command.js';
import { type Reporting, finishReporting, reportingOf, shardOf } from './reporting.js';

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  stdout: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const stageSpec: OptionSpec = { name: 'stage', kind: 'string', arg: 'STAGE', description: 'preliminary (labels so far) or final (label window closed)' };
const asOfSpec: OptionSpec = { name: 'as-of', kind: 'string', arg: 'TS', description: 'ISO-8601 instant with zone, e.g. 2026-03-03T06:00:00Z', defaultText: 'now' };

const summaryFileSpec: OptionSpec = { name: 'summary-file', kind: 'string', arg: 'PATH', description: 'also write the JSON summary (the --json document) to this file, e.g. /airflow/xcom/return.json' };
const pushgatewaySpecs: OptionSpec[] = [
  { name: 'pushgateway', kind: 'string', arg: 'URL', description: 'push run metrics (duration, records, exit code, last success per stage) to this Prometheus Pushgateway' },
  { name: 'pushgateway-job', kind: 'string', arg: 'NAME', description: 'job label of the pushed metrics', defaultText: 'model_metrics' },
];
/** What every computing command (run, backfill, scheduled) adds to its own options. */
const reportingSpecs: OptionSpec[] = [summaryFileSpec, ...pushgatewaySpecs];

const commandSpecs = {
  run: [{ name: 'date', kind: 'string', arg: 'YYYY-MM-DD', description: 'the UTC day to compute' }, stageSpec, asOfSpec, ...reportingSpecs],
  backfill: [
    { name: 'from', kind: 'string', arg: 'YYYY-MM-DD', description: 'first day (inclusive)' },
    { name: 'to', kind: 'string', arg: 'YYYY-MM-DD', description: 'last day (inclusive)' },
    stageSpec,
    asOfSpec,
    { name: 'concurrency', kind: 'integer', arg: 'N', description: 'days computed at once (each holds its own label index in memory)', defaultText: '1' },
    { name: 'shard-count', kind: 'integer', arg: 'N', description: 'split the range over N workers, dealing days round-robin (day k of the range goes to shard k mod N)', defaultText: '1' },
    { name: 'shard-index', kind: 'integer', arg: 'I', description: 'this worker\'s shard, 0 to N-1', defaultText: 'env JOB_COMPLETION_INDEX (Kubernetes Indexed Job)' },
    ...reportingSpecs,
  ],
  scheduled: [asOfSpec, { name: 'lookback', kind: 'string', arg: 'ISO', description: 'how far back to look for days whose final is due', defaultText: 'P30D' }, ...reportingSpecs],
  report: [
    { name: 'from', kind: 'string', arg: 'YYYY-MM-DD', description: 'first day (inclusive)' },
    { name: 'to', kind: 'string', arg: 'YYYY-MM-DD', description: 'last day (inclusive)' },
    { name: 'stage', kind: 'string', arg: 'STAGE', description: 'final, preliminary, or both (each day with both stages shows the restatement)', defaultText: 'final' },
    { name: 'by', kind: 'string', arg: 'GRAIN', description: `rows per ${reportGrains.join(', ')} (ISO weeks, Monday to Sunday), rolled up exactly from the daily sums`, defaultText: 'day' },
    { name: 'slice', kind: 'string', arg: 'KEY[=VALUE]', description: "rows for each value of a segment key (or one value) instead of the whole model version", defaultText: 'whole version' },
    { name: 'model', kind: 'string', arg: 'NAME[@VERSION]', description: 'only this model (or model version)', defaultText: 'every model' },
    { name: 'format', kind: 'string', arg: 'FORMAT', description: `output format: ${reportFormats.join(', ')} (html: one self-contained file with charts)`, defaultText: 'table' },
    { name: 'out', kind: 'string', arg: 'FILE', description: 'write the report to this file instead of stdout (required for html)' },
    // Only the options that locate and read the metrics dataset: the job options (--slice-keys, --codec, …) mean nothing here.
    ...commonOptions.filter((s) => ['root', 'metrics', 'predictions', 'labels', 'curated', 's3-endpoint', 's3-force-path-style', 's3-region', 's3-max-attempts', 's3-idle-timeout-seconds'].includes(s.name)),
  ],
  demo: [{ name: 'dir', kind: 'string', arg: 'PATH', description: 'folder for the sample data and outputs', defaultText: './model-metrics-demo' }],
} satisfies Record<string, OptionSpec[]>;

function addOptions(command: Command, specs: readonly OptionSpec[]): Command {
  for (const spec of specs) {
    const flags = spec.kind === 'boolean' ? `--${spec.name}` : `--${spec.name} <${spec.arg ?? 'VALUE'}>`;
    const description = `${spec.description}${spec.defaultText ? ` (default: ${spec.defaultText})` : ''} [env ${envNameOf(spec)}]`;
    command.addOption(new Option(flags, description));
  }
  command.addOption(new Option('--config <FILE>', 'JSON or YAML file with the same options (keys without --); flags beat env beat file'));
  return command;
}

/** Raw options in precedence order, coerced to their kinds. */
function gatherOptions(flags: Record<string, unknown>, specs: readonly OptionSpec[], env: NodeJS.ProcessEnv): RawOptions {
  const fromFlags: RawOptions = {};
  for (const spec of specs) {
    const value = flags[camelNameOf(spec.name)];
    if (value !== undefined) fromFlags[spec.name] = value;
  }
  const configPath = (flags.config as string | undefined) ?? env.MODEL_METRICS_CONFIG;
  const fromFile = configPath === undefined ? {} : readConfigFile(configPath, specs);
  return coerceAll(mergeOptions(fromFile, readEnvOptions(env, specs), fromFlags), specs);
}

function required(raw: RawOptions, name: string, example: string): string {
  const value = raw[name];
  if (value === undefined) throw new UsageError(`--${name} is required, e.g. --${name} ${example}`, { option: `--${name}` });
  return value as string;
}

function nowMicros(): number {
  // Whole seconds: a default as-of that prints cleanly and reruns within the same second agree.
  return Math.floor(Date.now() / 1000) * 1_000_000;
}

function asOfOf(raw: RawOptions): number {
  const text = raw['as-of'] as string | undefined;
  return text === undefined ? nowMicros() : parseTimestamp(text, '--as-of');
}

function describeResult(r: DayResult): string {
  const coverage = r.label_coverage === null ? '-' : `${(r.label_coverage * 100).toFixed(1)}%`;
  const head = `${r.date} ${r.stage}: ${r.status === 'already_done' ? 'already done (same inputs and options; --force recomputes)' : 'done'}`;
  return [
    `${head} — ${r.predictions_read.toLocaleString('en-US')} predictions read, ${r.predictions_kept.toLocaleString('en-US')} kept, ${r.labeled.toLocaleString('en-US')} labeled (${coverage}), ${r.curated_files} curated file(s), ${r.metrics_records} metrics record(s)${r.skipped_objects > 0 ? `, ${r.skipped_objects} object(s) skipped` : ''}, ${r.duration_s.toFixed(1)} s`,
    `  curated: ${r.curated_manifest}`,
    `  metrics: ${r.metrics_manifest}`,
  ].join('\n');
}

function describeOutcomes(outcomes: readonly DayOutcome[]): string {
  const lines = outcomes.map((o) => ('result' in o ? describeResult(o.result) : `${o.date} ${o.stage}: ${o.status.replace('_', ' ')} [${o.code}] ${o.error}`));
  const count = (status: DayOutcome['status']): number => outcomes.filter((o) => o.status === status).length;
  lines.push(`${outcomes.length} day(s): ${count('done')} done, ${count('already_done')} already done, ${count('not_ready')} not ready, ${count('failed')} failed`);
  return lines.join('\n');
}

/** A commander parse error (unknown option or command, missing value) as a UsageError naming the option. */
function usageErrorOf(error: CommanderError, program: Command): UsageError {
  if (error.code === 'commander.help') {
    return new UsageError(`a command is required: one of ${program.commands.map((c) => c.name()).join(', ')}; add --help for usage`, { commander_code: error.code });
  }
  const option = /'(--?[\w-]+)/.exec(error.message)?.[1];
  return new UsageError(`${error.message.replace(/^error: /, '')}; add --help for usage`, { ...(option === undefined ? {} : { option }), commander_code: error.code });
}

const HELP_FOOTER = `
Options also come from MODEL_METRICS_<OPTION> environment variables and from --config FILE (JSON or
YAML, keys are option names without --); flags beat environment beat file beat defaults.
Exit codes: 0 done (or already done with the same inputs), 1 failed, 2 bad usage or config,
3 not ready, nothing done, retry later (the final label window is still open, or another run of
the same date and stage holds its lease), 143/130 stopped by SIGTERM/SIGINT (nothing committed). Logs: JSON lines on stderr; summary on stdout.`;

/** Runs the CLI on argv (without node and script) and returns the exit code. */
export async function main(argv: readonly string[], io: CliIo = { stdout: (t) => process.stdout.write(t), env: process.env }): Promise<number> {
  let exitCode: number = ExitCode.ok;
  // SIGTERM (Kubernetes, Airflow) and SIGINT (Ctrl-C) stop the run at the next block; it removes
  // its partial outputs and commits nothing. A second signal gets Node's default: immediate exit.
  const interrupt = new AbortController();
  const onSignal = (signal: 'SIGTERM' | 'SIGINT') => () => interrupt.abort(new InterruptedError(signal));
  const onTerm = onSignal('SIGTERM');
  const onInt = onSignal('SIGINT');
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onInt);
  let json = argv.includes('--json');
  const startedAtMs = Date.now();
  // Set by a computing command once its options are valid: where its summary and run metrics go.
  let reporting: Reporting | undefined;
  let summary: unknown;
  const print = (human: string, machine: unknown): void => {
    summary = machine;
    io.stdout(`${json ? JSON.stringify(machine) : human}\n`);
  };
  /** Validates a computing command's reporting options, then opens its run context and logger. */
  const startReporting = (raw: RawOptions, config: JobConfig, command: 'run' | 'backfill' | 'scheduled', stages: Stage[]): { ctx: RunContext; report: Reporting } => {
    const report = reportingOf(raw, command, stages);
    reporting = report;
    const ctx = createRunContext(config, command, interrupt.signal);
    report.logger = ctx.logger;
    return { ctx, report };
  };

  const program = new Command('model-metrics')
    .description('Joins model predictions with late labels and publishes preliminary and final regression metrics.')
    .version(JOB_VERSION)
    .exitOverride()
    .addHelpText('after', HELP_FOOTER)
    // Parse errors are reported below as a JSON log line like every other failure (SPEC §6: stderr is JSON
    // lines); commander's own text (help after a missing command) only goes to a person at a terminal.
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => {
        if (process.stderr.isTTY) process.stderr.write(text);
      },
      outputError: () => undefined,
    });

  const setup = (name: keyof typeof commandSpecs, extraCommon: boolean): { specs: OptionSpec[]; command: Command } => {
    const specs = extraCommon ? [...commandSpecs[name], ...commonOptions] : [...commandSpecs[name], ...commonOptions.filter((s) => s.name === 'log-level' || s.name === 'json')];
    const command = addOptions(program.command(name), specs).exitOverride().addHelpText('after', HELP_FOOTER);
    return { specs, command };
  };

  const run = setup('run', true);
  run.command.description('compute one day and stage').action(async (flags: Record<string, unknown>) => {
    const raw = gatherOptions(flags, run.specs, io.env);
    json = raw.json === true;
    const date = required(raw, 'date', '2026-03-02');
    checkDate(date, '--date');
    const stage = oneOf(raw, 'stage', ['preliminary', 'final'] as const);
    const config = resolveJobConfig(raw, io.env);
    const { ctx, report } = startReporting(raw, config, 'run', [stage]);
    const result = await dailyRun(ctx, { date, stage, asOfMicros: asOfOf(raw) });
    report.outcomes = [{ date, stage, status: result.status, result }];
    print(describeResult(result), result);
  });

  const bf = setup('backfill', true);
  bf.command.description('compute every day of a range, several at once').action(async (flags: Record<string, unknown>) => {
    const raw = gatherOptions(flags, bf.specs, io.env);
    json = raw.json === true;
    const from = required(raw, 'from', '2026-01-01');
    const to = required(raw, 'to', '2026-03-31');
    const stage = oneOf(raw, 'stage', ['preliminary', 'final'] as const);
    const concurrency = (raw.concurrency as number | undefined) ?? 1;
    if (concurrency < 1 || concurrency > 32) throw new UsageError(`--concurrency must be from 1 to 32, got ${concurrency}`, { option: '--concurrency' });
    const shard = shardOf(raw, io.env);
    const config = resolveJobConfig(raw, io.env);
    const asOfMicros = asOfOf(raw);
    checkDate(to, '--to');
    if (stage === 'preliminary' && dayWindow(to).startMicros > asOfMicros) {
      // Caught here rather than as one failed day each: the whole range is a usage mistake.
      throw new UsageError(`--to ${to} begins after --as-of ${formatMicros(asOfMicros)}; a preliminary backfill can only cover days that have started`, { option: '--to' });
    }
    const { ctx, report } = startReporting(raw, config, 'backfill', [stage]);
    const outcomes = await backfill(ctx, { from, to, stage, asOfMicros, concurrency, shard });
    report.outcomes = outcomes;
    print(describeOutcomes(outcomes), outcomes);
    exitCode = combinedExitCode(outcomes);
  });

  const sched = setup('scheduled', true);
  sched.command.description('CronJob entry: preliminary for yesterday, final for every closed window without one').action(async (flags: Record<string, unknown>) => {
    const raw = gatherOptions(flags, sched.specs, io.env);
    json = raw.json === true;
    const lookbackIso = (raw.lookback as string | undefined) ?? 'P30D';
    let lookbackMicros: number;
    try {
      lookbackMicros = parseLabelWindow(lookbackIso).micros;
    } catch (error) {
      throw new UsageError(`--lookback must be an ISO-8601 duration in days/hours (e.g. P30D), got ${JSON.stringify(lookbackIso)}`, { option: '--lookback' }, { cause: error });
    }
    const config = resolveJobConfig(raw, io.env);
    const { ctx, report } = startReporting(raw, config, 'scheduled', ['preliminary', 'final']);
    const outcomes = await scheduled(ctx, { asOfMicros: asOfOf(raw), lookbackMicros });
    report.outcomes = outcomes;
    print(describeOutcomes(outcomes), outcomes);
    exitCode = outcomes.some((o) => o.status === 'failed') ? ExitCode.failed : ExitCode.ok;
  });

  const rep = setup('report', false);
  rep.command.description('the metrics of a date range per model version and window: table, md, csv, json or html (SPEC §7)').action(async (flags: Record<string, unknown>) => {
    const raw = gatherOptions(flags, rep.specs, io.env);
    const request = reportRequestOf(raw);
    const format = oneOf(raw, 'format', reportFormats, raw.json === true ? 'json' : 'table');
    const out = raw.out as string | undefined;
    if (format === 'html' && out === undefined) throw new UsageError('--format html writes a file: add --out FILE, e.g. --out report.html', { option: '--out' });
    if (out !== undefined) checkOutFile(out);
    const config = resolveJobConfig(raw, io.env);
    const text = await renderAny(await buildReport(openStores(config).metrics, request), format);
    if (out === undefined) io.stdout(text);
    else {
      writeOutFile(out, text);
      io.stdout(`report written to ${resolvePath(out)}\n`);
    }
  });

  const dm = setup('demo', false);
  dm.command.description('generate sample data locally, run both stages and print the tables (no server, no credentials)').action(async (flags: Record<string, unknown>) => {
    const raw = gatherOptions(flags, dm.specs, io.env);
    json = raw.json === true;
    const dir = resolvePath((raw.dir as string | undefined) ?? './model-metrics-demo');
    const config = resolveJobConfig({ root: dir, 'log-level': raw['log-level'] ?? 'warn' }, {});
    const result = await demo(createRunContext(config, 'demo', interrupt.signal));
    const failed = result.outcomes.filter((o) => o.status !== 'done' && o.status !== 'already_done');
    const human = [
      `sample data: ${result.sample.predictions.toLocaleString('en-US')} predictions in ${result.sample.predictionFiles} files, ${result.sample.labels.toLocaleString('en-US')} labels in ${result.sample.labelFiles} files under ${dir}`,
      '',
      renderReport(result.preliminary, 'table'),
      '',
      renderReport(result.final, 'table'),
      '',
      `try: npx model-metrics report --root ${dir} --from ${result.final.from} --to ${result.final.to} --format md`,
      ...failed.map((o) => `${o.date} ${o.stage}: ${o.status}`),
    ].join('\n');
    print(human, result);
    exitCode = combinedExitCode(result.outcomes);
  });

  registerSchemaCommand(program, io);

  let logger: Logger | undefined;
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (caught) {
    let error = caught;
    if (caught instanceof CommanderError) {
      // --help and --version end here with exit code 0; everything else is bad usage.
      if (caught.exitCode === 0) return ExitCode.ok;
      error = usageErrorOf(caught, program);
    }
    const code = exitCodeOf(error);
    // The failure line is logged at any level but "silent" (the options may not have parsed, so argv is read as is).
    const levelAt = argv.indexOf('--log-level');
    const silent = (levelAt >= 0 && argv[levelAt + 1] === 'silent') || io.env.MODEL_METRICS_LOG_LEVEL === 'silent';
    logger = commandLogger({ logLevel: silent ? 'silent' : 'error' }, argv[0] ?? 'model-metrics');
    const message = sanitizeForLog(error instanceof Error ? error.message : String(error));
    const details = error instanceof ModelMetricsError ? error.toJSON() : { code: 'E_INTERNAL', stack: error instanceof Error ? error.stack : undefined };
    const status = code === ExitCode.notReady ? 'not_ready' : error instanceof InterruptedError ? 'interrupted' : 'failed';
    logger.error({ event: status === 'failed' ? 'command_failed' : status, exit_code: code, ...details, message }, message);
    summary = { status, exit_code: code, ...details, message };
    if (json) io.stdout(`${JSON.stringify(summary)}\n`);
    else if (process.stderr.isTTY) process.stderr.write(`model-metrics: ${message}\n`);
    exitCode = code;
  }
  try {
    if (reporting !== undefined) {
      const fallbackLogger = (): Logger => logger ?? commandLogger({ logLevel: 'warn' }, argv[0] ?? 'model-metrics');
      exitCode = await finishReporting(reporting, { exitCode, summary, startedAtMs, fallbackLogger });
    }
    return exitCode;
  } finally {
    process.removeListener('SIGTERM', onTerm);
    process.removeListener('SIGINT', onInt);
    destroyStores();
  }
}
