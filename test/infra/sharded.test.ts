/**
 * infra/kubernetes/sharded (SPEC §9, one day across pods): the Argo WorkflowTemplate, without a
 * cluster or an Argo controller. Its parameters are declared and used, its DAG runs partition, join
 * and commit in that order; each step's Job manifest (Argo's tags substituted) is a valid batch/v1
 * Job whose pod is the CronJob's but for its args; the retry rules and the success and failure
 * conditions behave as intended on the Job statuses Kubernetes writes; the executor's pods meet Pod
 * Security "restricted"; the commands' options are in `run`'s option table. The rendered overlays and the commands run through the real
 * CLI are in sharded.integ.test.ts.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { optionsOf } from '../../src/config/options.js';
import {
  K8S_DIR,
  type K8sObject,
  argoRequirements,
  argoSubstitute,
  argoTags,
  argoTagValues as tagValues,
  expectJobPod,
  expectRestricted,
  flagValue,
  jobContainer,
  podSpecOf,
  readYaml,
  unknownRunOptions,
  type PhaseJob,
  validateK8sObject,
  workflowPhaseJobs,
} from '../helpers/infra-helpers.js';

const template = readYaml(join(K8S_DIR, 'sharded', 'workflowtemplate.yaml'));
const cronJob = readYaml(join(K8S_DIR, 'base', 'cronjob.yaml'));
const backfill = readYaml(join(K8S_DIR, 'backfill', 'job.yaml'));
const declared: string[] = template.spec.arguments.parameters.map((p: any) => p.name);
const PHASES = ['partition', 'join', 'commit'] as const;

const SUBMITTED = { date: '2026-03-02', stage: 'final', shards: '3', 'as-of': '', image: 'model-metrics' };

/** The DAG's tasks in dependency order, each with its template and the Job it creates. */
function phaseJobs(parameters: Record<string, string> = SUBMITTED): PhaseJob[] {
  return workflowPhaseJobs(template, parameters);
}

/** The pod spec with what legitimately differs per Job left out: args, MODEL_METRICS_AS_OF, the backfill's range ConfigMap. */
function sharedPart(pod: any): any {
  const copy = structuredClone(pod);
  const container = jobContainer(copy);
  delete container.args;
  container.env = container.env.filter((e: any) => e.name !== 'MODEL_METRICS_AS_OF');
  container.envFrom = container.envFrom.filter((s: any) => s.configMapRef?.name !== 'model-metrics-backfill');
  return copy;
}

