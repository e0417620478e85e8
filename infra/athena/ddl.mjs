#!/usr/bin/env node
// Prints the Athena / Glue DDL of the model-metrics datasets: CREATE DATABASE, then one
// CREATE EXTERNAL TABLE each for curated, metrics and alerts, from the latest schemas/<name>/vN.avsc
// of this package, so the tables always match what the job writes.
//
//   node infra/athena/ddl.mjs --root s3://my-bucket/ml > model-metrics.sql
//   node infra/athena/ddl.mjs --root s3://my-bucket/ml --alerts s3://other-bucket/alerts --database ml_monitoring
//
// Each table: the Avro SerDe with the .avsc as its reader schema (docs left out; files written with
// older versions read through Avro resolution, new fields at their defaults); Hive-style
// stage=…/dt=… partitions found by partition projection (no crawler, no MSCK REPAIR). The partition
// column is partition_stage, not stage: metrics and alerts records have a stage field already.
// Timestamps are bigint microseconds since the epoch: from_unixtime(ts / 1e6) gives a timestamp.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const schemasDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'schemas');

/** The tables: name, schema folder, what one partition holds. */
const TABLES = [
  { table: 'curated', schema: 'enriched', holds: 'part-NNNNN.avro files: every kept prediction of the day joined with its label (SPEC §4)' },
  { table: 'metrics', schema: 'metrics', holds: 'metrics.avro: one record per model version, slice, window and label age (SPEC §5, §5.1)' },
  { table: 'alerts', schema: 'alert', holds: 'alerts.avro: the alerts a run raised (SPEC §8)' },
];

function usage(message) {
  process.stderr.write(`ddl.mjs: ${message}\nusage: node infra/athena/ddl.mjs --root s3://BUCKET/PREFIX [--curated URI] [--metrics URI] [--alerts URI] [--database NAME]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = {};
  const known = new Set(['root', 'curated', 'metrics', 'alerts', 'database']);
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : undefined;
    if (name === undefined || !known.has(name)) usage(`unknown argument ${JSON.stringify(argv[i])}`);
    if (argv[i + 1] === undefined) usage(`--${name} needs a value`);
    options[name] = argv[i + 1];
  }
  return options;
}

const S3_FOLDER = /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^'\s]*)?$/;

/** A dataset's location as an s3:// folder URI ending in `/`: its own option, else <root>/<table>. */
function location(options, table) {
  const [option, given] = options[table] !== undefined ? [table, options[table]] : ['root', options.root];
  if (given === undefined) usage(`--root is required (or --${table}), e.g. --root s3://my-bucket/ml`);
  if (!S3_FOLDER.test(given)) usage(`--${option} must be an s3://bucket/prefix URI without quotes or spaces, got ${JSON.stringify(given)}`);
  const folder = given.replace(/\/+$/, '');
  return option === 'root' ? `${folder}/${table}/` : `${folder}/`;
}

/** The latest version of a schema folder: [file name, parsed .avsc]. */
function latestSchema(name) {
  const files = fs.readdirSync(path.join(schemasDir, name)).filter((f) => /^v\d+\.avsc$/.test(f));
  const latest = files.sort((a, b) => Number(a.slice(1, -5)) - Number(b.slice(1, -5))).at(-1);
  return [latest, JSON.parse(fs.readFileSync(path.join(schemasDir, name, latest), 'utf8'))];
}

/** The Hive type the Avro SerDe derives: nullable unions as their branch, enums as string, timestamps as bigint. */
function hiveType(avro) {
  if (Array.isArray(avro)) return hiveType(avro.find((branch) => branch !== 'null'));
  if (typeof avro === 'string') {
    const primitive = { string: 'string', double: 'double', float: 'float', long: 'bigint', int: 'int', boolean: 'boolean' }[avro];
    if (primitive === undefined) throw new Error(`no Hive type for Avro ${avro}`);
    return primitive;
  }
  if (avro.type === 'enum') return 'string';
  if (avro.type === 'map') return `map<string,${hiveType(avro.values)}>`;
  if (avro.type === 'array') return `array<${hiveType(avro.items)}>`;
  return hiveType(avro.type);
}

/** The .avsc as the SerDe's reader schema: no docs (they may hold quotes), timestamp-micros as plain long. */
function readerSchema(schema) {
  if (Array.isArray(schema)) return schema.map(readerSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  if (schema.logicalType === 'timestamp-micros') return schema.type;
  return Object.fromEntries(Object.entries(schema).filter(([key]) => key !== 'doc').map(([key, value]) => [key, readerSchema(value)]));
}

function tableDdl(database, { table, schema, holds }, where) {
  const [file, avsc] = latestSchema(schema);
  const width = Math.max(...avsc.fields.map((f) => f.name.length)) + 2;
  const columns = avsc.fields.map((f) => `  ${`\`${f.name}\``.padEnd(width)} ${hiveType(f.type)}`).join(',\n');
  const literal = JSON.stringify(readerSchema(avsc));
  // Hive DDL strings have no portable quote escape; the docs, the only free text, are left out above.
  if (literal.includes("'")) throw new Error(`schemas/${schema}/${file}: a name or default holds a single quote, which the DDL string cannot carry`);
  return `-- ${table}: ${holds}; columns of schemas/${schema}/${file}.
CREATE EXTERNAL TABLE IF NOT EXISTS ${database}.${table} (
${columns}
)
PARTITIONED BY (
  \`partition_stage\` string,
  \`dt\` string
)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.avro.AvroSerDe'
WITH SERDEPROPERTIES (
  'avro.schema.literal' = '${literal}'
)
STORED AS AVRO
LOCATION '${where}'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.partition_stage.type' = 'enum',
  'projection.partition_stage.values' = 'preliminary,final',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2020-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = '${where}stage=\${partition_stage}/dt=\${dt}/'
);
`;
}

const options = parseArgs(process.argv.slice(2));
const database = options.database ?? 'model_metrics';
if (!/^[a-z_][a-z0-9_]*$/.test(database)) usage(`--database must be lower-case letters, digits and _, got ${JSON.stringify(database)}`);
const statements = [
  `-- model-metrics datasets for Athena / Glue (generated by infra/athena/ddl.mjs from schemas/).
-- Athena reads every file of a partition folder but names starting with _ or . (so not _SUCCESS);
-- in-flight files live under the hidden _staging/ prefix. A partition is committed once its
-- _SUCCESS exists (SPEC §1): a run that died between its data files and _SUCCESS leaves a folder
-- Athena reads and the job does not count; its rerun replaces it.
CREATE DATABASE IF NOT EXISTS ${database};
`,
  ...TABLES.map((t) => tableDdl(database, t, location(options, t.table))),
];
process.stdout.write(statements.join('\n'));
