/**
 * The command line (SPEC §6) without its commands: commander, the flags of the option table
 * merged over `MODEL_METRICS_*` variables and a `--config` file, parse errors as usage errors
 * naming the option, signals, the summary on stdout, the failure's log line and plain last line,
 * and the exit code (0 done, 1 failed, 2 bad usage, 3 not ready, 4 alert). The commands are wired in
 * by jobs/main.ts, so nothing in cli/ imports jobs/. It never calls process.exit, so tests can run
 * it in-process too. Only commander, the option table and the config-file reader load up front, so
 * `--version` and `--help` stay cheap; what a command needs to run (value coercion, the logger, the
 * reporting, the day outcomes) is imported once its action starts.
 */
import { Command, CommanderError, Option } from 'commander';
import { type CommandName, type OptionSpec, camelNameOf, commandsUsing, envNameOf, optionsOf } from '../config/options.js';
import type { JobConfig } from '../config/resolve.js';
import { CONFIG_ENV, type OptionSources, type RawOptions, type SourcedOptions, attributeSource, checkRequired, mergeSources, readConfigFile, readEnvOptions } from '../config/sources.js';
import { ExitCode, InterruptedError, ModelMetricsError, UsageError, exitCodeOf } from '../errors.js';
import { formatMicros, parseTimestamp } from '../calendar.js';
import type { Logger } from '../observability/log.js';
import { JOB_VERSION } from '../package-root.js';
import type { RunContext } from '../pipeline/daily.js';
import type { DayOutcome, Stage } from '../run-results.js';
import { destroyStores } from '../storage/client-cache.js';
import type { Reporting } from './reporting.js';

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
export interface GatheredOptions {
  raw: RawOptions;
  sources: OptionSources;
  /** Warnings to log once the command has a logger (unknown MODEL_METRICS_* names). */
  warnings: string[];
}

/** Raw options in precedence order, coerced to their kinds. */
async function gatherOptions(command: CommandName, flags: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<GatheredOptions> {
  const { coerceAll } = await import('../config/resolve.js');
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
export function asOfOf(raw: RawOptions): number {
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

/** What a command's wiring (jobs/main.ts) gets to declare and run its commands. */
export interface CommandWiring {
  program: Command;
  io: CliIo;
  /** Aborted by SIGTERM / SIGINT. */
  signal: AbortSignal;
  /** Declares a command from the option table (see below). */
  define(name: CommandName, description: string, action: (options: GatheredOptions) => Promise<void>): Command;
  /** Prints the summary: `human` as text, `machine` under --json (and in --summary-file). */
  print(human: string, machine: unknown): void;
  /** Validates a computing command's reporting options, then opens its run context and logger. */
  startReporting(raw: RawOptions, config: JobConfig, command: 'run' | 'backfill' | 'scheduled', stages: Stage[]): Promise<{ ctx: RunContext; report: Reporting }>;
  /** The day outcomes' exit code and, when some failed or were not ready, the last line. */
  outcomesVerdict(outcomes: readonly DayOutcome[]): Promise<void>;
  /** Logs the warnings of option gathering once the command's logger exists. */
  warnAll(logger: Logger, warnings: readonly string[]): void;
}

/** How the commands are wired in: their declarations, and the alert rule of the exit code (SPEC §8). */
export interface ProgramHooks {
  register(cli: CommandWiring): void;
  alertExitCode(exitCode: number, outcomes: readonly DayOutcome[], failOnAlert: boolean): number;
}

/** The default CliIo: the process's stdout and environment. */
export const processIo: CliIo = { stdout: (t) => process.stdout.write(t), env: process.env };

/** Runs the program on argv (without node and script) with the commands `hooks` registers; returns the exit code. */
export async function runProgram(argv: readonly string[], io: CliIo, hooks: ProgramHooks): Promise<number> {
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
  const startReporting = async (raw: RawOptions, config: JobConfig, command: 'run' | 'backfill' | 'scheduled', stages: Stage[]): Promise<{ ctx: RunContext; report: Reporting }> => {
    const [{ reportingOf }, { createRunContext }] = await Promise.all([import('./reporting.js'), import('./context.js')]);
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

  // The log module, imported by a command's action before it runs (warnAll is only called from there).
  let log: typeof import('../observability/log.js') | undefined;
  const warnAll = (logger: Logger, warnings: readonly string[]): void => {
    const { sanitizeForLog } = log!;
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
          const [{ logSettingsOf }, logModule] = await Promise.all([import('../config/resolve.js'), import('../observability/log.js')]);
          log = logModule;
          const options = await gatherOptions(name, flags, io.env);
          sources = options.sources;
          json = options.raw.json === true;
          logSettings = logSettingsOf(options.raw);
          await action(options);
        } catch (error) {
          throw attributeSource(error, sources);
        }
      });
  const outcomesVerdict = async (outcomes: readonly DayOutcome[]): Promise<void> => {
    const { combinedExitCode } = await import('../pipeline/outcome.js');
    exitCode = combinedExitCode(outcomes);
    const notOk = outcomes.filter((o) => o.status === 'failed' || o.status === 'not_ready');
    if (notOk.length > 0) {
      const failed = notOk.filter((o) => o.status === 'failed').length;
      finalSentence = `${failed} of ${outcomes.length} day(s) failed and ${notOk.length - failed} not ready (first: ${notOk[0]!.date} ${notOk[0]!.stage}: ${'error' in notOk[0]! ? notOk[0].error : ''})`;
    }
  };

  hooks.register({ program, io, signal: interrupt.signal, define, print, startReporting, outcomesVerdict, warnAll });

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
    const [{ commandLogger }, { sanitizeForLog }] = await Promise.all([import('./context.js'), import('../observability/log.js')]);
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
      const [{ finishReporting }, { commandLogger }] = await Promise.all([import('./reporting.js'), import('./context.js')]);
      exitCode = hooks.alertExitCode(exitCode, reporting.outcomes, reporting.failOnAlert);
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
