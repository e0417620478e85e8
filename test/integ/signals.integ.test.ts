/**
 * SIGTERM and SIGINT on the real CLI process (local folder): the run stops at the next block,
 * removes its partial outputs, commits nothing, exits 143 / 130, and a rerun completes the work.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSample } from '../../src/demo/generate.js';
import { openStore } from '../../src/storage/index.js';
import { REPO_ROOT as REPO } from '../helpers/cli.js';

const DAY = '2026-03-02';
let root: string;

async function files(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  } catch {
    return [];
  }
}

/** Starts a final run and sends `signal` once the label index is built (the predictions are being joined). */
async function runAndSignal(signal: 'SIGTERM' | 'SIGINT'): Promise<{ code: number | null; events: string[] }> {
  const child = spawn(process.execPath, ['bin/model-metrics.js', 'run', '--root', root, '--date', DAY, '--stage', 'final', '--as-of', '2026-04-01T00:00:00Z', '--force'], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const events: string[] = [];
  let buffered = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    buffered += text;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      // Every line is JSON but the plain last line of a failed command (issue 10).
      if (line.startsWith('model-metrics: error: ')) continue;
      const event = (JSON.parse(line) as { event?: string }).event ?? '';
      events.push(event);
      if (event === 'labels_indexed') child.kill(signal);
    }
  });
  const code = await new Promise<number | null>((done) => child.once('close', (exit) => done(exit)));
  return { code, events };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mm-signals-'));
  await generateSample(openStore(join(root, 'predictions'), {}, '--predictions'), openStore(join(root, 'labels'), {}, '--labels'), {
    from: DAY,
    days: 1,
    predictionsPerDay: 150_000,
    filesPerDay: 24,
  });
}, 120_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('signals', () => {
  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s mid-run exits %i and leaves no _SUCCESS and no part file', async (signal, expected) => {
    const { code, events } = await runAndSignal(signal);
    expect(events).toContain('labels_indexed');
    expect(events).toContain('interrupted');
    expect(events).not.toContain('run_committed');
    expect(code).toBe(expected);
    expect(await files(join(root, 'curated'))).toEqual([]);
    expect(await files(join(root, 'metrics'))).toEqual([]);
  });

  it('a rerun after the interruption commits both partitions', async () => {
    const child = spawn(process.execPath, ['bin/model-metrics.js', 'run', '--root', root, '--date', DAY, '--stage', 'final', '--as-of', '2026-04-01T00:00:00Z', '--log-level', 'warn'], { cwd: REPO, stdio: 'ignore' });
    const code = await new Promise<number | null>((done) => child.once('close', (exit) => done(exit)));
    expect(code).toBe(0);
    expect((await files(join(root, 'curated'))).sort()).toEqual(['_SUCCESS', 'part-00000.avro']);
    expect((await files(join(root, 'metrics'))).sort()).toEqual(['_SUCCESS', 'metrics.avro']);
  });
});
