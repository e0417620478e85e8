/**
 * `model-metrics schema check NEW.avsc --against DIR | --registry URL --subject S [--mode MODE]`: the
 * compatibility gate of issue 3. Exit 0 when NEW is compatible under the mode (Confluent's meaning,
 * default BACKWARD); otherwise the field-level explanation goes to stdout and a SchemaIncompatibleError
 * ends the command, which program.ts maps to exit 1 like every other error (`exitCodeOf`); bad usage is a
 * UsageError (exit 2). Nothing here touches a dataset.
 */
import { Option, type Command } from 'commander';
import { REGISTRY_USER_ENV } from '../config/sources.js';
import { SchemaIncompatibleError, UsageError } from '../errors.js';
import {
  compatibilityModes,
  defaultCompatibilityMode,
  parseCompatibilityMode,
  checkAgainstHistory,
  type CompatibilityReport,
  type PairCheck,
} from '../schema/check.js';
import type { SchemaHistory } from '../schema/history.js';

/** Where the command writes and what environment it reads (program.ts's CliIo). */
export interface SchemaCommandIo {
  stdout: (text: string) => void;
  env: NodeJS.ProcessEnv;
}


export { REGISTRY_USER_ENV };

/** Default per-request timeout of registry calls, in seconds. */
const DEFAULT_REGISTRY_TIMEOUT_S = 30;

/** Extra attempts of a registry request after a transient failure. */
const REGISTRY_RETRIES = 2;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The flags of `schema check`, as commander hands them over. */
interface CheckFlags {
  against?: string;
  registry?: string;
  subject?: string;
  registryUser?: string;
  registryTimeout?: string;
  mode?: string;
  json?: boolean;
  logLevel?: string;
}

/** How the history will be read, once the flags are validated. */
type HistorySource =
  | { kind: 'folder'; against: string }
  | { kind: 'registry'; url: string; subject: string; userInfo: string | undefined; timeoutMs: number };

/** Validates the flag combination before anything is read. */
function historySourceOf(flags: CheckFlags, env: NodeJS.ProcessEnv): HistorySource {
  const example = 'e.g. --against schemas/prediction/ or --registry https://registry.example.com --subject predictions-value';
  if (flags.against !== undefined && flags.registry !== undefined) {
    throw new UsageError(`--against and --registry are exclusive: check against a folder or a registry, not both; ${example}`, { option: '--against' });
  }
  if (flags.against === undefined && flags.registry === undefined) {
    throw new UsageError(`the history to check against is required: --against DIR or --registry URL --subject S; ${example}`, { option: '--against' });
  }
  if (flags.against !== undefined) {
    for (const [value, option] of [[flags.subject, '--subject'], [flags.registryUser, '--registry-user'], [flags.registryTimeout, '--registry-timeout']] as const) {
      if (value !== undefined) throw new UsageError(`${option} only applies with --registry`, { option });
    }
    return { kind: 'folder', against: flags.against };
  }
  if (flags.subject === undefined) {
    throw new UsageError('--registry needs --subject S, the subject whose versions to check against (e.g. predictions-value)', { option: '--subject' });
  }
  let timeoutS = DEFAULT_REGISTRY_TIMEOUT_S;
  if (flags.registryTimeout !== undefined) {
    timeoutS = Number(flags.registryTimeout);
    if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > 600) {
      throw new UsageError(`--registry-timeout must be a number of seconds from 0 to 600, got ${JSON.stringify(flags.registryTimeout)}`, { option: '--registry-timeout' });
    }
  }
  return {
    kind: 'registry',
    url: flags.registry!,
    subject: flags.subject,
    // An unset CI secret arrives as an empty variable: that means no credentials.
    userInfo: flags.registryUser ?? (env[REGISTRY_USER_ENV] === '' ? undefined : env[REGISTRY_USER_ENV]),
    timeoutMs: Math.round(timeoutS * 1000),
  };
}

/** One check as report lines: its verdict, then one line per incompatibility. */
function describeCheck(check: PairCheck): string[] {
  const verdict = check.compatible ? 'ok    ' : 'FAILED';
  const head = `  ${verdict} ${check.direction}: ${check.reader} reading data written with ${check.writer}`;
  return [
    head,
    ...check.incompatibilities.map(
      (i) => `           ${i.path}${i.field === undefined ? '' : ` (field ${i.field})`} ${i.type}: reader ${i.reader}, writer ${i.writer}: ${i.message}`,
    ),
  ];
}

/** The human report: verdict, then every check with its incompatibilities. */
function renderCompatibilityReport(report: CompatibilityReport, source: string): string {
  const failed = report.checks.filter((check) => !check.compatible).length;
  const against = `${source} (${report.history.length} version(s))`;
  const verdict = report.compatible
    ? `compatible: ${report.candidate} passes ${report.mode} against ${against}, ${report.checks.length} check(s)`
    : `INCOMPATIBLE: ${report.candidate} fails ${report.mode} against ${against}, ${failed} of ${report.checks.length} check(s) failed`;
  return [verdict, ...report.checks.flatMap(describeCheck)].join('\n');
}