describe('the sharded WorkflowTemplate', () => {
  it('declares every parameter it uses and uses every parameter it declares', () => {
    const text = JSON.stringify(template.spec.templates);
    const used = new Set(argoTags(text).filter((tag) => tag.startsWith('workflow.parameters.')).map((tag) => tag.slice('workflow.parameters.'.length)));
    expect([...used].sort()).toEqual([...declared].sort());
    expect(declared.sort()).toEqual(['as-of', 'date', 'image', 'shards', 'stage']);
    // date has no default: `argo submit` without -p date is refused.
    expect(template.spec.arguments.parameters.find((p: any) => p.name === 'date').value).toBeUndefined();
    expect(template.spec.arguments.parameters.find((p: any) => p.name === 'stage').enum.sort()).toEqual(['final', 'preliminary']);
    // Every other tag is a template's own input or the workflow's name.
    for (const t of template.spec.templates) {
      const inputs = new Set((t.inputs?.parameters ?? []).map((p: any) => `inputs.parameters.${p.name}`));
      for (const tag of argoTags(JSON.stringify(t))) {
        if (!tag.startsWith('workflow.parameters.')) expect(tag === 'workflow.name' || inputs.has(tag), `${t.name}: {{${tag}}}`).toBe(true);
      }
      for (const input of inputs) expect(argoTags(JSON.stringify(t.resource ?? {})), `${t.name} uses ${input}`).toContain(input);
    }
  });

  it('runs partition, then join, then commit, each as a resource step that creates a Job owned by the workflow', () => {
    const jobs = phaseJobs();
    expect(jobs.map(({ task }) => task.name)).toEqual([...PHASES]);
    expect(jobs.map(({ task }) => task.depends)).toEqual([undefined, 'partition.Succeeded', 'join.Succeeded']);
    for (const { task, resource, job } of jobs) {
      expect(resource.resource, task.name).toMatchObject({ action: 'create', setOwnerReference: true });
      expect(resource.resource.successCondition, task.name).toEqual(expect.any(String));
      expect(resource.resource.failureCondition, task.name).toEqual(expect.any(String));
      expect(job).toMatchObject({ apiVersion: 'batch/v1', kind: 'Job' });
      // A retry creates a new Job: a fixed name would collide with the failed one.
      expect(job.metadata.generateName, task.name).toMatch(/^model-metrics-sharded-x7k2p-[a-z]+-$/);
      expect(job.metadata.name, task.name).toBeUndefined();
      expect(jobContainer(podSpecOf(job)).args.slice(0, 1), task.name).toEqual(['run']);
      expect(flagValue(jobContainer(podSpecOf(job)).args, '--phase'), task.name).toBe(task.name);
    }
  });

  it.each([['3'], ['1'], ['16']])('creates valid batch/v1 Jobs for %s shards: Indexed partition and join of K completions, one commit pod', async (shards) => {
    const [partition, joinPhase, commit] = phaseJobs({ ...SUBMITTED, shards });
    for (const { job } of [partition!, joinPhase!]) {
      await validateK8sObject(job);
      expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: Number(shards), parallelism: Number(shards) });
      expect(job.spec.backoffLimitPerIndex).toBeGreaterThanOrEqual(1);
      const args: string[] = jobContainer(podSpecOf(job)).args;
      expect(Number(flagValue(args, '--shards'))).toBe(job.spec.completions);
      // The index is JOB_COMPLETION_INDEX, which Kubernetes sets in each pod of an Indexed Job.
      expect(args).not.toContain('--shard-index');
      expect(args).not.toContain('--fail-on-alert');
    }
    await validateK8sObject(commit!.job);
    expect(commit!.job.spec.completionMode ?? 'NonIndexed', 'commit runs without an index').toBe('NonIndexed');
    expect(commit!.job.spec).toMatchObject({ completions: 1, parallelism: 1, backoffLimit: 0 });
    const commitArgs: string[] = jobContainer(podSpecOf(commit!.job)).args;
    expect(Number(flagValue(commitArgs, '--shards'))).toBe(Number(shards));
    expect(commitArgs).not.toContain('--shard-index');
    expect(commitArgs).toContain('--fail-on-alert');
  });

  it('refuses what the API server would (the validators are live)', async () => {
    const [partition] = phaseJobs({ ...SUBMITTED, shards: 'four' });
    await expect(validateK8sObject(partition!.job)).rejects.toThrow(/completions must be integer/);
    const bad = structuredClone(template);
    bad.spec.arguments.parameters[1].value = 4;
    await expect(validateK8sObject(bad)).rejects.toThrow(/parameters\/1\/value must be string/);
    expect(() => argoSubstitute('{{workflow.parameters.dates}}', tagValues(SUBMITTED))).toThrow(/unresolved Argo tag/);
    expect(() => argoRequirements('status.conditions.#(type=="Failed").status == True', {})).toThrow(/not a label-selector requirement/);
    expect(() => argoRequirements('status.conditions.0.reason == Pod Failure', {})).toThrow(/not a label-selector requirement/);
    expect(() => argoRequirements(`status.x == ${'a'.repeat(64)}`, {})).toThrow(/labels.Parse accepts/);
  });

  it('gives every Job the CronJob\'s pod, but for its args (drift between the copies fails here)', () => {
    const reference = sharedPart(podSpecOf(cronJob));
    for (const { task, job } of phaseJobs()) {
      const pod = podSpecOf(job);
      expect(sharedPart(pod), task.name).toEqual(reference);
      expectJobPod(pod, `${task.name} Job`);
      expectRestricted(pod, `${task.name} Job`);
      // The pods are found by phase: kubectl logs -l model-metrics/phase=join.
      expect(job.spec.template.metadata.labels['model-metrics/phase'], task.name).toBe(task.name);
    }
    expect(sharedPart(podSpecOf(backfill)), 'the backfill Job').toEqual(reference);
  });

  it('fails fast on bad usage (and commit\'s alerts), leaves "not ready" to the step\'s retries, ignores evictions', () => {
    const [partition, , commit] = phaseJobs();
    const rules = (job: K8sObject): any[] => job.spec.podFailurePolicy.rules;
    const onCodes = (job: K8sObject, action: string): number[] => rules(job).filter((r) => r.action === action).flatMap((r) => r.onExitCodes.values);
    for (const job of [partition!.job, phaseJobs()[1]!.job]) {
      expect(onCodes(job, 'FailJob')).toEqual([2]);
      expect(onCodes(job, 'FailIndex')).toEqual([3]);
    }
    expect(onCodes(commit!.job, 'FailJob').sort()).toEqual([2, 4]);
    for (const { job } of phaseJobs()) {
      expect(rules(job)).toContainEqual(expect.objectContaining({ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }));
      for (const rule of rules(job)) if (rule.onExitCodes !== undefined) expect(rule.onExitCodes.containerName).toBe('model-metrics');
      expect(job.spec.activeDeadlineSeconds).toBeGreaterThan(0);
    }
  });

  /**
   * Job statuses as the Job controller writes them (Kubernetes >= 1.31 adds FailureTarget before
   * Failed and SuccessCriteriaMet before Complete; 1.29 and 1.30 do not always), and what the step
   * should do: wait, succeed, fail and retry, or fail for good.
   */
  const STATUSES: Array<[string, unknown, 'wait' | 'succeed' | 'retry' | 'give up']> = [
    ['running, one pod failed and retried', { active: 3, failed: 1, startTime: '2026-03-10T07:00:00Z' }, 'wait'],
    ['an index gave up, the others still running', { active: 2, failed: 3, failedIndexes: '1', startTime: '2026-03-10T07:00:00Z' }, 'wait'],
    ['complete (1.31)', { succeeded: 3, completedIndexes: '0-2', completionTime: '2026-03-10T07:10:00Z', conditions: [{ type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached' }, { type: 'Complete', status: 'True', reason: 'CompletionsReached' }] }, 'succeed'],
    ['complete (1.29)', { succeeded: 1, completionTime: '2026-03-10T07:10:00Z', conditions: [{ type: 'Complete', status: 'True' }] }, 'succeed'],
    ['exit 2 (1.31)', { failed: 1, conditions: [{ type: 'FailureTarget', status: 'True', reason: 'PodFailurePolicy' }, { type: 'Failed', status: 'True', reason: 'PodFailurePolicy' }] }, 'give up'],
    ['exit 2 (1.29)', { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'PodFailurePolicy' }] }, 'give up'],
    ['exit 3 in one index, the others done', { succeeded: 2, failed: 1, failedIndexes: '2', conditions: [{ type: 'FailureTarget', status: 'True', reason: 'FailedIndexes' }, { type: 'Failed', status: 'True', reason: 'FailedIndexes' }] }, 'retry'],
    ['commit exit 3 or 1 (backoffLimit 0)', { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }] }, 'retry'],
    ['suspended once, then past its deadline', { failed: 0, conditions: [{ type: 'Suspended', status: 'False', reason: 'JobResumed' }, { type: 'FailureTarget', status: 'True', reason: 'DeadlineExceeded' }, { type: 'Failed', status: 'True', reason: 'DeadlineExceeded' }] }, 'retry'],
  ];

  it.each(STATUSES)('on a Job that is %s, the step decides to %s', (_what, status, expected) => {
    for (const { task, resource } of phaseJobs()) {
      const job = { apiVersion: 'batch/v1', kind: 'Job', status };
      const failures = argoRequirements(resource.resource.failureCondition, job).filter((r) => r.matched);
      const success = argoRequirements(resource.resource.successCondition, job).every((r) => r.matched);
      let outcome: string;
      if (failures.length > 0) {
        // Argo's executor fails the step with this message (the first failure requirement that matched),
        // which the retry expression reads as lastRetry.message.
        const message = `failure condition '${failures[0]!.requirement}' evaluated true`;
        const { expression } = resource.retryStrategy;
        expect(expression, task.name).toBe("!(lastRetry.message contains 'PodFailurePolicy')");
        outcome = message.includes('PodFailurePolicy') ? 'give up' : 'retry';
        // Every matching requirement gives the same answer, whichever Argo names first.
        for (const failure of failures) expect(failure.requirement.includes('PodFailurePolicy'), task.name).toBe(outcome === 'give up');
      } else outcome = success ? 'succeed' : 'wait';
      expect(outcome, task.name).toBe(expected);
    }
  });

  it('retries a failed step a bounded number of times, with a backoff', () => {
    for (const { task, resource } of phaseJobs()) {
      expect(Number(resource.retryStrategy.limit), task.name).toBeGreaterThan(0);
      expect(resource.retryStrategy.retryPolicy, task.name).toBe('Always');
      expect(resource.retryStrategy.backoff.duration, task.name).toMatch(/^\d+m$/);
    }
    expect(template.spec.activeDeadlineSeconds).toBeGreaterThan(0);
  });

  it('runs its executor pods as Pod Security "restricted" admits them', () => {
    const patch = parseYaml(template.spec.podSpecPatch);
    expect(patch.containers.map((c: any) => c.name)).toEqual(['main']);
    expectRestricted({ securityContext: template.spec.securityContext, containers: patch.containers }, 'executor pod');
    expect(template.spec.serviceAccountName).not.toBe('model-metrics');
  });
});

describe('the sharded commands and the option table', () => {
  it('passes only options of `run`', () => {
    for (const { task, job } of phaseJobs()) expect(unknownRunOptions(jobContainer(podSpecOf(job)).args), task.name).toEqual([]);
  });

});
