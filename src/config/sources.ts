/**
 * Where a command's options come from (SPEC §6): flags beat `MODEL_METRICS_*` environment
 * variables beat the `--config` file. Every value keeps its source (`--stage`,
 * `MODEL_METRICS_STAGE`, `jobs.yaml line 3`), so a bad value names the place to fix it.
 *
 * What each source may hold, for a command C (the option table says which options C uses):
 * - a flag C does not use: commander refuses it (exit 2, the command and a did-you-mean);
 * - `MODEL_METRICS_X` for an option of another command only: exit 2 naming C; an unknown
 *   `MODEL_METRICS_*` name is a warning with a did-you-mean (a typo must not pass silently,
 *   but other tools may share the prefix);
 * - a config file is shared by every command of a deployment: a top-level key is an option of
 *   some command, used by those that take it and ignored by the others, and a key no command
 *   knows is an error; a top-level key named after a command (`report:`) is that command's own
 *   section, beating the top level, where every key must be an option of that command (exit 2
 *   otherwise, whichever command reads the file).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { LineCounter, isMap, isScalar, parseDocument, type Node, type Pair } from 'yaml';
import { ConfigError, UsageError } from '../errors.js';
import { type CommandName, type OptionSpec, closestName, commandNames, commandsUsing, envNameOf, optionTable, optionsOf } from './options.js';

/** Raw option values by kebab-case name, before validation. */
export type RawOptions = Record<string, unknown>;

/** Where each raw option came from, by option name: `--stage`, `MODEL_METRICS_STAGE` or `FILE line N`. */
export type OptionSources = Record<string, string>;

/** A source's values and where each came from. */
export interface SourcedOptions {
  values: RawOptions;
  sources: OptionSources;
}

/** The variable naming the config file when `--config` is not given. */
export const CONFIG_ENV = 'MODEL_METRICS_CONFIG';

/** Environment variable with the schema registry's `USER:PASSWORD` (`schema check`): kept out of argv, shell history and CI logs. */
export const REGISTRY_USER_ENV = 'MODEL_METRICS_REGISTRY_USER';

/** `MODEL_METRICS_*` names read elsewhere than the option table. */
const OTHER_ENV_NAMES = [CONFIG_ENV, REGISTRY_USER_ENV];

function commandList(commands: readonly string[]): string {
  return commands.join(', ');
}

function isCommandName(name: string): name is CommandName {
  return (commandNames as readonly string[]).includes(name);
}

