/**
 * The command line (SPEC §6). Parses flags with commander, merges them over `MODEL_METRICS_*`
 * environment variables and a `--config` file, validates once into a JobConfig, runs a job from
 * `jobs/`, prints the summary on stdout and returns the exit code (0 done, 1 failed, 2 bad usage,
 * 3 not ready). It never calls process.exit, so tests can run it in-process too.
 */
import { join, resolve as resolvePath } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { backfill } from '../../jobs/backfill.js';
import { dailyRun } from '../../jobs/daily-run.js';
import { demo } from '../../jobs/demo.js';
import { type DayOutcome, combinedExitCode } from '../pipeline/outcome.js';
import { buildReport, checkOutFile, renderAny, writeHtmlReport, writeOutFile } from '../../jobs/report.js';
import { reportRequestOf } from '../report/request.js';
import { scheduled } from '../../jobs/scheduled.js';
import { checkDate } from '../config/dates.js';
import { type CommandName, type OptionSpec, camelNameOf, commandsUsing, defaultOf, envNameOf, optionsOf } from '../config/options.js';
import { type JobConfig, coerceAll, datasetUri, logSettingsOf, oneOf, resolveJobConfig, s3SettingsOf } from '../config/resolve.js';
import { CONFIG_ENV, type OptionSources, type RawOptions, type SourcedOptions, attributeSource, checkRequired, mergeSources, readConfigFile, readEnvOptions } from '../config/sources.js';
import { alertExitCode, describeAlerts, describeDemoAlerts } from '../alerts/report.js';
import { ExitCode, InterruptedError, ModelMetricsError, UsageError, exitCodeOf } from '../errors.js';
import { dayWindow, formatMicros, parseLabelWindow, parseTimestamp } from '../join/policy.js';
import type { Stage } from '../join/records.js';
import { type Logger, sanitizeForLog } from '../observability/log.js';
import { JOB_VERSION } from '../package-root.js';
import type { DayResult, RunContext } from '../pipeline/daily.js';
import { destroyStores, openStore } from '../storage/open.js';
import { commandLogger, createRunContext } from './context.js';
import { reportFormats } from './format.js';
import { renderReport } from './report-view.js';
import { registerSchemaCommand } from './schema-command.js';
import { type Reporting, finishReporting, reportingOf, shardOf } from './reporting.js';

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  stdout: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

function addOptions(command: Command, specs: readonly OptionSpec[]): Command {
  for (const spec of specs) {
    const flags = spec.kind === 'boolean' ? `--${spec.name}` : `--${spec.name} <${spec.arg ?? 'VALUE'}>`;
    const marks = [spec.required === true ? 'required' : undefined, spec.default !== undefined ? `default: ${spec.default}` : spec.defaultText === undefined ? undefined : `default: ${spec.defaultText}`].filter((m) => m !== undefined);
    const description = `${spec.description}${marks.length > 0 ? ` (${marks.join('; ')})` : ''} [env ${envNameOf(spec)}]`;
    command.addOption(new Option(flags, description));
  }
  command.addOption(new Option('--config <FILE>', `JSON or YAML file with the same options (keys without --; a section named after a command holds that command's own keys); flags beat env beat file [env ${CONFIG_ENV}]`));
  return command;
}

/** A command's options from every source, coerced to their kinds, with the source of each value. */
interface GatheredOptions {
  raw: RawOptions;
  sources: OptionSources;
  /** Warnings to log once the command has a logger (unknown MODEL_METRICS_* names). */
  warnings: string[];
}

/** Raw options in precedence order, coerced to their kinds. */
function gatherOptions(command: CommandName, flags: Record<string, unknown>, env: NodeJS.ProcessEnv): GatheredOptions {
  const specs = optionsOf(command);
  const fromFlags: SourcedOptions = { values: {}, sources: {} };
  for (const spec of specs) {
    const value = flags[camelNameOf(spec.name)];
    if (value !== undefined) {
      fromFlags.values[spec.name] = value;
      fromFlags.sources[spec.name] = `--${spec.name}`;
    }
  }
  const configPath = (flags.config as string | undefined) ?? env[CONFIG_ENV];
  const fromFile = configPath === undefined ? { values: {}, sources: {} } : readConfigFile(configPath, command);
  const fromEnv = readEnvOptions(env, command);
  const merged = mergeSources(fromFile, fromEnv, fromFlags);
  const raw = coerceAll(merged.values, specs, merged.sources);
  checkRequired(command, raw, EXAMPLES);
  return { raw, sources: merged.sources, warnings: fromEnv.warnings };
}

