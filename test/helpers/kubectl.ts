/**
 * kubectl for the integ tier of the deployment tests: whether it can run, and the objects of a
 * kustomize build. Only `*.integ.test.ts` files import this module (a unit test never spawns a
 * program, not even to find out whether kubectl is installed).
 */
import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import type { K8sObject } from './infra-helpers.js';

/** True when `kubectl` (with its built-in kustomize) can be run. */
export const kubectlAvailable: boolean = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

/** The objects `kubectl kustomize DIR` renders; throws with kubectl's message when the build fails. */
export function kustomizeBuild(dir: string): K8sObject[] {
  const result = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed (exit ${result.status}): ${result.stderr || result.error?.message}`);
  return parseAllDocuments(result.stdout).map((d) => d.toJS() as K8sObject).filter((o) => o !== null);
}
