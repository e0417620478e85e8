/**
 * The job services of infra/minio/docker-compose.yml, run (issue 4): their commands and environment
 * go through the real CLI on a local sample dataset standing in for the bucket (the root is the one
 * thing replaced; the S3 endpoint and path-style settings are parsed and validated, unused with a
 * local root), in the compose file's order: both backfills, then the report of the finals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, runCli } from '../helpers/cli.js';
import { CLI_TESTS_TIMEOUT_MS, readYaml, repoPath, sampleDays, type SampleWorkspace, sampleWorkspace } from '../helpers/infra-helpers.js';

const services: Record<string, { command: string[]; environment: Record<string, string> }> = readYaml(repoPath('infra', 'minio', 'docker-compose.yml')).services;

describe('the compose job services, run by the real CLI', { timeout: CLI_TESTS_TIMEOUT_MS }, () => {
  let workspace: SampleWorkspace;
  beforeAll(async () => {
    workspace = await sampleWorkspace('compose');
  });
  afterAll(() => workspace?.remove());

  async function runService(name: string, json: boolean): Promise<Awaited<ReturnType<typeof runCli>>> {
    const { command, environment } = services[name]!;
    expect(environment.MODEL_METRICS_ROOT).toBe('s3://model-metrics/ml');
    return runCli(command, { ...environment, MODEL_METRICS_ROOT: workspace.root, TMPDIR: workspace.temp, PATH: process.env.PATH ?? '', ...(json ? { MODEL_METRICS_JSON: 'true' } : {}) });
  }

  it.each([['preliminary'], ['final']])('%s: the backfill computes every sample day', async (name) => {
    const result = await runService(name, true);
    expect(result.code, describeRun(result)).toBe(0);
    const outcomes = result.json<Array<{ date: string; stage: string; status: string }>>();
    expect(outcomes.map((o) => o.date)).toEqual(sampleDays());
    expect(outcomes.every((o) => o.stage === name && o.status === 'done'), JSON.stringify(outcomes)).toBe(true);
  });

  it('report: prints the finals of every sample day', async () => {
    const result = await runService('report', false);
    expect(result.code, describeRun(result)).toBe(0);
    for (const day of sampleDays()) expect(result.stdout).toContain(day);
  });
});
