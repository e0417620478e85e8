/**
 * The image's read-only root filesystem (issue 4), without Docker: the job runs as an unprivileged
 * user (uid 65534, via setpriv) that may write only the dataset folder and TMPDIR, with the
 * repository (the image's /app) root-owned and HOME missing — as in a container with
 * readOnlyRootFilesystem and an emptyDir at /tmp. Needs root to drop privileges (skipped otherwise).
 */
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { chown, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_TESTS_TIMEOUT_MS, repoPath, sampleWorkspace } from '../helpers/infra-helpers.js';

/** Files under `dir` (recursively), for ownership changes. */
async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return [dir, ...entries.map((entry) => join(dir, entry))];
}

const UNPRIVILEGED = 65534;
const DROP = ['setpriv', `--reuid=${UNPRIVILEGED}`, `--regid=${UNPRIVILEGED}`, '--clear-groups'] as const;
/** Root, setpriv, and a node binary and repository the unprivileged user can run and read. */
const canDropPrivileges =
  process.getuid?.() === 0 && spawnSync(DROP[0], [...DROP.slice(1), process.execPath, '-e', `require('fs').accessSync(${JSON.stringify(repoPath('bin', 'model-metrics.js'))})`]).status === 0;

describe.skipIf(!canDropPrivileges)('with a read-only root filesystem (an unprivileged user who may write only the datasets and TMPDIR)', { timeout: CLI_TESTS_TIMEOUT_MS }, () => {
  it('runs a backfill: nothing is written outside the dataset folder and TMPDIR', async () => {
    const workspace = await sampleWorkspace('readonly');
    const { root, temp } = workspace;
    try {
      for (const path of [...(await walk(root)), temp]) await chown(path, UNPRIVILEGED, UNPRIVILEGED);
      // The repository (the image's /app) and the working directory are root's and not writable by this user.
      expect(statSync(repoPath()).mode & 0o002).toBe(0);
      const result = spawnSync(
        DROP[0],
        [...DROP.slice(1), process.execPath, '--max-semi-space-size=64', repoPath('bin', 'model-metrics.js'),
          'backfill', '--root', root, '--from', '2026-03-02', '--to', '2026-03-03', '--stage', 'final', '--as-of', '2026-03-20T00:00:00Z', '--json'],
        { cwd: '/', encoding: 'utf8', env: { HOME: '/nonexistent', TMPDIR: temp, PATH: process.env.PATH ?? '' }, timeout: 120_000 },
      );
      expect(result.status, `stderr: ${result.stderr.slice(-2000)}`).toBe(0);
      const outcomes = JSON.parse(result.stdout) as Array<{ status: string }>;
      expect(outcomes.map((o) => o.status)).toEqual(['done', 'done']);
      const written = (await walk(join(root, 'metrics'))).map((p) => relative(root, p));
      expect(written).toContain('metrics/stage=final/dt=2026-03-03/_SUCCESS');
    } finally {
      await workspace.remove();
    }
  });
});
