/**
 * infra/athena/ddl.mjs prints the Glue/Athena DDL of the curated, metrics and alerts datasets. Its
 * output (a real process) is parsed by a strict parser of the Hive DDL subset it uses (a typo, an
 * unbalanced bracket or a stray quote fails), and checked against the package's latest .avsc: one
 * column per field, in order, with the Hive type the Avro SerDe derives; the reader schema literal is
 * the .avsc itself (docs and timestamp logical types left out) and resolves every older version;
 * partitions are the job's own `stage=…/dt=…` layout through partition projection. Athena itself
 * cannot run here.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAvroType } from '../../src/avro/avro-types.js';
import { type SchemaName, loadSchemaVersion, schemaVersions } from '../../src/avro/schemas.js';
import { outputPartition } from '../../src/dataset/layout.js';
import { REPO_ROOT } from '../helpers/cli.js';

const SCRIPT = path.join(REPO_ROOT, 'infra', 'athena', 'ddl.mjs');

/** Runs the generator; its stdout, stderr and exit status. */
function ddl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

type Token = { kind: 'word' | 'ident' | 'string' | 'symbol'; text: string };

/** Tokens of a DDL file: `--` comments dropped, 'strings', `identifiers`, words and symbols. */
function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) i++;
    else if (sql.startsWith('--', i)) i = sql.indexOf('\n', i) < 0 ? sql.length : sql.indexOf('\n', i);
    else if (c === "'") {
      let text = '';
      for (i++; ; i++) {
        if (i >= sql.length) throw new Error('unterminated string literal');
        if (sql[i] === "'") break;
        else text += sql[i];
      }
      i++;
      tokens.push({ kind: 'string', text });
    } else if (c === '`') {
      const end = sql.indexOf('`', i + 1);
      if (end < 0) throw new Error('unterminated `identifier`');
      tokens.push({ kind: 'ident', text: sql.slice(i + 1, end) });
      i = end + 1;
    } else if (/[A-Za-z_]/.test(c)) {
      const word = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(sql.slice(i))![0];
      tokens.push({ kind: 'word', text: word });
      i += word.length;
    } else if ('(),=;<>:'.includes(c)) tokens.push({ kind: 'symbol', text: sql[i++]! });
    else throw new Error(`unexpected character ${JSON.stringify(c)} at ${i}`);
  }
  return tokens;
}

/** A parsed CREATE EXTERNAL TABLE. */
interface Table {
  name: string;
  columns: Array<{ name: string; type: string }>;
  partitions: Array<{ name: string; type: string }>;
  serde: string;
  serdeProperties: Record<string, string>;
  storedAs: string;
  location: string;
  tableProperties: Record<string, string>;
}

