/**
 * Helpers of the deployment tests (issue 4): every YAML document of a file, the pod specs of
 * workload objects, the Pod Security "restricted" and API-schema checks of an object, a small
 * sample dataset on local disk for the CLI runs, and the environment a manifest's container would
 * get. Nothing here runs a program (kubectl is in kubectl.ts, for the integ tier only).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { optionsOf } from '../../src/config/options.js';
import { generateSample } from '../../src/demo/generate.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { REPO_ROOT } from './cli.js';

/** A Kubernetes object as parsed from YAML. */
export type K8sObject = Record<string, any> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [key: string]: any } };

/** Absolute path of a file or folder of the repository. */
export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}

/** The Kubernetes manifests' folder. */
export const K8S_DIR = repoPath('infra', 'kubernetes');

/** Every kustomize build a user applies (`base` and `backfill` only through the overlays). */
export const K8S_BUILDS = [
  'base',
  'backfill',
  'sharded',
  'overlays/aws',
  'overlays/aws/backfill',
  'overlays/aws/sharded',
  'overlays/minio-local',
  'overlays/minio-local/backfill',
  'overlays/minio-local/sharded',
] as const;

/** YAML files under infra/kubernetes that are not Kubernetes objects: the job's option file and kustomize's transformer configuration. */
export const K8S_NON_OBJECT_FILES = [join(K8S_DIR, 'base', 'config.yaml'), join(K8S_DIR, 'sharded', 'kustomizeconfig.yaml')];

/** Every document of a YAML file; a syntax error fails with the file and the parser's message. */
export function readYamlDocuments(path: string): any[] {
  // Merge keys (`<<: *anchor`) as docker compose reads them.
  const documents = parseAllDocuments(readFileSync(path, 'utf8'), { merge: true });
  const docs: any[] = [];
  for (const document of documents) {
    if (document.errors.length > 0) throw new Error(`${path}: ${document.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = document.toJS();
    if (value !== null && value !== undefined) docs.push(value);
  }
  return docs;
}

/** The single document of a YAML file. */
export function readYaml(path: string): any {
  const docs = readYamlDocuments(path);
  if (docs.length !== 1) throw new Error(`${path}: expected one YAML document, found ${docs.length}`);
  return docs[0];
}

/** The pod spec of a workload (CronJob, Job, Deployment), or undefined for other kinds. */
export function podSpecOf(object: K8sObject): any {
  if (object.kind === 'CronJob') return object.spec?.jobTemplate?.spec?.template?.spec;
  if (object.kind === 'Job' || object.kind === 'Deployment') return object.spec?.template?.spec;
  return undefined;
}

/** One object by kind and name (throws naming what is missing). */
export function findObject(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (found === undefined) throw new Error(`no ${kind}/${name} among ${objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')}`);
  return found;
}

/** Time for a test that runs the CLI several times: generous, as the machine is shared (2 cores). */
export const CLI_TESTS_TIMEOUT_MS = 300_000;

/** First day of the sample data: the demo's calendar (jobs/demo.ts DEMO_FROM). */
export const SAMPLE_FROM = '2026-03-02';
/** Days of the sample data. */
export const SAMPLE_DAYS = 5;

/** A sample dataset on local disk and a temp folder for the job's TMPDIR. */
export interface SampleWorkspace {
  /** The dataset root: predictions and labels of the sample days, no outputs yet. */
  root: string;
  /** An empty folder, the job's TMPDIR (a pod's emptyDir at /tmp). */
  temp: string;
  /** Removes both. */
  remove(): Promise<void>;
}

/** A fresh SampleWorkspace (a few hundred predictions a day: the CLI runs take seconds). */
export async function sampleWorkspace(name: string): Promise<SampleWorkspace> {
  const root = await mkdtemp(join(tmpdir(), `mm-infra-${name}-`));
  const temp = await mkdtemp(join(tmpdir(), `mm-infra-${name}-tmp-`));
  await generateSample(new LocalObjectStore(join(root, 'predictions')), new LocalObjectStore(join(root, 'labels')), {
    from: SAMPLE_FROM,
    days: SAMPLE_DAYS,
    predictionsPerDay: 600,
    filesPerDay: 3,
  });
  return {
    root,
    temp,
    remove: async () => {
      await rm(root, { recursive: true, force: true });
      await rm(temp, { recursive: true, force: true });
    },
  };
}

/** The environment variables a ConfigMap or Secret contributes through envFrom. */
export function dataOf(object: K8sObject): Record<string, string> {
  if (object.kind === 'Secret') {
    const decoded: Record<string, string> = { ...(object.stringData ?? {}) };
    for (const [key, value] of Object.entries<string>(object.data ?? {})) decoded[key] = Buffer.from(value, 'base64').toString('utf8');
    return decoded;
  }
  return { ...(object.data ?? {}) };
}

/**
 * The environment of a rendered container: its envFrom ConfigMaps and Secrets (missing optional ones
 * skipped), then its env list (`$(VAR)` references expanded as the kubelet does).
 */
export function containerEnv(container: any, objects: readonly K8sObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const ref = source.configMapRef ?? source.secretRef;
    const kind = source.configMapRef !== undefined ? 'ConfigMap' : 'Secret';
    const object = objects.find((o) => o.kind === kind && o.metadata.name === ref.name);
    if (object === undefined) {
      if (ref.optional === true) continue;
      throw new Error(`container ${container.name}: envFrom ${kind}/${ref.name} is not in the build`);
    }
    Object.assign(env, dataOf(object));
  }
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) env[entry.name] = String(entry.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole);
  }
  return env;
}

