/**
 * `model-metrics schema check` against folders of real .avsc files: the compatibility gate of
 * issue 3. The verdicts and the explanations run the real CLI as a child process; the many
 * bad-usage cases run `main()` in-process (it never exits the process) to keep the file quick.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../jobs/main.js';
import { describeRun, runCli } from '../helpers/cli.js';

const env = { PATH: process.env.PATH ?? '' };
let dir: string;

const record = (fields: unknown[]): string => JSON.stringify({ type: 'record', name: 'Event', namespace: 'acme', fields }, null, 2);
const id = { name: 'id', type: 'string' };
const value = { name: 'value', type: 'double' };

/** Runs main() in-process with --json and --log-level silent; returns the exit code and the parsed stdout. */
async function inProcess(args: string[]): Promise<{ code: number; output: Record<string, unknown> }> {
  let stdout = '';
  const code = await main([...args, '--json', '--log-level', 'silent'], { stdout: (text) => (stdout += text), env: {} });
  return { code, output: JSON.parse(stdout) as Record<string, unknown> };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mm-schema-cli-'));
  // A history v1..v10 where only v10 gave `note` a value: BACKWARD against the latest must pick v10, not v9.
  await mkdir(join(dir, 'events'));
  for (let n = 1; n <= 9; n++) await writeFile(join(dir, 'events', `v${n}.avsc`), record([id, value]));
  await writeFile(join(dir, 'events', 'v10.avsc'), record([id, value, { name: 'note', type: 'string', default: '' }]));
  await writeFile(join(dir, 'events', 'README.md'), 'not a version');
  await writeFile(join(dir, 'requires-note.avsc'), record([id, value, { name: 'note', type: 'string' }]));
  await writeFile(join(dir, 'stringly.avsc'), record([id, { name: 'value', type: 'string' }, { name: 'extra', type: 'int' }]));
  await writeFile(join(dir, 'not-json.avsc'), '{"type": "record",');
  await writeFile(join(dir, 'not-avro.avsc'), record([id, { name: 'value', type: 'decimal' }]));
  await mkdir(join(dir, 'empty'));
  await writeFile(join(dir, 'empty', 'notes.txt'), 'no versions here');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('schema check (child process)', () => {
  it('passes prediction v2 against schemas/prediction/ (BACKWARD_TRANSITIVE), checking it against v1 only', async () => {
    const result = await runCli(['schema', 'check', 'schemas/prediction/v2.avsc', '--against', 'schemas/prediction/', '--mode', 'BACKWARD_TRANSITIVE'], env);
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout).toBe(
      'compatible: new schema (schemas/prediction/v2.avsc) passes BACKWARD_TRANSITIVE against schemas/prediction/ (1 version(s)), 1 check(s)\n' +
        '  ok     backward: new schema (schemas/prediction/v2.avsc) reading data written with v1 (schemas/prediction/v1.avsc)\n',
    );
    expect(result.nonJsonStderr).toEqual([]);
  });

  it('fails prediction v2 under FORWARD: v1 readers cannot follow the rename; exit 1 naming the field and both schemas', async () => {
    const result = await runCli(['schema', 'check', 'schemas/prediction/v2.avsc', '--against', 'schemas/prediction/', '--mode', 'forward'], env);
    expect(result.code, describeRun(result)).toBe(1);
    expect(result.stdout).toContain('INCOMPATIBLE: new schema (schemas/prediction/v2.avsc) fails FORWARD against schemas/prediction/ (1 version(s)), 1 of 1 check(s) failed');
    expect(result.stdout).toContain('FAILED forward: v1 (schemas/prediction/v1.avsc) reading data written with new schema (schemas/prediction/v2.avsc)');
    expect(result.stdout).toContain('/fields/featureset_version (field featureset_version) READER_FIELD_MISSING_DEFAULT_VALUE: reader "string", writer no field featureset_version in "ml.monitoring.PredictionEvent"');
    expect(result.lastError()).toMatchObject({ event: 'command_failed', exit_code: 1, code: 'E_SCHEMA_INCOMPATIBLE', field: 'featureset_version', mode: 'FORWARD' });
    expect(result.nonJsonStderr).toEqual([]);
  });

  it('orders versions numerically: BACKWARD compares with v10, the latest', async () => {
    const result = await runCli(['schema', 'check', join(dir, 'requires-note.avsc'), '--against', join(dir, 'events')], env);
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout).toContain(`reading data written with v10 (${join(dir, 'events', 'v10.avsc')})`);
    const transitive = await runCli(['schema', 'check', join(dir, 'requires-note.avsc'), '--against', join(dir, 'events'), '--mode', 'BACKWARD_TRANSITIVE', '--json'], env);
    expect(transitive.code, describeRun(transitive)).toBe(1);
    const output = transitive.json<{ status: string; code: string; history: string[]; checks: Array<{ writer: string; compatible: boolean }> }>();
    expect(output).toMatchObject({ status: 'failed', code: 'E_SCHEMA_INCOMPATIBLE' });
    expect(output.history).toEqual(Array.from({ length: 10 }, (_, i) => `v${i + 1} (${join(dir, 'events', `v${i + 1}.avsc`)})`));
    expect(output.checks.map((c) => [c.writer.split(' ')[0], c.compatible])).toEqual([['v10', true], ...Array.from({ length: 9 }, (_, i) => [`v${9 - i}`, false])]);
  });

  it('reports every incompatibility with --json, each with path, field, reader, writer and reason', async () => {
    const result = await runCli(['schema', 'check', join(dir, 'stringly.avsc'), '--against', join(dir, 'events'), '--mode', 'FULL', '--json'], env);
    expect(result.code, describeRun(result)).toBe(1);
    const output = result.json<{ exit_code: number; checks: Array<{ direction: string; incompatibilities: unknown[] }> }>();
    expect(output.exit_code).toBe(1);
    expect(output.checks.map((c) => [c.direction, c.incompatibilities])).toEqual([
      ['backward', [
        { type: 'TYPE_MISMATCH', path: '/fields/value/type', field: 'value', reader: '"string"', writer: '"double"', message: "a writer's double cannot be read as string (a reader string accepts string, bytes)" },
        { type: 'READER_FIELD_MISSING_DEFAULT_VALUE', path: '/fields/extra', field: 'extra', reader: '"int"', writer: 'no field extra in "acme.Event"', message: 'reader field "extra" is not in the writer and has no default; give it a default' },
      ]],
      ['forward', [
        { type: 'TYPE_MISMATCH', path: '/fields/value/type', field: 'value', reader: '"double"', writer: '"string"', message: "a writer's string cannot be read as double (a reader double accepts double, int, long, float)" },
      ]],
    ]);
  });

  it('exits 2 for schema without a subcommand', async () => {
    const result = await runCli(['schema'], env);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.lastError()).toMatchObject({ code: 'E_USAGE', message: expect.stringContaining('a schema subcommand is required: check') });
  });

  it('exits 2 with a JSON log line for bad usage', async () => {
    const result = await runCli(['schema', 'check', join(dir, 'missing.avsc'), '--against', join(dir, 'events')], env);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.lastError()).toMatchObject({ code: 'E_USAGE', option: 'schema file', exit_code: 2 });
    expect(result.nonJsonStderr).toEqual([]);
  });
});