/** Parses the statements of a file: CREATE DATABASE and CREATE EXTERNAL TABLE of the form infra/athena uses. */
function parse(sql: string): { databases: string[]; tables: Table[] } {
  const tokens = tokenize(sql);
  let at = 0;
  const peek = (): Token | undefined => tokens[at];
  const next = (): Token => {
    const token = tokens[at++];
    if (token === undefined) throw new Error('unexpected end of file');
    return token;
  };
  const keyword = (...words: string[]): void => {
    for (const word of words) {
      const token = next();
      if (token.kind !== 'word' || token.text.toUpperCase() !== word) throw new Error(`expected ${word}, got ${token.text}`);
    }
  };
  const symbol = (s: string): void => {
    const token = next();
    if (token.kind !== 'symbol' || token.text !== s) throw new Error(`expected ${s}, got ${token.text}`);
  };
  const isSymbol = (s: string): boolean => peek()?.kind === 'symbol' && peek()?.text === s;
  const string = (): string => {
    const token = next();
    if (token.kind !== 'string') throw new Error(`expected a string literal, got ${token.text}`);
    return token.text;
  };
  const type = (): string => {
    const token = next();
    if (token.kind !== 'word') throw new Error(`expected a type, got ${token.text}`);
    const name = token.text.toLowerCase();
    if (name === 'map') {
      symbol('<');
      const key = type();
      symbol(',');
      const value = type();
      symbol('>');
      return `map<${key},${value}>`;
    }
    if (name === 'array') {
      symbol('<');
      const item = type();
      symbol('>');
      return `array<${item}>`;
    }
    if (!['string', 'double', 'float', 'bigint', 'int', 'boolean'].includes(name)) throw new Error(`unknown type ${token.text}`);
    return name;
  };
  const columnList = (): Array<{ name: string; type: string }> => {
    symbol('(');
    const columns: Array<{ name: string; type: string }> = [];
    do {
      const name = next();
      if (name.kind !== 'ident') throw new Error(`column names are quoted with backticks, got ${name.text}`);
      columns.push({ name: name.text, type: type() });
    } while (isSymbol(',') && next());
    symbol(')');
    return columns;
  };
  const properties = (): Record<string, string> => {
    symbol('(');
    const props: Record<string, string> = {};
    do {
      const key = string();
      symbol('=');
      if (key in props) throw new Error(`property ${key} twice`);
      props[key] = string();
    } while (isSymbol(',') && next());
    symbol(')');
    return props;
  };
  const databases: string[] = [];
  const tables: Table[] = [];
  while (peek() !== undefined) {
    keyword('CREATE');
    if (peek()?.text.toUpperCase() === 'DATABASE') {
      keyword('DATABASE', 'IF', 'NOT', 'EXISTS');
      databases.push(next().text);
    } else {
      keyword('EXTERNAL', 'TABLE', 'IF', 'NOT', 'EXISTS');
      const name = next().text;
      const columns = columnList();
      keyword('PARTITIONED', 'BY');
      const partitions = columnList();
      keyword('ROW', 'FORMAT', 'SERDE');
      const serde = string();
      keyword('WITH', 'SERDEPROPERTIES');
      const serdeProperties = properties();
      keyword('STORED', 'AS');
      const storedAs = next().text;
      keyword('LOCATION');
      const location = string();
      keyword('TBLPROPERTIES');
      tables.push({ name, columns, partitions, serde, serdeProperties, storedAs, location, tableProperties: properties() });
    }
    symbol(';');
  }
  return { databases, tables };
}

/** The Hive type the Avro SerDe gives an Avro type (nullable unions are their branch; timestamps stay bigint micros). */
function hiveType(avro: unknown): string {
  if (Array.isArray(avro)) {
    const branches = avro.filter((b) => b !== 'null');
    expect(branches).toHaveLength(1);
    return hiveType(branches[0]);
  }
  if (typeof avro === 'string') return ({ string: 'string', double: 'double', float: 'float', long: 'bigint', int: 'int', boolean: 'boolean' } as Record<string, string>)[avro]!;
  const t = avro as { type: string; values?: unknown; items?: unknown };
  if (t.type === 'enum') return 'string';
  if (t.type === 'map') return `map<string,${hiveType(t.values)}>`;
  if (t.type === 'array') return `array<${hiveType(t.items)}>`;
  return hiveType(t.type);
}

/** The .avsc as the table's reader schema holds it: without docs, timestamp-micros as plain long. */
function readerSchemaOf(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(readerSchemaOf);
  if (schema === null || typeof schema !== 'object') return schema;
  const o = schema as Record<string, unknown>;
  if (o.logicalType === 'timestamp-micros') return o.type;
  return Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'doc').map(([k, v]) => [k, readerSchemaOf(v)]));
}

const datasets: Array<{ table: string; schema: SchemaName }> = [
  { table: 'curated', schema: 'enriched' },
  { table: 'metrics', schema: 'metrics' },
  { table: 'alerts', schema: 'alert' },
];

