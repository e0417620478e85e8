/**
 * infra/kubernetes against the Kubernetes API schemas (issue 4), offline: every object of every
 * manifest file (the rendered builds: kubernetes.integ.test.ts) is validated with the
 * OpenAPI schemas that `kubernetes-models` ships (types, enums, formats such as resource quantities,
 * required fields). A misspelt enum value, a quantity like "1 Gi" or a string where an integer
 * belongs fails here instead of at `kubectl apply`.
 */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { K8S_DIR, K8S_NON_OBJECT_FILES, type K8sObject, readYamlDocuments, validateK8sObject as validate } from '../helpers/infra-helpers.js';

const K8S = K8S_DIR;

/** Manifest files: every YAML file but kustomizations, the job's option file and kustomize's configuration. */
const manifestFiles = readdirSync(K8S, { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile() && /\.ya?ml$/.test(entry.name) && entry.name !== 'kustomization.yaml')
  .map((entry) => join(entry.parentPath, entry.name))
  .filter((file) => !K8S_NON_OBJECT_FILES.includes(file))
  .sort();

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