/**
 * A rendered container's environment with its in-pod paths mapped to this machine: the config file to
 * the repository's copy, TMPDIR to the workspace's temp folder, the dataset root to its sample. The
 * overlay's S3 settings stay (parsed and validated by the CLI, unused with a local root).
 */
export function sampleEnv(container: any, objects: readonly K8sObject[], workspace: SampleWorkspace, extra: Record<string, string> = {}): Record<string, string> {
  const env = containerEnv(container, objects);
  expect(env.MODEL_METRICS_CONFIG).toBe('/etc/model-metrics/config.yaml');
  expect(env.MODEL_METRICS_ROOT).toMatch(/^s3:\/\//);
  return { ...env, MODEL_METRICS_CONFIG: join(K8S_DIR, 'base', 'config.yaml'), TMPDIR: workspace.temp, MODEL_METRICS_ROOT: workspace.root, MODEL_METRICS_JSON: 'true', PATH: process.env.PATH ?? '', ...extra };
}

/** The days of the sample dataset, YYYY-MM-DD. */
export function sampleDays(): string[] {
  return Array.from({ length: SAMPLE_DAYS }, (_, k) => new Date(Date.parse(`${SAMPLE_FROM}T00:00:00Z`) + k * 86_400_000).toISOString().slice(0, 10));
}

/** The value that follows `flag` in an argument list (throws naming the flag when it is absent). */
export function flagValue(args: readonly string[], flag: string): string {
  const at = args.indexOf(flag);
  if (at < 0 || at + 1 >= args.length) throw new Error(`${flag} missing from ${args.join(' ')}`);
  return args[at + 1]!;
}

/** The container of the job's own image in a pod spec (named model-metrics in every manifest). */
export function jobContainer(pod: any): any {
  const container = pod?.containers?.find((c: any) => c.name === 'model-metrics');
  if (container === undefined) throw new Error(`no container named model-metrics among ${JSON.stringify(pod?.containers?.map((c: any) => c.name))}`);
  return container;
}

/** Pod Security "restricted" (the namespace enforces it): what the API server would refuse otherwise. */
export function expectRestricted(pod: any, where: string): void {
  expect(pod.hostNetwork ?? false, where).toBe(false);
  expect(pod.hostPID ?? false, where).toBe(false);
  expect(pod.securityContext?.seccompProfile?.type, where).toBe('RuntimeDefault');
  for (const volume of pod.volumes ?? []) expect(volume.hostPath, `${where}: volume ${volume.name}`).toBeUndefined();
  for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
    const at = `${where}: container ${container.name}`;
    expect(container.securityContext?.allowPrivilegeEscalation, at).toBe(false);
    expect(container.securityContext?.privileged ?? false, at).toBe(false);
    expect(container.securityContext?.capabilities?.drop, at).toContain('ALL');
    expect(container.securityContext?.capabilities?.add ?? [], at).toEqual([]);
    expect(container.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, at).toBe(true);
    expect(container.securityContext?.runAsUser ?? pod.securityContext?.runAsUser ?? 1, at).not.toBe(0);
  }
}