describe('schema check: bad usage exits 2 before anything is compared (in-process)', () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ['a missing schema file', () => [join(dir, 'missing.avsc'), '--against', join(dir, 'events')], /^schema file .*missing\.avsc does not exist$/],
    ['a schema file that is not JSON', () => [join(dir, 'not-json.avsc'), '--against', join(dir, 'events')], /not-json\.avsc is not valid JSON \(.*\); an \.avsc file holds one Avro schema as JSON$/],
    ['a schema file that is not an Avro schema', () => [join(dir, 'not-avro.avsc'), '--against', join(dir, 'events')], /^new schema \(.*not-avro\.avsc\) is not a valid Avro schema: .*decimal/],
    ['an unknown mode', () => [join(dir, 'requires-note.avsc'), '--against', join(dir, 'events'), '--mode', 'SIDEWAYS'], /^--mode must be one of BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE; got "SIDEWAYS"$/],
    ['a folder without versions', () => [join(dir, 'requires-note.avsc'), '--against', join(dir, 'empty')], /empty holds no vN\.avsc file; there is nothing to check compatibility against$/],
    ['a folder that does not exist', () => [join(dir, 'requires-note.avsc'), '--against', join(dir, 'nowhere')], /nowhere does not exist; give the folder of vN\.avsc versions/],
    ['the first version checked against its own folder', () => ['schemas/prediction/v1.avsc', '--against', 'schemas/prediction'], /holds no version before v1 \(v1\.avsc is the first\)/],
    ['the schema file itself as --against', () => [join(dir, 'requires-note.avsc'), '--against', join(dir, 'requires-note.avsc')], /requires-note\.avsc is the schema file itself/],
    ['a history version that is not JSON', () => [join(dir, 'requires-note.avsc'), '--against', join(dir, 'not-json.avsc')], /^--against .*not-json\.avsc is not valid JSON/],
    ['both --against and --registry', () => [join(dir, 'requires-note.avsc'), '--against', join(dir, 'events'), '--registry', 'http://127.0.0.1:9', '--subject', 's'], /^--against and --registry are exclusive/],
    ['neither --against nor --registry', () => [join(dir, 'requires-note.avsc')], /^the history to check against is required: --against DIR or --registry URL --subject S/],
    ['--registry without --subject', () => [join(dir, 'requires-note.avsc'), '--registry', 'http://127.0.0.1:9'], /^--registry needs --subject S/],
    ['--subject with --against', () => [join(dir, 'requires-note.avsc'), '--against', join(dir, 'events'), '--subject', 's'], /^--subject only applies with --registry$/],
    ['a registry timeout that is not a number of seconds', () => [join(dir, 'requires-note.avsc'), '--registry', 'http://127.0.0.1:9', '--subject', 's', '--registry-timeout', 'soon'], /^--registry-timeout must be a number of seconds from 0 to 600, got "soon"$/],
    ['a registry URL that is not http(s)', () => [join(dir, 'requires-note.avsc'), '--registry', 'file:///etc', '--subject', 's'], /^--registry must be an http:\/\/ or https:\/\/ URL/],
    ['an unknown option', () => [join(dir, 'requires-note.avsc'), '--against', join(dir, 'events'), '--strict'], /unknown option '--strict'/],
  ];

  it.each(cases)('%s', async (_, args, message) => {
    const { code, output } = await inProcess(['schema', 'check', ...args()]);
    expect(code, JSON.stringify(output)).toBe(2);
    expect(output).toMatchObject({ status: 'failed', exit_code: 2, code: 'E_USAGE' });
    expect(String(output['message'])).toMatch(message);
  });

  it('a missing schema file argument', async () => {
    const { code, output } = await inProcess(['schema', 'check', '--against', join(dir, 'events')]);
    expect(code).toBe(2);
    expect(String(output['message'])).toContain("missing required argument 'SCHEMA_FILE'");
  });


  it('NONE compares nothing and passes', async () => {
    const { code, output } = await inProcess(['schema', 'check', join(dir, 'stringly.avsc'), '--against', join(dir, 'events'), '--mode', 'none']);
    expect(code).toBe(0);
    expect(output).toMatchObject({ status: 'compatible', mode: 'NONE', checks: [] });
  });
});