/** Example values of required options, for the message that lists the missing ones. */
const EXAMPLES: Record<string, string> = { date: '2026-03-02', from: '2026-03-02', to: '2026-03-08', stage: 'preliminary' };

/** How far ahead of this host's clock `--as-of` may lie: clock skew between hosts, not a future run. */
export const AS_OF_SKEW_MICROS = 5 * 60 * 1_000_000;

function nowMicros(): number {
  // Whole seconds: a default as-of that prints cleanly and reruns within the same second agree.
  return Math.floor(Date.now() / 1000) * 1_000_000;
}

/** The run's as-of: `--as-of`, at most AS_OF_SKEW_MICROS ahead of the clock (SPEC §3), else now. */
function asOfOf(raw: RawOptions): number {
  const text = raw['as-of'] as string | undefined;
  if (text === undefined) return nowMicros();
  const asOf = parseTimestamp(text, '--as-of');
  const now = Date.now() * 1000;
  if (asOf > now + AS_OF_SKEW_MICROS) {
    throw new UsageError(
      `--as-of ${formatMicros(asOf)} lies in the future (the clock reads ${formatMicros(Math.floor(now / 1_000_000) * 1_000_000)}; up to 5 minutes of skew are allowed): labels not yet arrived would be taken as absent, and a final published before its window really closed; leave --as-of out to use now`,
      { option: '--as-of' },
    );
  }
  return asOf;
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

/** A commander parse error (unknown option or command, missing value) as a UsageError naming the option. */
function usageErrorOf(error: CommanderError, program: Command, commandName: string | undefined): UsageError {
  if (error.code === 'commander.help') {
    return new UsageError(`a command is required: one of ${program.commands.map((c) => c.name()).join(', ')}; add --help for usage`, { commander_code: error.code });
  }
  const option = /'(--?[\w-]+)/.exec(error.message)?.[1];
  // Commander puts its suggestion on a line of its own: "error: unknown option '--codex'\n(Did you mean --codec?)".
  const text = error.message.replace(/^error: /, '').replace(/\s*\n\s*\(Did you mean ([^)]*?)\?\)/, '; did you mean $1?').replace(/\s*\n\s*/g, '; ');
  const command = program.commands.find((c) => c.name() === commandName)?.name();
  const others = option === undefined ? [] : commandsUsing(option.replace(/^--/, ''));
  if (error.code === 'commander.unknownOption' && command !== undefined && others.length > 0) {
    return new UsageError(`${command} does not use ${option} (an option of ${others.join(', ')}); leave it out, or see ${command} --help`, { option, command, commander_code: error.code });
  }
  return new UsageError(`${command === undefined ? '' : `${command}: `}${text}${text.endsWith('?') ? ' Add' : '; add'} --help for usage`, { ...(option === undefined ? {} : { option }), commander_code: error.code });
}

const HELP_FOOTER = `
Options also come from MODEL_METRICS_<OPTION> environment variables and from --config FILE (JSON or
YAML, keys are option names without --, shared by every command; a section named after a command,
e.g. "report:", holds that command's own keys); flags beat environment beat file beat defaults.
A command refuses an option it does not use, from any source (exit 2).
Exit codes: 0 done (or already done with the same inputs), 1 failed, 2 bad usage or config,
3 not ready, nothing done, retry later (the final label window is still open, or another run of
the same date and stage holds its lease, or the day's predictions partition does not exist yet), 4 done and committed, and an alert fired while
--fail-on-alert is set,
143/130 stopped by SIGTERM/SIGINT (nothing committed). Logs on stderr: readable lines at a terminal,
JSON lines otherwise (--log-format); a failure ends with one line "model-metrics: error: ...".
Summary on stdout.`;

