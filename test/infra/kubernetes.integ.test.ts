/**
 * The rendered Kubernetes commands, run (issue 4): `kubectl kustomize` renders the overlays, and the
 * real CLI runs the CronJob's and the backfill Job's arguments with the environment their containers
 * would get (envFrom ConfigMaps and Secrets, env), on a local sample dataset — the overlay's config
 * file and variables are accepted, `scheduled` does the closed days and yesterday, and the Indexed
 * Job's completion indexes together compute the range once. Needs kubectl (skipped without it).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, runCli } from '../helpers/cli.js';
import { CLI_TESTS_TIMEOUT_MS, K8S_DIR, containerEnv, findObject, jobContainer, type K8sObject, kubectlAvailable, kustomizeBuild, podSpecOf, sampleDays, sampleWorkspace } from '../helpers/infra-helpers.js';

const K8S = K8S_DIR;

describe.skipIf(!kubectlAvailable)('rendered overlays, run by the real CLI', { timeout: CLI_TESTS_TIMEOUT_MS }, () => {
  const rendered = new Map<string, K8sObject[]>();
  beforeAll(() => {
    for (const build of ['overlays/aws', 'overlays/minio-local', 'overlays/minio-local/backfill']) rendered.set(build, kustomizeBuild(join(K8S, build)));
  });

  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  /**
   * The container's environment with the in-pod paths mapped to this machine: the config file to
   * the repository's copy, TMPDIR to a temp folder, the dataset root to a fresh local sample. The
   * overlay's S3 settings stay (parsed and validated by the CLI, unused with a local root).
   */
  async function localEnv(container: any, objects: readonly K8sObject[], extra: Record<string, string>): Promise<Record<string, string>> {
    const env = containerEnv(container, objects);
    expect(env.MODEL_METRICS_CONFIG).toBe('/etc/model-metrics/config.yaml');
    expect(env.MODEL_METRICS_ROOT).toMatch(/^s3:\/\//);
    const workspace = await sampleWorkspace('k8s');
    cleanups.push(workspace.remove);
    return { ...env, MODEL_METRICS_CONFIG: join(K8S, 'base', 'config.yaml'), TMPDIR: workspace.temp, MODEL_METRICS_ROOT: workspace.root, MODEL_METRICS_JSON: 'true', PATH: process.env.PATH ?? '', ...extra };
  }

  it.each([['overlays/minio-local'], ['overlays/aws']])('%s: the CronJob\'s `scheduled` finalises the closed days and runs yesterday\'s preliminary', async (overlay) => {
    const objects = rendered.get(overlay)!;
    const container = jobContainer(podSpecOf(findObject(objects, 'CronJob', 'model-metrics')));
    // Pinned clock: 2026-03-14 06:00 UTC, the morning after the last sample day's window (P7D) closed.
    const result = await runCli(container.args, await localEnv(container, objects, { MODEL_METRICS_AS_OF: '2026-03-14T06:00:00Z' }));
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.nonJsonStderr).toEqual([]);
    const outcomes = result.json<Array<{ date: string; stage: string; status: string }>>();
    expect(outcomes.filter((o) => o.stage === 'final').map((o) => o.date)).toEqual(sampleDays());
    expect(outcomes.filter((o) => o.stage === 'preliminary').map((o) => o.date)).toEqual(['2026-03-13']);
    // The sample ends on 03-06: yesterday's predictions partition does not exist, so its preliminary is
    // not ready (SPEC §3), which a schedule reports without failing; every closed final is done.
    expect(outcomes.every((o) => o.status === (o.stage === 'final' ? 'done' : 'not_ready')), JSON.stringify(outcomes)).toBe(true);
  });

  it('overlays/minio-local/backfill: each completion index computes its share of the range, together all of it once', async () => {
    // The Job mounts ConfigMaps of the overlay it is applied after, and its own.
    const objects = [...rendered.get('overlays/minio-local')!, ...rendered.get('overlays/minio-local/backfill')!];
    const job = findObject(objects, 'Job', 'model-metrics-backfill');
    const container = jobContainer(podSpecOf(job));
    const env = await localEnv(container, objects, {});
    const seen: string[] = [];
    for (let index = 0; index < job.spec.completions; index++) {
      const result = await runCli(container.args, { ...env, JOB_COMPLETION_INDEX: String(index) });
      expect(result.code, describeRun(result)).toBe(0);
      const outcomes = result.json<Array<{ date: string; stage: string; status: string }>>();
      expect(outcomes.every((o) => o.status === 'done' && o.stage === 'final'), JSON.stringify(outcomes)).toBe(true);
      seen.push(...outcomes.map((o) => o.date));
    }
    expect(seen.sort()).toEqual(sampleDays());
  });
});
