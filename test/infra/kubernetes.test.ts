/**
 * infra/kubernetes (issue 4): every YAML document parses; the kustomize tree is whole (every
 * resource, component, patch and generator file exists, patches and merges target objects of the
 * build); the CronJob, the Indexed backfill Job, the ConfigMaps and the ServiceAccount carry the
 * fields the issue asks for, and their pods meet Pod Security "restricted". No program runs here:
 * the rendered builds (`kubectl kustomize`: every build renders, every pod meets "restricted", the
 * overlays' images, ConfigMaps and shard counts agree) and their commands run through the real CLI
 * are in kubernetes.integ.test.ts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  K8S_DIR,
  K8S_NON_OBJECT_FILES,
  expectJobPod,
  expectRestricted,
  expectSpillAndBudget,
  flagValue,
  isJobImage,
  jobContainer,
  minioEnforcesConditionalWrites,
  podSpecOf,
  readYaml,
  readYamlDocuments,
} from '../helpers/infra-helpers.js';

const K8S = K8S_DIR;
const NAMESPACE = 'model-metrics';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

const yamlFiles = filesUnder(K8S).filter((file) => /\.ya?ml$/.test(file));
const kustomizationDirs = yamlFiles.filter((file) => file.endsWith('/kustomization.yaml')).map((file) => dirname(file));

/** What a kustomization (with its resources and components, recursively) contains, by kind/name. */
interface BuildContents {
  objects: Set<string>;
  generators: Set<string>;
}

function contentsOf(dir: string): BuildContents {
  const kustomization = readYaml(join(dir, 'kustomization.yaml'));
  const contents: BuildContents = { objects: new Set(), generators: new Set() };
  for (const entry of [...(kustomization.resources ?? []), ...(kustomization.components ?? [])] as string[]) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      const inner = contentsOf(path);
      inner.objects.forEach((o) => contents.objects.add(o));
      inner.generators.forEach((g) => contents.generators.add(g));
    } else {
      for (const doc of readYamlDocuments(path)) contents.objects.add(`${doc.kind}/${doc.metadata.name}`);
    }
  }
  for (const generator of [...(kustomization.configMapGenerator ?? []), ...(kustomization.secretGenerator ?? [])]) {
    const kind = (kustomization.configMapGenerator ?? []).includes(generator) ? 'ConfigMap' : 'Secret';
    contents.generators.add(`${kind}/${generator.name}`);
    contents.objects.add(`${kind}/${generator.name}`);
  }
  return contents;
}

/** The kind/name objects a patch entry of a kustomization applies to. */
function patchTargets(dir: string, patch: { path?: string; patch?: string; target?: { kind?: string; name?: string } }): string[] {
  if (patch.target?.kind !== undefined && patch.target.name !== undefined) return [`${patch.target.kind}/${patch.target.name}`];
  const docs = patch.path !== undefined ? readYamlDocuments(join(dir, patch.path)) : [parseYaml(patch.patch ?? '')];
  return docs.map((doc) => `${doc.kind}/${doc.metadata?.name}`);
}