/** How the last line of a failed command begins, whatever the log format. */
export const FAILURE_PREFIX = 'model-metrics: error: ';

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
  // The log settings once the options parsed (the failure line uses them), and the last line of a failure.
  let logSettings: Pick<JobConfig, 'logLevel' | 'logFormat'> | undefined;
  let finalSentence: string | undefined;
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

  /** Logs the warnings of option gathering once the command's logger exists. */
  const warnAll = (logger: Logger, warnings: readonly string[]): void => {
    for (const warning of warnings) logger.warn({ event: 'config_warning', message: sanitizeForLog(warning) }, sanitizeForLog(warning));
  };
  /**
   * Declares a command from the option table: its flags are the table's entries for it; its action
   * gets the gathered options, and any usage error it throws is reworded to name the source of the
   * value (environment variable or config file line).
   */
  const define = (name: CommandName, description: string, action: (options: GatheredOptions) => Promise<void>): Command =>
    addOptions(program.command(name), optionsOf(name))
      .description(description)
      .exitOverride()
      .addHelpText('after', HELP_FOOTER)
      .action(async (flags: Record<string, unknown>) => {
        json = flags.json === true;
        let sources: OptionSources = {};
        try {
          const options = gatherOptions(name, flags, io.env);
          sources = options.sources;
          json = options.raw.json === true;
          logSettings = logSettingsOf(options.raw);
          await action(options);
        } catch (error) {
          throw attributeSource(error, sources);
        }
      });
  /** The day outcomes' verdict for the last line of a failed multi-day command. */
  const outcomesVerdict = (outcomes: readonly DayOutcome[]): void => {
    exitCode = combinedExitCode(outcomes);
    const notOk = outcomes.filter((o) => o.status === 'failed' || o.status === 'not_ready');
    if (notOk.length > 0) {
      const failed = notOk.filter((o) => o.status === 'failed').length;
      finalSentence = `${failed} of ${outcomes.length} day(s) failed and ${notOk.length - failed} not ready (first: ${notOk[0]!.date} ${notOk[0]!.stage}: ${'error' in notOk[0]! ? notOk[0].error : ''})`;
    }
  };

  define('run', 'compute one day and stage', async ({ raw, warnings }) => {
    const date = raw.date as string;
    checkDate(date, '--date');
    const stage = oneOf(raw, 'stage', ['preliminary', 'final'] as const);
    const asOfMicros = asOfOf(raw);
    const config = resolveJobConfig(raw, io.env);
    const { ctx, report } = startReporting(raw, config, 'run', [stage]);
    warnAll(ctx.logger, warnings);
    const result = await dailyRun(ctx, { date, stage, asOfMicros });
    report.outcomes = [{ date, stage, status: result.status, result }];
    print(describeResult(result), result);
  });

  define('backfill', 'compute every day of a range, several at once', async ({ raw, warnings }) => {
    const from = raw.from as string;
    const to = raw.to as string;
    const stage = oneOf(raw, 'stage', ['preliminary', 'final'] as const);
    const concurrency = (raw.concurrency as number | undefined) ?? defaultOf<number>('concurrency', 'backfill');
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
    warnAll(ctx.logger, warnings);
    const outcomes = await backfill(ctx, { from, to, stage, asOfMicros, concurrency, shard });
    report.outcomes = outcomes;
    print(describeOutcomes(outcomes), outcomes);
    outcomesVerdict(outcomes);
  });

  define('scheduled', 'CronJob entry: preliminary for yesterday, final for every closed window without one', async ({ raw, warnings }) => {
    const lookbackIso = (raw.lookback as string | undefined) ?? defaultOf<string>('lookback', 'scheduled');
    let lookbackMicros: number;
    try {
      lookbackMicros = parseLabelWindow(lookbackIso).micros;
    } catch (error) {
      throw new UsageError(`--lookback must be an ISO-8601 duration in days/hours (e.g. P30D), got ${JSON.stringify(lookbackIso)}`, { option: '--lookback' }, { cause: error });
    }
    const asOfMicros = asOfOf(raw);
    const config = resolveJobConfig(raw, io.env);
    const { ctx, report } = startReporting(raw, config, 'scheduled', ['preliminary', 'final']);
    warnAll(ctx.logger, warnings);
    const outcomes = await scheduled(ctx, { asOfMicros, lookbackMicros });
    report.outcomes = outcomes;
    print(describeOutcomes(outcomes), outcomes);
    // A day not ready yet is the normal state of a schedule (its next run catches up): only failures fail it.
    outcomesVerdict(outcomes.filter((o) => o.status !== 'not_ready'));
  });

  define('report', 'the metrics of a date range per model version and window: table, md, csv, json or html (SPEC §7)', async ({ raw, warnings }) => {
    const request = reportRequestOf(raw);
    const format = oneOf(raw, 'format', reportFormats, raw.json === true ? 'json' : defaultOf<string>('format', 'report'));
    const out = raw.out as string | undefined;
    if (format === 'html' && out === undefined) throw new UsageError('--format html writes a file: add --out FILE, e.g. --out report.html', { option: '--out' });
    if (out !== undefined) checkOutFile(out);
    const metrics = openStore(datasetUri(raw, 'metrics'), s3SettingsOf(raw, io.env), '--metrics');
    warnAll(commandLogger(logSettingsOf(raw), 'report'), warnings);
    const text = await renderAny(await buildReport(metrics, request), format);
    if (out === undefined) io.stdout(text);
    else {
      writeOutFile(out, text);
      io.stdout(`report written to ${resolvePath(out)}\n`);
    }
  });

  define('demo', 'generate sample data locally, run both stages and print the tables (no server, no credentials)', async ({ raw, warnings }) => {
    const dir = resolvePath((raw.dir as string | undefined) ?? defaultOf<string>('dir', 'demo'));
    const config = resolveJobConfig({ root: dir, 'log-level': raw['log-level'] ?? defaultOf<string>('log-level', 'demo'), ...(raw['log-format'] === undefined ? {} : { 'log-format': raw['log-format'] }) }, {});
    const ctx = createRunContext(config, 'demo', interrupt.signal);
    warnAll(ctx.logger, warnings);
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
    print(human, result);
    outcomesVerdict(result.outcomes);
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
      error = usageErrorOf(caught, program, argv[0]);
    }
    const code = exitCodeOf(error);
    // The failure line is logged at any level but "silent" (the options may not have parsed, so argv is read as is).
    const levelAt = argv.indexOf('--log-level');
    const silent = logSettings?.logLevel === 'silent' || (levelAt >= 0 && argv[levelAt + 1] === 'silent') || io.env.MODEL_METRICS_LOG_LEVEL === 'silent';
    logger = commandLogger({ ...logSettings, logLevel: silent ? 'silent' : 'error' }, argv[0] ?? 'model-metrics');
    const message = sanitizeForLog(error instanceof Error ? error.message : String(error));
    const details = error instanceof ModelMetricsError ? error.toJSON() : { code: 'E_INTERNAL', stack: error instanceof Error ? error.stack : undefined };
    const status = code === ExitCode.notReady ? 'not_ready' : error instanceof InterruptedError ? 'interrupted' : 'failed';
    logger.error({ event: status === 'failed' ? 'command_failed' : status, exit_code: code, ...details, message }, message);
    summary = { status, exit_code: code, ...details, message };
    if (json) io.stdout(`${JSON.stringify(summary)}\n`);
    finalSentence = message;
    exitCode = code;
  }
  try {
    if (reporting !== undefined) {
      exitCode = alertExitCode(exitCode, reporting.outcomes, reporting.failOnAlert);
      const fallbackLogger = (): Logger => logger ?? commandLogger({ ...logSettings, logLevel: 'warn' }, argv[0] ?? 'model-metrics');
      exitCode = await finishReporting(reporting, { exitCode, summary, startedAtMs, fallbackLogger });
      if (exitCode !== ExitCode.ok && finalSentence === undefined) finalSentence = 'the run succeeded but its summary or run metrics could not be written; see the log above';
    }
    // Whatever the log format, a failed command ends with one plain sentence: what cron mail and CI show.
    if (exitCode !== ExitCode.ok) process.stderr.write(`${FAILURE_PREFIX}${finalSentence ?? `exit ${exitCode}`}\n`);
    return exitCode;
  } finally {
    process.removeListener('SIGTERM', onTerm);
    process.removeListener('SIGINT', onInt);
    destroyStores();
  }
}
