/**
 * The sharded day (infra/kubernetes/sharded, SPEC §9) rendered with kubectl kustomize (skipped
 * without kubectl): each overlay's WorkflowTemplate defaults to the overlay's image, its Jobs' envFrom
 * resolve against the overlay's ConfigMaps, and the Jobs validate. Then the Jobs' commands, with the
 * environment their containers would get, run through the real CLI on a local sample dataset:
 * partition for every completion index (JOB_COMPLETION_INDEX, as Kubernetes sets it), join likewise,
 * commit once; the published metrics are those of an unsharded run, and a join before its partitions
 * is "not ready" (exit 3, which the workflow retries).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, runCli } from '../helpers/cli.js';
import {
  CLI_TESTS_TIMEOUT_MS,
  K8S_DIR,
  type K8sObject,
  type PhaseJob,
  type SampleWorkspace,
  containerEnv,
  findObject,
  jobContainer,
  podSpecOf,
  sampleEnv,
  sampleWorkspace,
  validateK8sObject,
  withoutShardOptions,
  workflowPhaseJobs,
} from '../helpers/infra-helpers.js';
import { kubectlAvailable, kustomizeBuild } from '../helpers/kubectl.js';

const OVERLAYS = ['overlays/aws', 'overlays/minio-local'] as const;
/** A sample day whose final window (P7D) closed long ago. */
const DAY = '2026-03-02';
const SHARDS = 2;

/** The objects of an overlay and of its sharded build (the Jobs mount the overlay's ConfigMaps). */
function renderOverlay(overlay: string): { main: K8sObject[]; sharded: K8sObject[]; template: any } {
  const main = kustomizeBuild(join(K8S_DIR, overlay));
  const sharded = kustomizeBuild(join(K8S_DIR, overlay, 'sharded'));
  return { main, sharded, template: findObject(sharded, 'WorkflowTemplate', 'model-metrics-sharded') };
}

/** The parameters `argo submit -p date=… -p shards=…` gives, the others at their defaults. */
function submitted(template: any, values: Record<string, string>): Record<string, string> {
  const parameters: Record<string, string> = {};
  for (const p of template.spec.arguments.parameters) if (p.value !== undefined) parameters[p.name] = p.value;
  return { ...parameters, ...values };
}

describe.skipIf(!kubectlAvailable)('the sharded builds, rendered', () => {
  const rendered = new Map<string, ReturnType<typeof renderOverlay>>();
  beforeAll(() => {
    for (const overlay of OVERLAYS) rendered.set(overlay, renderOverlay(overlay));
  });

  it.each(OVERLAYS.map((o) => [o]))('%s/sharded: the overlay\'s image by default, Jobs that validate, every envFrom resolved', async (overlay) => {
    const { main, sharded, template } = rendered.get(overlay)!;
    const cronImage = jobContainer(podSpecOf(findObject(main, 'CronJob', 'model-metrics'))).image;
    expect(template.spec.arguments.parameters.find((p: any) => p.name === 'image').value).toBe(cronImage);
    for (const object of sharded) await validateK8sObject(object);
    expect(template.metadata.namespace).toBe('model-metrics');
    for (const { task, job } of workflowPhaseJobs(template, submitted(template, { date: DAY }))) {
      await validateK8sObject(job);
      const container = jobContainer(podSpecOf(job));
      expect(container.image, task.name).toBe(cronImage);
      // Throws when a ConfigMap or non-optional Secret is in neither build.
      containerEnv(container, [...main, ...sharded]);
    }
    // The executor's identity may create Jobs; the job's own identity is the overlay's.
    expect(findObject(sharded, 'RoleBinding', 'model-metrics-workflow').subjects).toEqual([{ kind: 'ServiceAccount', name: 'model-metrics-workflow', namespace: 'model-metrics' }]);
    expect(findObject(main, 'ServiceAccount', 'model-metrics')).toBeDefined();
  });
});

describe.skipIf(!kubectlAvailable)('the sharded Jobs, run by the real CLI', { timeout: CLI_TESTS_TIMEOUT_MS }, () => {
  let objects: K8sObject[];
  let phases: PhaseJob[];
  const workspaces: SampleWorkspace[] = [];
  beforeAll(() => {
    const { main, sharded, template } = renderOverlay('overlays/minio-local');
    objects = [...main, ...sharded];
    phases = workflowPhaseJobs(template, submitted(template, { date: DAY, shards: String(SHARDS) }));
  });
  afterAll(async () => {
    for (const workspace of workspaces) await workspace.remove();
  });

  async function workspace(name: string): Promise<SampleWorkspace> {
    const created = await sampleWorkspace(name);
    workspaces.push(created);
    return created;
  }

  /** Runs one pod of a phase: its args and environment, the completion index as Kubernetes sets it. */
  async function runPod(phase: PhaseJob, at: SampleWorkspace, index: number | undefined, transform: (args: string[]) => string[] = (a) => a) {
    const container = jobContainer(podSpecOf(phase.job));
    const env = sampleEnv(container, objects, at, index === undefined ? {} : { JOB_COMPLETION_INDEX: String(index) });
    const result = await runCli(transform(container.args), env);
    expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
    return result;
  }

  /** The published metrics files of the day, by path under the dataset root. */
  function publishedMetrics(at: SampleWorkspace): Record<string, string> {
    const dir = join(at.root, 'metrics', 'stage=final', `dt=${DAY}`);
    const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith('.avro'));
    return Object.fromEntries(files.map((e) => [relative(dir, join(e.parentPath, e.name)), readFileSync(join(e.parentPath, e.name)).toString('base64')]));
  }

  it('partition and join on every index, then commit, publish the unsharded run\'s metrics', async () => {
    const sharded = await workspace('sharded');
    for (const phase of phases) {
      const indexes = phase.job.spec.completionMode === 'Indexed' ? Array.from({ length: phase.job.spec.completions }, (_, i) => i) : [undefined];
      expect(indexes.length, phase.task.name).toBe(phase.task.name === 'commit' ? 1 : SHARDS);
      for (const index of indexes) {
        const result = await runPod(phase, sharded, index);
        expect(result.code, `${phase.task.name} ${index}: ${describeRun(result)}`).toBe(0);
      }
    }
    // A pod retried once the day is committed converges (SPEC §9): done already, nothing changed.
    const before = publishedMetrics(sharded);
    for (const phase of phases) {
      const retried = await runPod(phase, sharded, phase.task.name === 'commit' ? undefined : 0);
      expect(retried.code, `${phase.task.name} again: ${describeRun(retried)}`).toBe(0);
    }
    expect(publishedMetrics(sharded)).toEqual(before);
    const unsharded = await workspace('unsharded');
    const container = jobContainer(podSpecOf(phases[2]!.job));
    const whole = await runCli(withoutShardOptions(container.args).filter((a) => a !== '--fail-on-alert'), sampleEnv(container, objects, unsharded));
    expect(whole.code, describeRun(whole)).toBe(0);
    const published = publishedMetrics(sharded);
    expect(Object.keys(published).length).toBeGreaterThan(0);
    expect(published).toEqual(publishedMetrics(unsharded));
  });

  it('refuses a join before its partitions as not ready (exit 3, retried by the workflow step)', async () => {
    const at = await workspace('sharded-early');
    const early = await runPod(phases[1]!, at, 0);
    expect(early.code, describeRun(early)).toBe(3);
  });
});