describe('infra/athena/ddl.mjs', () => {
  const generated = ddl('--root', 's3://my-bucket/ml/');
  const { databases, tables } = parse(generated.stdout);

  it('prints the database and the three tables, and nothing on stderr', () => {
    expect([generated.status, generated.stderr]).toEqual([0, '']);
    expect(databases).toEqual(['model_metrics']);
    expect(tables.map((t) => t.name)).toEqual(datasets.map((d) => `model_metrics.${d.table}`));
  });

  it('the parser refuses what Athena would: a missing comma, an unquoted column, a stray quote, an unknown type', () => {
    const good = generated.stdout;
    expect(() => parse(good.replace(/(`metric`\s+string),/, '$1'))).toThrow(/expected \), got value/);
    expect(() => parse(good.replace('`metric`', 'metric'))).toThrow(/backticks/);
    expect(() => parse(good.replace("'enum'", "'enum"))).toThrow(/unexpected character "-"/);
    expect(() => parse(good.replace(/(`labeled_count`\s+)bigint/, '$1long'))).toThrow(/unknown type long/);
  });

  it('places each table under --root, or where its own option says; --database names the database', () => {
    const run = ddl('--root', 's3://my-bucket/ml', '--alerts', 's3://other-bucket/monitoring/alerts/', '--database', 'ml_monitoring');
    expect(run.status).toBe(0);
    const parsed = parse(run.stdout);
    expect(parsed.databases).toEqual(['ml_monitoring']);
    expect(parsed.tables.map((t) => [t.name, t.location])).toEqual([
      ['ml_monitoring.curated', 's3://my-bucket/ml/curated/'],
      ['ml_monitoring.metrics', 's3://my-bucket/ml/metrics/'],
      ['ml_monitoring.alerts', 's3://other-bucket/monitoring/alerts/'],
    ]);
  });

  it.each([
    ['no --root', [], '--root is required'],
    ['a local --root', ['--root', './data'], '--root must be an s3://bucket/prefix URI'],
    ["a quote in --metrics", ['--root', 's3://my-bucket/ml', '--metrics', "s3://my-bucket/it's"], '--metrics must be an s3://bucket/prefix URI'],
    ['a bad --database', ['--root', 's3://my-bucket/ml', '--database', 'ML-Monitoring'], '--database must be lower-case'],
    ['an unknown option', ['--root', 's3://my-bucket/ml', '--bucket', 'x'], 'unknown argument "--bucket"'],
    ['an option without its value', ['--root'], '--root needs a value'],
  ])('%s is exit 2 with the reason and the usage', (_name, args, message) => {
    const run = ddl(...args);
    expect(run.status).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain('usage: node infra/athena/ddl.mjs --root s3://BUCKET/PREFIX');
  });

  describe.each(datasets)('model_metrics.$table', ({ table, schema }) => {
    const ddlOf = (): Table => tables.find((t) => t.name === `model_metrics.${table}`)!;
    const latest = schemaVersions[schema].at(-1)!;
    const avsc = JSON.parse(fs.readFileSync(latest.file, 'utf8')) as { fields: Array<{ name: string; type: unknown }> };

    it(`has one column per field of schemas/${schema}/v${latest.version}.avsc, in order, with the Hive type of its Avro type`, () => {
      expect(ddlOf().columns).toEqual(avsc.fields.map((f) => ({ name: f.name, type: hiveType(f.type) })));
      expect(generated.stdout).toContain(`-- ${table}: `);
      expect(generated.stdout).toContain(`columns of schemas/${schema}/v${latest.version}.avsc.`);
    });

    it('reads with the .avsc as its Avro reader schema, which resolves every older version', () => {
      const t = ddlOf();
      expect(t.serde).toBe('org.apache.hadoop.hive.serde2.avro.AvroSerDe');
      expect(t.storedAs.toUpperCase()).toBe('AVRO');
      const literal = JSON.parse(t.serdeProperties['avro.schema.literal']!) as unknown;
      expect(literal).toEqual(readerSchemaOf(avsc));
      const reader = parseAvroType(literal);
      for (const { version } of schemaVersions[schema]) expect(() => reader.createResolver(loadSchemaVersion(schema, version))).not.toThrow();
    });

    it("finds the job's stage=…/dt=… partitions by projection", () => {
      const t = ddlOf();
      expect(t.partitions).toEqual([
        { name: 'partition_stage', type: 'string' },
        { name: 'dt', type: 'string' },
      ]);
      expect(t.columns.map((c) => c.name)).not.toContain('partition_stage');
      expect(t.location).toBe(`s3://my-bucket/ml/${table}/`);
      const p = t.tableProperties;
      expect(p).toMatchObject({
        'projection.enabled': 'true',
        'projection.partition_stage.type': 'enum',
        'projection.dt.type': 'date',
        'projection.dt.format': 'yyyy-MM-dd',
        'projection.dt.interval': '1',
        'projection.dt.interval.unit': 'DAYS',
      });
      expect(p['projection.partition_stage.values']!.split(',').sort()).toEqual(['final', 'preliminary']);
      expect(p['projection.dt.range']).toMatch(/^\d{4}-\d{2}-\d{2},NOW$/);
      const template = p['storage.location.template']!;
      expect(template.startsWith(t.location)).toBe(true);
      for (const stage of ['preliminary', 'final'] as const) {
        expect(template.slice(t.location.length).replace('${partition_stage}', stage).replace('${dt}', '2026-03-02')).toBe(outputPartition(stage, '2026-03-02'));
      }
    });
  });
});