/**
 * Validates one object with the `kubernetes-models` class of its apiVersion and kind (the OpenAPI
 * schemas of the Kubernetes API: types, enums, quantities, required fields); throws the schema's complaints.
 */
export async function validateK8sObject(object: K8sObject): Promise<void> {
  // kubernetes-models lays its classes out by API group and version: `v1` (core), `batch/v1`, `apps/v1`;
  // Argo Workflows' CRDs (WorkflowTemplate) are in its own package of the same family.
  const module = object.apiVersion.startsWith('argoproj.io/') ? `@kubernetes-models/argo-workflows/${object.apiVersion}` : `kubernetes-models/${object.apiVersion}`;
  const models = (await import(module)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = models[object.kind];
  if (Model === undefined) throw new Error(`kubernetes-models has no ${object.apiVersion} ${object.kind}`);
  new Model(object).validate();
}

/**
 * True for a `minio/minio:RELEASE.…` image that evaluates If-None-Match / If-Match on PUT, a failed
 * If-Match on a missing object included: RELEASE.2025-09-06T17-38-46Z (minio/minio#21550) or later.
 * An unpinned image (`latest`) is false: what it runs is not known.
 */
export function minioEnforcesConditionalWrites(image: string): boolean {
  const release = /^minio\/minio:RELEASE\.(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})Z$/.exec(image)?.[1];
  return release !== undefined && release >= '2025-09-06T17-38-46';
}

/** The options that make a `run` one phase of a sharded day (SPEC §9), each with a value. */
export const SHARD_OPTIONS: readonly string[] = ['shards', 'shard-index', 'phase'];

/** The option names (without `--`) an argument list passes. */
export function optionNames(args: readonly string[]): string[] {
  return args.filter((arg) => arg.startsWith('--')).map((arg) => arg.slice(2).split('=')[0]!);
}

/** The options of `args` that `run`'s option table does not know (`--config` is always accepted). */
export function unknownRunOptions(args: readonly string[]): string[] {
  const known = new Set(['config', ...optionsOf('run').map((spec) => spec.name)]);
  return optionNames(args).filter((name) => !known.has(name));
}

/** `args` without the SHARD_OPTIONS and their values: the same day as one unsharded run. */
export function withoutShardOptions(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i]!.startsWith('--') && SHARD_OPTIONS.includes(args[i]!.slice(2))) i++;
    else out.push(args[i]!);
  }
  return out;
}

/** Argo's simple template tags (`{{workflow.parameters.date}}`, `{{inputs.parameters.phase}}`, `{{workflow.name}}`). */
const ARGO_TAG = /\{\{\s*([^{}]+?)\s*\}\}/g;

/** Every tag a string holds, e.g. `workflow.parameters.date`. */
export function argoTags(text: string): string[] {
  return [...text.matchAll(ARGO_TAG)].map((m) => m[1]!);
}

/** `text` with each tag replaced from `values`; throws naming a tag that has no value (as Argo refuses an unresolved one). */
export function argoSubstitute(text: string, values: Record<string, string>): string {
  return text.replace(ARGO_TAG, (_whole, tag: string) => {
    const value = values[tag];
    if (value === undefined) throw new Error(`unresolved Argo tag {{${tag}}}; known: ${Object.keys(values).join(', ')}`);
    return value;
  });
}

/**
 * Whether one Argo resource condition (Kubernetes label-selector syntax, keys as gjson dotted paths
 * into the object, as Argo's executor evaluates them) holds, and which requirements matched: a
 * success condition needs all, a failure condition any. Supports the forms the manifests use:
 * `key`, `key == v`, `key != v`, `key in (a, b)`, `key > n`, `key < n`.
 */