describe('infra/kubernetes files', () => {
  it('has the base, the backfill Job and the two overlays', () => {
    expect(kustomizationDirs.map((dir) => relative(K8S, dir)).sort()).toEqual(
      expect.arrayContaining(['base', 'backfill', 'sharded', 'overlays/aws', 'overlays/aws/backfill', 'overlays/aws/sharded', 'overlays/minio-local', 'overlays/minio-local/backfill', 'overlays/minio-local/sharded']),
    );
  });

  it.each(yamlFiles.map((file) => [relative(K8S, file), file]))('%s parses and opens with a comment saying what it is', (_name, file) => {
    expect(readFileSync(file, 'utf8').startsWith('#'), 'a comment header').toBe(true);
    const documents = readYamlDocuments(file);
    // base/config.yaml is the job's option file (the CLI tests read it), sharded/kustomizeconfig.yaml kustomize's configuration.
    if (K8S_NON_OBJECT_FILES.includes(file)) return;
    for (const doc of documents) {
      expect(typeof doc.apiVersion).toBe('string');
      expect(typeof doc.kind).toBe('string');
      if (doc.kind !== 'Kustomization' && doc.kind !== 'Component') expect(doc.metadata?.name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    }
  });
});

describe('every container of the job\'s image', () => {
  it('spills to a sized disk emptyDir at TMPDIR and is given memory as limited, with V8\'s heap cap between the budget and the limit', () => {
    const seen: string[] = [];
    for (const file of yamlFiles.filter((f) => !K8S_NON_OBJECT_FILES.includes(f) && !f.endsWith('/kustomization.yaml'))) {
      for (const object of readYamlDocuments(file)) {
        const pod = podSpecOf(object);
        for (const container of pod === undefined ? [] : [...(pod.initContainers ?? []), ...pod.containers]) {
          if (!isJobImage(container.image)) continue;
          const where = `${relative(K8S, file)}: ${object.kind}/${object.metadata.name}/${container.name}`;
          expectSpillAndBudget(pod, container, where);
          seen.push(where);
        }
      }
    }
    // The sharded WorkflowTemplate's Jobs are checked in sharded.test.ts (their manifests are strings).
    expect(seen.map((w) => w.split(':')[0]).sort()).toEqual(['backfill/job.yaml', 'base/cronjob.yaml', 'overlays/minio-local/minio-setup-job.yaml']);
    expect(isJobImage('111122223333.dkr.ecr.eu-west-1.amazonaws.com/model-metrics:0.1.0') && isJobImage('model-metrics:dev') && !isJobImage('minio/mc:latest')).toBe(true);
  });
});

describe.each(kustomizationDirs.map((dir) => [relative(K8S, dir), dir]))('kustomization %s', (_name, dir) => {
  const kustomization = readYaml(join(dir, 'kustomization.yaml'));

  it('names files and folders that exist', () => {
    expect(['Kustomization', 'Component']).toContain(kustomization.kind);
    for (const entry of kustomization.resources ?? []) {
      const path = join(dir, entry);
      expect(statSync(path, { throwIfNoEntry: false }), `resource ${entry}`).toBeDefined();
      if (statSync(path).isDirectory()) expect(readYaml(join(path, 'kustomization.yaml')).kind, `resource ${entry}`).toBe('Kustomization');
    }
    for (const entry of kustomization.components ?? []) expect(readYaml(join(dir, entry, 'kustomization.yaml')).kind, `component ${entry}`).toBe('Component');
    for (const patch of kustomization.patches ?? []) if (patch.path !== undefined) expect(statSync(join(dir, patch.path), { throwIfNoEntry: false }), `patch ${patch.path}`).toBeDefined();
    for (const generator of [...(kustomization.configMapGenerator ?? []), ...(kustomization.secretGenerator ?? [])]) {
      for (const file of generator.files ?? []) expect(statSync(join(dir, file), { throwIfNoEntry: false }), `generator ${generator.name}: ${file}`).toBeDefined();
    }
  });

  it('patches and merges only objects of its build', () => {
    const contents = contentsOf(dir);
    for (const patch of kustomization.patches ?? []) {
      for (const target of patchTargets(dir, patch)) expect([...contents.objects], `patch ${patch.path ?? 'inline'} targets ${target}`).toContain(target);
    }
    const own = (generators: any[] | undefined, kind: string): string[] => (generators ?? []).filter((g) => g.behavior === 'merge' || g.behavior === 'replace').map((g) => `${kind}/${g.name}`);
    for (const merged of [...own(kustomization.configMapGenerator, 'ConfigMap'), ...own(kustomization.secretGenerator, 'Secret')]) {
      // A merge needs the generator in a resource of this build (its own generators do not count).
      const inherited = new Set<string>();
      for (const entry of [...(kustomization.resources ?? []), ...(kustomization.components ?? [])]) {
        const path = join(dir, entry);
        if (statSync(path).isDirectory()) contentsOf(path).generators.forEach((g) => inherited.add(g));
      }
      expect([...inherited], `${merged} merges into a generator of a resource`).toContain(merged);
    }
  });
});

describe('the minio-local overlay', () => {
  it('declares the conditional writes its pinned MinIO release enforces', () => {
    const kustomization = readYaml(join(K8S, 'overlays', 'minio-local', 'kustomization.yaml'));
    const env = kustomization.configMapGenerator.find((g: any) => g.name === 'model-metrics-env');
    expect(env.literals).toContain('MODEL_METRICS_S3_CONDITIONAL_WRITES=on');
    const minio = readYamlDocuments(join(K8S, 'overlays', 'minio-local', 'minio.yaml')).find((doc) => doc.kind === 'Deployment');
    const image: string = minio.spec.template.spec.containers.find((c: any) => c.name === 'minio').image;
    expect(minioEnforcesConditionalWrites(image), image).toBe(true);
  });
});

describe('the base', () => {
  const cronJob = readYaml(join(K8S, 'base', 'cronjob.yaml'));

  it('runs `scheduled` daily as a CronJob with Forbid, a starting deadline, a backoff limit and an active deadline', () => {
    expect(cronJob).toMatchObject({ apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'model-metrics' } });
    expect(cronJob.spec.schedule).toMatch(/^\S+ \S+ \* \* \*$/);
    expect(cronJob.spec.timeZone).toBe('Etc/UTC');
    expect(cronJob.spec.concurrencyPolicy).toBe('Forbid');
    expect(cronJob.spec.startingDeadlineSeconds).toBeGreaterThan(0);
    const job = cronJob.spec.jobTemplate.spec;
    expect(Number.isInteger(job.backoffLimit) && job.backoffLimit >= 0).toBe(true);
    expect(job.activeDeadlineSeconds).toBeGreaterThan(0);
    expect(job.activeDeadlineSeconds).toBeLessThan(24 * 3600);
    expect(jobContainer(job.template.spec).args[0]).toBe('scheduled');
    expect(jobContainer(job.template.spec).args).toContain('--fail-on-alert');
    // Bad usage (exit 2) and alerts (exit 4, outputs committed) fail the Job at once; evictions do not use up the backoff limit.
    expect(job.podFailurePolicy.rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: 'FailJob', onExitCodes: expect.objectContaining({ containerName: 'model-metrics', operator: 'In', values: [2, 4] }) }),
        expect.objectContaining({ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }),
      ]),
    );
    expectJobPod(job.template.spec, 'CronJob');
    expectRestricted(job.template.spec, 'CronJob');
  });

  it('holds the job options in a ConfigMap and enforces Pod Security "restricted" on the namespace', () => {
    const kustomization = readYaml(join(K8S, 'base', 'kustomization.yaml'));
    expect(kustomization.namespace).toBe(NAMESPACE);
    expect(kustomization.configMapGenerator.map((g: any) => g.name)).toEqual(['model-metrics-config', 'model-metrics-env']);
    // Fixed names: the backfill build and the Airflow DAG mount them by name.
    expect(kustomization.generatorOptions.disableNameSuffixHash).toBe(true);
    const options = readYaml(join(K8S, 'base', 'config.yaml'));
    expect(options['label-window']).toBe('P7D');
    expect(options.root, 'the root is per overlay (model-metrics-env)').toBeUndefined();
    const namespace = readYaml(join(K8S, 'base', 'namespace.yaml'));
    expect(namespace.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });

  it('has a ServiceAccount without an API token, annotated for IRSA by the aws overlay', () => {
    const account = readYaml(join(K8S, 'base', 'serviceaccount.yaml'));
    expect(account).toMatchObject({ kind: 'ServiceAccount', metadata: { name: 'model-metrics' }, automountServiceAccountToken: false });
    const patch = readYaml(join(K8S, 'overlays', 'aws', 'serviceaccount-irsa.yaml'));
    expect(patch.metadata.name).toBe('model-metrics');
    expect(patch.metadata.annotations['eks.amazonaws.com/role-arn']).toMatch(/^arn:aws:iam::\d{12}:role\/[\w+=,.@-]+$/);
  });
});

