/**
 * The spill folder of a run (src/scale/spill-area.ts): one `model-metrics-spill-<run id>/` with an
 * owner file, removed by `remove`; a folder whose owner is a real process that was SIGKILLed is
 * removed by the next run, while a live owner's folder and anything else in the spill dir are left
 * alone; an unusable spill dir (a file, a read-only mount) is a UsageError naming --spill-dir.
 * The child processes run the compiled module (npm run build).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { silentLogger } from '../../src/observability/log.js';
import { thisProcess } from '../../src/pipeline/lease.js';
import { OWNER_FILE, SPILL_FOLDER_PREFIX, SpillArea, type SpillOwner } from '../../src/scale/spill-area.js';
import { REPO_ROOT } from '../helpers/cli.js';

const BUILT = pathToFileURL(join(REPO_ROOT, 'dist', 'src', 'scale', 'spill-area.js')).href;
let dir: string;
const log = silentLogger();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mm-spill-area-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A real process that opens a spill area in `spillDir`, prints its path and waits to be killed. */
async function ownerProcess(spillDir: string, runId: string): Promise<{ pid: number; path: string; kill: () => Promise<void> }> {
  const script = `import { SpillArea } from ${JSON.stringify(BUILT)};
const area = await SpillArea.open(${JSON.stringify(spillDir)}, ${JSON.stringify(runId)}, { info() {} });
console.log(area.path);
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const path = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').once('data', (text: string) => resolve(text.trim()));
    child.once('exit', (code) => reject(new Error(`owner process exited with ${code}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid!,
    path,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('SpillArea', () => {
  it('creates the run folder with an owner file, and removes it', async () => {
    const area = await SpillArea.open(dir, 'run-a', log);
    expect(area.path).toBe(join(dir, `${SPILL_FOLDER_PREFIX}run-a`));
    const owner = JSON.parse(await readFile(join(area.path, OWNER_FILE), 'utf8')) as SpillOwner;
    expect(owner).toMatchObject({ pid: process.pid, host: thisProcess().host, process_space: thisProcess().process_space });
    expect(Date.parse(owner.started_at)).toBeGreaterThan(Date.now() - 60_000);
    await area.store.write('b00000/labels.avro', Buffer.from('x'));
    await area.remove();
    await area.remove();
    expect(await readdir(dir)).not.toContain(`${SPILL_FOLDER_PREFIX}run-a`);
  });

  it("removes a SIGKILLed run's folder on the next open, and keeps a live run's and other files", async () => {
    const dead = await ownerProcess(dir, 'run-killed');
    const live = await ownerProcess(dir, 'run-live');
    try {
      await writeFile(join(dead.path, 'b00001-labels.avro'), Buffer.alloc(1000));
      await dead.kill();
      const unrelated = join(dir, 'someone-elses-file');
      await writeFile(unrelated, 'keep');
      // A folder of another host (another process space) is never judged by its pid.
      const foreign = join(dir, `${SPILL_FOLDER_PREFIX}run-foreign`);
      await mkdir(foreign);
      await writeFile(join(foreign, OWNER_FILE), JSON.stringify({ process_space: 'other-host/boot/pid:[1]', host: 'other-host', pid: dead.pid, started_at: new Date().toISOString() }));
      const next = await SpillArea.open(dir, 'run-next', log);
      const names = await readdir(dir);
      expect(names).not.toContain(`${SPILL_FOLDER_PREFIX}run-killed`);
      expect(names).toEqual(expect.arrayContaining([`${SPILL_FOLDER_PREFIX}run-live`, `${SPILL_FOLDER_PREFIX}run-foreign`, `${SPILL_FOLDER_PREFIX}run-next`, 'someone-elses-file']));
      await next.remove();
      await rm(foreign, { recursive: true });
      await rm(unrelated);
    } finally {
      await live.kill();
      await dead.kill().catch(() => undefined);
    }
  });

  it('refuses a spill dir that is a file, naming --spill-dir (E_USAGE, exit 2)', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a folder');
    const error = await SpillArea.open(join(file, 'spill'), 'run-b', log).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toMatch(new RegExp(`^--spill-dir ${join(file, 'spill')} cannot hold this run's bucket files \\(ENOTDIR\\)`));
    expect((error as UsageError).context.option).toBe('--spill-dir');
  });

  // Root ignores file modes, so an unwritable folder for root is a read-only mount (needs root to make).
  const root = process.getuid?.() === 0;
  it.skipIf(!root)('refuses a read-only spill dir (a read-only tmpfs mount)', async () => {
    const mount = join(dir, 'read-only');
    await mkdir(mount);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', mount]);
    expect(mounted.status, String(mounted.stderr)).toBe(0);
    try {
      const error = await SpillArea.open(mount, 'run-c', log).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as UsageError).message).toMatch(/cannot hold this run's bucket files \(EROFS\)/);
    } finally {
      spawnSync('umount', [mount]);
    }
  });
});
