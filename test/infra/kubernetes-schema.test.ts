/**
 * infra/kubernetes against the Kubernetes API schemas (issue 4), offline: every object of every
 * manifest file, and of every rendered build where kubectl is installed, is validated with the
 * OpenAPI schemas that `kubernetes-models` ships (types, enums, formats such as resource quantities,
 * required fields). A misspelt enum value, a quantity like "1 Gi" or a string where an integer
 * belongs fails here instead of at `kubectl apply`.
 */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { K8S_BUILDS, K8S_DIR, type K8sObject, kubectlAvailable, kustomizeBuild, readYamlDocuments } from '../helpers/infra-helpers.js';

const K8S = K8S_DIR;
const BUILDS = K8S_BUILDS;

/** Manifest files: every YAML file but kustomizations and the job's option file. */
const manifestFiles = readdirSync(K8S, { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile() && /\.ya?ml$/.test(entry.name) && entry.name !== 'kustomization.yaml')
  .map((entry) => join(entry.parentPath, entry.name))
  .filter((file) => file !== join(K8S, 'base', 'config.yaml'))
  .sort();

/** Validates one object with the model class of its apiVersion and kind; throws the schema's complaints. */
async function validate(object: K8sObject): Promise<void> {
  // kubernetes-models lays its classes out by API group and version: `v1` (core), `batch/v1`, `apps/v1`.
  const models = (await import(`kubernetes-models/${object.apiVersion}`)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = models[object.kind];
  if (Model === undefined) throw new Error(`kubernetes-models has no ${object.apiVersion} ${object.kind}`);
  new Model(object).validate();
}

describe('manifests against the Kubernetes API schemas', () => {
  it.each(manifestFiles.map((file) => [relative(K8S, file), file]))('%s', async (_name, file) => {
    const objects = readYamlDocuments(file) as K8sObject[];
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) await validate(object);
  });

  it('rejects what the API server would (the validator is live)', async () => {
    const job = readYamlDocuments(join(K8S, 'backfill', 'job.yaml'))[0] as K8sObject;
    await expect(validate({ ...job, spec: { ...job.spec, completions: '4' } })).rejects.toThrow(/completions must be integer/);
    const bad = structuredClone(job);
    bad.spec.template.spec.containers[0].resources.limits.memory = '2 GiB';
    await expect(validate(bad)).rejects.toThrow(/memory/);
  });
});

describe.skipIf(!kubectlAvailable)('rendered builds against the Kubernetes API schemas', () => {
  it.each(BUILDS.map((build) => [build]))('%s', async (build) => {
    for (const object of kustomizeBuild(join(K8S, build))) await validate(object);
  });
});