describe('the backfill Job', () => {
  const job = readYaml(join(K8S, 'backfill', 'job.yaml'));

  it('is an Indexed Job whose --shard-count is its number of completions, the index from JOB_COMPLETION_INDEX', () => {
    expect(job).toMatchObject({ apiVersion: 'batch/v1', kind: 'Job', spec: { completionMode: 'Indexed' } });
    const args: string[] = jobContainer(job.spec.template.spec).args;
    expect(args[0]).toBe('backfill');
    expect(Number(flagValue(args, '--shard-count'))).toBe(job.spec.completions);
    expect(args, 'the index comes from JOB_COMPLETION_INDEX').not.toContain('--shard-index');
    // The alerts of historical days page no one (job.yaml's header): no exit 4, so no rule for it.
    expect(args).not.toContain('--fail-on-alert');
    expect(readYaml(join(K8S, 'base', 'config.yaml'))['fail-on-alert'], 'the shared option file would pass it to the backfill too').toBeUndefined();
    expect(job.spec.podFailurePolicy.rules.flatMap((rule: any) => rule.onExitCodes?.values ?? [])).not.toContain(4);
    expect(job.spec.parallelism).toBeLessThanOrEqual(job.spec.completions);
    expect(job.spec.backoffLimitPerIndex).toBeGreaterThanOrEqual(0);
    expect(job.spec.activeDeadlineSeconds).toBeGreaterThan(0);
    expect(job.spec.podFailurePolicy.rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: 'FailJob', onExitCodes: expect.objectContaining({ values: [2] }) }),
        expect.objectContaining({ action: 'FailIndex', onExitCodes: expect.objectContaining({ values: [3] }) }),
      ]),
    );
    expectJobPod(job.spec.template.spec, 'backfill Job');
    expectRestricted(job.spec.template.spec, 'backfill Job');
  });

  it('takes the range and stage from a generated ConfigMap', () => {
    const kustomization = readYaml(join(K8S, 'backfill', 'kustomization.yaml'));
    const generator = kustomization.configMapGenerator.find((g: any) => g.name === 'model-metrics-backfill');
    const literals = Object.fromEntries(generator.literals.map((l: string) => l.split('=')));
    expect(Object.keys(literals).sort()).toEqual(['MODEL_METRICS_FROM', 'MODEL_METRICS_STAGE', 'MODEL_METRICS_TO']);
    expect(jobContainer(job.spec.template.spec).envFrom.map((s: any) => s.configMapRef?.name)).toContain('model-metrics-backfill');
  });
});