/** Reads a `--config` file (JSON or YAML, by content) for `command`: its top level and its own section. */
export function readConfigFile(path: string, command: CommandName): SourcedOptions {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file "${path}": ${(error as Error).message}; check --config or ${CONFIG_ENV}`, { option: '--config' }, { cause: error });
  }
  // YAML is a superset of JSON, so one parser serves both formats.
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false });
  const syntax = document.errors[0];
  if (syntax !== undefined) {
    const { line, col } = lineCounter.linePos(syntax.pos[0]);
    const source = text.split('\n')[line - 1] ?? '';
    // One line: the parser's own message carries a multi-line code frame.
    const reason = syntax.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`config file "${path}" line ${line}, column ${col} is neither valid JSON nor YAML: ${reason} (the line reads ${JSON.stringify(source.trim())})`, { option: '--config', line, column: col });
  }
  const root = document.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === undefined))) return { values: {}, sources: {} };
  if (!isMap(root)) {
    throw new ConfigError(`config file "${path}" must hold a mapping of option names to values, found ${Array.isArray(document.toJS()) ? 'a list' : typeof document.toJS()}`, { option: '--config' });
  }
  const where = (pair: Pair): string => `${basename(path)} line ${lineCounter.linePos((pair.key as Node).range![0]).line}`;
  const top: SourcedOptions = { values: {}, sources: {} };
  const section: SourcedOptions = { values: {}, sources: {} };
  for (const pair of root.items) {
    const key = String((pair.key as Node & { value?: unknown })?.value ?? pair.key);
    if (isCommandName(key) && isMap(pair.value)) {
      for (const inner of pair.value.items) {
        const name = String((inner.key as Node & { value?: unknown })?.value ?? inner.key);
        if (!optionsOf(key).some((spec) => spec.name === name)) {
          const others = commandsUsing(name);
          const hint = others.length > 0 ? `; it is an option of ${commandList(others)}` : unknownHint(name, optionsOf(key).map((s) => s.name));
          throw new ConfigError(`config file "${path}" (${where(inner)}): section "${key}" sets "${name}", which ${key} does not use${hint}`, { option: '--config', field: `${key}.${name}`, command: key });
        }
        if (key === command) {
          section.values[name] = (inner.value as Node | null)?.toJSON() ?? null;
          section.sources[name] = `${where(inner)} ("${key}.${name}")`;
        }
      }
      continue;
    }
    if (commandsUsing(key).length === 0) {
      throw new ConfigError(`config file "${path}" (${where(pair)}): unknown option "${key}"${unknownHint(key, [...new Set(optionTable.map((s) => s.name)), ...commandNames])}`, { option: '--config', field: key });
    }
    if (optionsOf(command).some((spec) => spec.name === key)) {
      top.values[key] = (pair.value as Node | null)?.toJSON() ?? null;
      top.sources[key] = `${where(pair)} ("${key}")`;
    }
  }
  return { values: { ...top.values, ...section.values }, sources: { ...top.sources, ...section.sources } };
}

function unknownHint(name: string, candidates: readonly string[]): string {
  const suggestion = closestName(name, candidates);
  return suggestion === undefined ? `; known: ${[...candidates].sort().join(', ')}` : `; did you mean "${suggestion}"?`;
}

/** What the environment holds for `command`, and warnings about `MODEL_METRICS_*` names nothing reads. */
export function readEnvOptions(env: NodeJS.ProcessEnv, command: CommandName): SourcedOptions & { warnings: string[] } {
  const own = optionsOf(command);
  const out: SourcedOptions & { warnings: string[] } = { values: {}, sources: {}, warnings: [] };
  const known = [...new Set(optionTable.map((spec) => envNameOf(spec))), ...OTHER_ENV_NAMES];
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith('MODEL_METRICS_') || value === undefined || value === '') continue;
    const spec = own.find((s) => envNameOf(s) === variable);
    if (spec !== undefined) {
      out.values[spec.name] = value;
      out.sources[spec.name] = variable;
    } else if (!known.includes(variable)) {
      const suggestion = closestName(variable, known);
      out.warnings.push(`environment variable ${variable} is not an option of any command and is ignored${suggestion === undefined ? '' : `; did you mean ${suggestion}?`}`);
    } else if (!OTHER_ENV_NAMES.includes(variable)) {
      const name = optionTable.find((s) => envNameOf(s) === variable)!.name;
      throw new UsageError(
        `${variable} is set, but ${command} does not use --${name} (an option of ${commandList(commandsUsing(name))}); unset it for this command, or put "${name}" at the top level of --config, which every command shares`,
        { option: `--${name}`, command, variable },
      );
    }
  }
  return out;
}

/** Merges sources by precedence: flags beat environment beat file (SPEC §6). */
export function mergeSources(...lowestFirst: readonly SourcedOptions[]): SourcedOptions {
  const merged: SourcedOptions = { values: {}, sources: {} };
  for (const source of lowestFirst) {
    Object.assign(merged.values, source.values);
    Object.assign(merged.sources, source.sources);
  }
  return merged;
}

/** The required options of a command that no source gave, as one UsageError naming them all. */
export function checkRequired(command: CommandName, values: RawOptions, examples: Record<string, string>): void {
  const missing: OptionSpec[] = optionsOf(command).filter((spec) => spec.required === true && values[spec.name] === undefined);
  if (missing.length === 0) return;
  const flags = missing.map((spec) => `--${spec.name}`);
  const example = missing.map((spec) => `--${spec.name} ${examples[spec.name] ?? spec.arg ?? 'VALUE'}`).join(' ');
  throw new UsageError(`${command}: ${flags.length === 1 ? `${flags[0]} is` : `${flags.join(', ')} are`} required, e.g. ${example}`, { option: flags[0], missing: flags, command });
}

/**
 * A usage error about an option that came from the environment or a file, reworded to name that
 * source (the message of a flag already names the flag).
 */
export function attributeSource(error: unknown, sources: OptionSources): unknown {
  if (!(error instanceof UsageError) || typeof error.context.option !== 'string') return error;
  const name = error.context.option.replace(/^--/, '');
  const source = sources[name];
  if (source === undefined || source.startsWith('--') || error.message.includes(source)) return error;
  return new UsageError(`${error.message} (the value comes from ${source})`, { ...error.context, source }, { cause: error.cause });
}