export function argoRequirements(selector: string, object: unknown): Array<{ requirement: string; matched: boolean }> {
  const lookup = (path: string): unknown => path.split('.').reduce<unknown>((node, part) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[part] : undefined), object);
  const asText = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current.trim());
      current = '';
    } else current += ch;
  }
  parts.push(current.trim());
  return parts.map((requirement) => {
    const m = /^([A-Za-z0-9][-A-Za-z0-9_./]*)\s*(?:(==|=|!=|>|<)\s*(\S+)|\s+in\s+\(([^)]*)\))?$/.exec(requirement);
    if (m === null) throw new Error(`not a label-selector requirement Argo parses: ${JSON.stringify(requirement)}`);
    const [, key, op, value, list] = m;
    // What labels.Parse refuses: a key's name or a value past 63 characters, or not of the label alphabet.
    const labelText = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
    for (const text of [key!.split('/').at(-1)!, ...(value === undefined ? [] : [value]), ...(list ?? '').split(',').map((v) => v.trim())]) {
      if (text.length > 63 || !labelText.test(text)) throw new Error(`not a label key or value labels.Parse accepts: ${JSON.stringify(text)} in ${JSON.stringify(requirement)}`);
    }
    const found = lookup(key!);
    let matched: boolean;
    if (list !== undefined) matched = found !== undefined && list.split(',').map((v) => v.trim()).includes(asText(found));
    else if (op === undefined) matched = found !== undefined && found !== null;
    else if (op === '!=') matched = found === undefined || asText(found) !== value;
    else if (op === '>' || op === '<') matched = typeof found === 'number' && (op === '>' ? found > Number(value) : found < Number(value));
    else matched = found !== undefined && asText(found) === value;
    return { requirement, matched };
  });
}