/** The one-line error of an incompatible report (logs are single lines), naming the first problem. */
function incompatibleError(report: CompatibilityReport, source: string, file: string): SchemaIncompatibleError {
  const failedCheck = report.checks.find((check) => !check.compatible)!;
  const first = failedCheck.incompatibilities[0]!;
  const count = report.checks.reduce((sum, check) => sum + check.incompatibilities.length, 0);
  return new SchemaIncompatibleError(
    `${file} is not ${report.mode} compatible with ${source}: ${count} incompatibilit${count === 1 ? 'y' : 'ies'}; ` +
      `first: ${failedCheck.reader} cannot read ${failedCheck.writer} at ${first.path}${first.field === undefined ? '' : ` (field ${first.field})`}: ` +
      `reader ${first.reader}, writer ${first.writer}: ${first.message}`,
    {
      schema: file,
      against: source,
      ...(first.field === undefined ? {} : { field: first.field }),
      mode: report.mode,
      compatible: false,
      history: report.history,
      checks: report.checks,
    },
  );
}

async function runCheck(file: string, flags: CheckFlags, io: SchemaCommandIo): Promise<void> {
  if (flags.logLevel !== undefined && !LOG_LEVELS.includes(flags.logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(flags.logLevel)}`, { option: '--log-level' });
  }
  const mode = flags.mode === undefined ? defaultCompatibilityMode : parseCompatibilityMode(flags.mode, '--mode');
  const source = historySourceOf(flags, io.env);
  // Imported here, not at the top: declaring the command (every start of the CLI) needs neither.
  const [{ loadFolderHistory, readSchemaFile }, { loadRegistryHistory }] = await Promise.all([import('../schema/history.js'), import('../schema/registry.js')]);
  const candidate = readSchemaFile(file, `new schema (${file})`, 'schema file');
  const history: SchemaHistory =
    source.kind === 'folder'
      ? loadFolderHistory(source.against, file)
      : await loadRegistryHistory({
          url: source.url,
          subject: source.subject,
          ...(source.userInfo === undefined ? {} : { userInfo: source.userInfo }),
          timeoutMs: source.timeoutMs,
          retries: REGISTRY_RETRIES,
        });
  const report = checkAgainstHistory(candidate, history.versions, mode);
  if (!report.compatible) {
    if (flags.json !== true) io.stdout(`${renderCompatibilityReport(report, history.source)}\n`);
    // program.ts prints the error (with the whole report in its context) as JSON under --json.
    throw incompatibleError(report, history.source, file);
  }
  const output = { status: 'compatible', exit_code: 0, schema: file, against: history.source, ...report };
  io.stdout(`${flags.json === true ? JSON.stringify(output) : renderCompatibilityReport(report, history.source)}\n`);
}

/** Adds `schema` (with its subcommand `check`) to the program; `program.command` passes on exitOverride and output settings. */
export function registerSchemaCommand(program: Command, io: SchemaCommandIo): void {
  const schema = program
    .command('schema')
    .description('Avro schema tools: check a new schema version against its history before producers use it')
    .action(() => {
      throw new UsageError('a schema subcommand is required: check, e.g. model-metrics schema check schemas/prediction/v3.avsc --against schemas/prediction/', {});
    });
  schema
    .command('check')
    .description(`exit 0 when SCHEMA_FILE is compatible with the history under --mode, 1 with a field-level explanation when not, 2 on bad usage`)
    .argument('<SCHEMA_FILE>', 'the new .avsc file')
    .addOption(new Option('--against <DIR>', 'folder of vN.avsc versions (or one .avsc file) to check against; a SCHEMA_FILE inside it is checked against the versions before it'))
    .addOption(new Option('--registry <URL>', 'Confluent-compatible schema registry to read the history from, instead of --against'))
    .addOption(new Option('--subject <SUBJECT>', 'registry subject whose versions form the history (with --registry)'))
    .addOption(new Option('--registry-user <USER:PASSWORD>', `basic-auth credentials of the registry (prefer the ${REGISTRY_USER_ENV} environment variable)`))
    .addOption(new Option('--registry-timeout <SECONDS>', `timeout of each registry request (default: ${DEFAULT_REGISTRY_TIMEOUT_S})`))
    .addOption(new Option('--mode <MODE>', `compatibility mode, as in Confluent Schema Registry: ${compatibilityModes.join(', ')} (default: ${defaultCompatibilityMode})`))
    .addOption(new Option('--json', 'print the report as JSON on stdout'))
    .addOption(new Option('--log-level <LEVEL>', 'level of the JSON log lines on stderr (silent: none)'))
    .action(async (file: string, flags: CheckFlags) => runCheck(file, flags, io));
}
