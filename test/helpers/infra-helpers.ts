/**
 * Helpers of the deployment tests (issue 4): every YAML document of a file, the pod specs of
 * workload objects, the Pod Security "restricted" and API-schema checks of an object, a small
 * sample dataset on local disk for the CLI runs, and the environment a manifest's container would
 * get. Nothing here runs a program (kubectl is in kubectl.ts, for the integ tier only).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { parseAllDocuments } from 'yaml';
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
export const K8S_BUILDS = ['base', 'backfill', 'overlays/aws', 'overlays/aws/backfill', 'overlays/minio-local', 'overlays/minio-local/backfill'] as const;

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
  // kubernetes-models lays its classes out by API group and version: `v1` (core), `batch/v1`, `apps/v1`.
  const models = (await import(`kubernetes-models/${object.apiVersion}`)) as Record<string, new (data: unknown) => { validate(): void }>;
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