/** A Kubernetes quantity (`2Gi`, `512Mi`, `1536M`, a plain number of bytes) in bytes. */
export function quantityBytes(quantity: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity));
  if (m === null) throw new Error(`not a byte quantity: ${quantity}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

/** The share of the container's memory limit the job's default --memory-budget takes (SPEC §9). */
export const DEFAULT_BUDGET_SHARE = 0.6;

/**
 * The fields of issue 4 on a pod of the job's image: non-root, read-only root, no escalation, the
 * config; and the spill (SPEC §9): TMPDIR, the default --spill-dir, on a disk emptyDir with a size
 * limit that the pod's ephemeral storage covers, memory requested as limited (the default budget is
 * 60% of the limit), V8's heap cap above that budget and below the limit.
 */
export function expectJobPod(pod: any, where: string): void {
  expect(pod.restartPolicy, where).toBe('Never');
  expect(pod.serviceAccountName, where).toBe('model-metrics');
  expect(pod.automountServiceAccountToken, where).toBe(false);
  expect(pod.securityContext.runAsNonRoot, where).toBe(true);
  // The Dockerfile's USER: runAsNonRoot can only verify a numeric user, and the two must agree.
  const dockerUser = /^USER\s+(\d+):(\d+)\s*$/m.exec(readFileSync(repoPath('Dockerfile'), 'utf8'));
  expect(dockerUser, 'Dockerfile USER uid:gid').not.toBeNull();
  expect(pod.securityContext.runAsUser, where).toBe(Number(dockerUser![1]));
  expect(pod.securityContext.runAsGroup, where).toBe(Number(dockerUser![2]));
  expect(pod.terminationGracePeriodSeconds, where).toBeGreaterThanOrEqual(30);
  const container = jobContainer(pod);
  expect(container.securityContext, where).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
  for (const resource of ['cpu', 'memory']) {
    expect(container.resources?.requests?.[resource], `${where}: requests.${resource}`).toBeDefined();
    expect(container.resources?.limits?.[resource], `${where}: limits.${resource}`).toBeDefined();
  }
  expectSpillAndBudget(pod, container, where);
  const env = Object.fromEntries((container.env ?? []).map((e: any) => [e.name, e.value]));
  const mounts = new Map<string, any>((container.volumeMounts ?? []).map((m: any) => [m.mountPath, m]));
  const volumes = new Map<string, any>((pod.volumes ?? []).map((v: any) => [v.name, v]));
  // The job options: MODEL_METRICS_CONFIG names config.yaml of the ConfigMap mounted read-only.
  const configMount = mounts.get(dirname(env.MODEL_METRICS_CONFIG));
  expect(configMount?.readOnly, `${where}: ${env.MODEL_METRICS_CONFIG} is on a read-only mount`).toBe(true);
  expect(volumes.get(configMount.name)?.configMap?.name, where).toBe('model-metrics-config');
  expect(container.envFrom.map((s: any) => s.configMapRef?.name ?? s.secretRef?.name), where).toEqual(expect.arrayContaining(['model-metrics-env']));
}


/** Values for a WorkflowTemplate's tags, as a submitted workflow would have them. */
export function argoTagValues(parameters: Record<string, string>, inputs: Record<string, string> = {}): Record<string, string> {
  const values: Record<string, string> = { 'workflow.name': 'model-metrics-sharded-x7k2p' };
  for (const [name, value] of Object.entries(parameters)) values[`workflow.parameters.${name}`] = value;
  for (const [name, value] of Object.entries(inputs)) values[`inputs.parameters.${name}`] = value;
  return values;
}

/** One task of the sharded WorkflowTemplate's DAG: the task, its resource template and the Job it creates. */
export interface PhaseJob {
  task: any;
  resource: any;
  job: K8sObject;
}

/** The entrypoint DAG's tasks in their order, each Job manifest with the workflow's tags substituted. */
export function workflowPhaseJobs(template: any, parameters: Record<string, string>): PhaseJob[] {
  const templates = new Map<string, any>(template.spec.templates.map((t: any) => [t.name, t]));
  const tasks: any[] = templates.get(template.spec.entrypoint).dag.tasks;
  return tasks.map((task) => {
    const resource = templates.get(task.template);
    const inputs = Object.fromEntries((task.arguments?.parameters ?? []).map((p: any) => [p.name, p.value]));
    const job = parseYaml(argoSubstitute(resource.resource.manifest, argoTagValues(parameters, inputs))) as K8sObject;
    return { task, resource, job };
  });
}

/** True for the job's own image, whatever the overlay's registry and tag (`model-metrics`, `…/model-metrics:0.1.0`). */
export function isJobImage(image: string): boolean {
  return /(^|\/)model-metrics(:[\w.-]+)?$/.test(image);
}

/**
 * SPEC §9 on a container of the job's image: TMPDIR (the default --spill-dir) on a disk emptyDir
 * with a size limit that the container's ephemeral storage covers, memory requested as limited (the
 * default --memory-budget is 60% of the limit), V8's heap cap above that budget and below the limit.
 */
export function expectSpillAndBudget(pod: any, container: any, where: string): void {
  const env = Object.fromEntries((container.env ?? []).map((e: any) => [e.name, e.value]));
  const mounts = new Map<string, any>((container.volumeMounts ?? []).map((m: any) => [m.mountPath, m]));
  const volumes = new Map<string, any>((pod.volumes ?? []).map((v: any) => [v.name, v]));
  // Spill and temp files: TMPDIR is an emptyDir mount (the only writable path with a read-only root).
  const tmp = mounts.get(env.TMPDIR);
  expect(tmp, `${where}: TMPDIR ${env.TMPDIR} is a volume mount`).toBeDefined();
  expect(volumes.get(tmp.name)?.emptyDir, `${where}: ${env.TMPDIR} is an emptyDir`).toBeDefined();
  const spill = volumes.get(tmp.name).emptyDir;
  expect(spill.sizeLimit, `${where}: the emptyDir has a size limit`).toBeDefined();
  // A tmpfs would count against the memory limit the spill is there to respect.
  expect(spill.medium ?? '', `${where}: the spill is on disk, not in memory`).not.toBe('Memory');
  expect(optionNames(container.args ?? []), `${where}: spills to TMPDIR (--spill-dir's default)`).not.toContain('spill-dir');
  const resources = container.resources;
  expect(quantityBytes(resources.limits['ephemeral-storage']), `${where}: ephemeral storage covers the spill`).toBeGreaterThan(quantityBytes(spill.sizeLimit));
  expect(resources.requests['ephemeral-storage'], `${where}: the spill's disk is requested`).toBe(resources.limits['ephemeral-storage']);
  // The default budget follows the limit; the request equals it, so a pod within its budget is never above its request.
  expect(resources.requests.memory, `${where}: memory requested as limited`).toBe(resources.limits.memory);
  expect(optionNames(container.args ?? []), `${where}: the budget is the default, 60% of the limit`).not.toContain('memory-budget');
  const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(env.NODE_OPTIONS ?? '')?.[1]);
  const limitMiB = quantityBytes(resources.limits.memory) / 2 ** 20;
  expect(heapMiB, `${where}: V8's heap cap is above the default budget`).toBeGreaterThan(DEFAULT_BUDGET_SHARE * limitMiB);
  expect(heapMiB, `${where}: V8's heap cap is below the memory limit`).toBeLessThan(limitMiB);
}
