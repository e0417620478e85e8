/**
 * `run --shards K` without `--phase` (SPEC §9): the three phases of a sharded day on this machine,
 * each shard a child process of the real CLI — K partition processes, then K join processes,
 * then one commit — exactly what K pods per phase of an orchestrator run. A phase starts once
 * every process of the one before has exited 0; the first failure stops the run after its phase
 * (its siblings finish) with the child's error code, and a rerun converges (every phase is
 * idempotent). SIGTERM/SIGINT are passed on to the children.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { type ErrorCode, InterruptedError, ModelMetricsError } from '../errors.js';
import type { Logger } from '../observability/log.js';
import { packageRoot } from '../package-root.js';
import type { DayResult } from '../run-results.js';

/** The CLI entry the children run (the published bin, as `npx model-metrics` does). */
const CLI_ENTRY = join(packageRoot, 'bin', 'model-metrics.js');
/** Bytes of a child's stderr kept to find its failure line; the rest is passed on as it comes. */
const STDERR_TAIL = 64 * 1024;

/** How the children run. */
export interface ShardProcessOptions {
  shards: number;
  /** `run` and its options (as flags), without --shards, --phase, --shard-index, --json or the reporting options. */
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  logger: Logger;
  /** Where the children's log lines go (the parent's stderr). */
  stderr: (chunk: Buffer) => void;
}

interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** The last JSON log line with an error code, if the child logged one. */
  failure: { code?: string; msg?: string } | undefined;
}

function runChild(args: readonly string[], options: ShardProcessOptions): Promise<ChildExit> {
  return new Promise((resolve, reject) => {
    // The bin's own V8 flag (bin/model-metrics.js shebang) is passed on; nothing else of this process's flags.
    const nodeFlags = process.execArgv.filter((flag) => flag.startsWith('--max-semi-space-size'));
    const child = spawn(process.execPath, [...nodeFlags, CLI_ENTRY, ...args], { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let tail = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      options.stderr(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    const stop = (): void => {
      child.kill('SIGTERM');
    };
    options.signal?.addEventListener('abort', stop, { once: true });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      options.signal?.removeEventListener('abort', stop);
      let failure: ChildExit['failure'];
      for (const line of tail.split('\n').reverse()) {
        if (!line.startsWith('{')) continue;
        try {
          const parsed = JSON.parse(line) as { code?: unknown; msg?: unknown; level?: unknown };
          if (typeof parsed.code === 'string' && parsed.code.startsWith('E_')) {
            failure = { code: parsed.code, msg: typeof parsed.msg === 'string' ? parsed.msg : undefined };
            break;
          }
        } catch {
          // a partial line at the start of the tail
        }
      }
      resolve({ code, signal, stdout, failure });
    });
  });
}

/** The error of a child that did not exit 0: its own code and message where it logged them. */
function childError(what: string, exit: ChildExit): ModelMetricsError {
  const byExit: Record<number, ErrorCode> = { 2: 'E_USAGE', 3: 'E_NOT_READY' };
  const code = (exit.failure?.code as ErrorCode | undefined) ?? (exit.code === null ? 'E_INTERNAL' : (byExit[exit.code] ?? 'E_INTERNAL'));
  const how = exit.code === null ? `was killed by ${exit.signal}` : `exited ${exit.code}`;
  return new ModelMetricsError(code, `${what} ${how}${exit.failure?.msg === undefined ? '' : `: ${exit.failure.msg}`}; every phase is idempotent, rerun the same command to continue`, { operation: what, exit_code: exit.code, exit_signal: exit.signal });
}

/**
 * Once a phase's children have exited after a signal: the run's InterruptedError (a SIGTERM one if
 * the signal carries another reason), so the run stops as interrupted, not as the children's failure.
 */
function throwIfInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof InterruptedError ? signal.reason : new InterruptedError('SIGTERM');
}

/** Runs the partition, join and commit phases as child processes; returns the commit's summary. */
export async function runShardsLocally(options: ShardProcessOptions): Promise<DayResult> {
  const { shards, logger } = options;
  const args = [...options.args, `--shards=${shards}`];
  for (const phase of ['partition', 'join'] as const) {
    logger.info({ event: 'shard_phase_started', phase, shards }, `${phase} phase: ${shards} process(es)`);
    const exits = await Promise.all(Array.from({ length: shards }, (_, index) => runChild([...args, `--phase=${phase}`, `--shard-index=${index}`, '--json'], options)));
    throwIfInterrupted(options.signal);
    const failed = exits.findIndex((exit) => exit.code !== 0);
    if (failed >= 0) throw childError(`the ${phase} phase of shard ${failed} of ${shards}`, exits[failed]!);
  }
  logger.info({ event: 'shard_phase_started', phase: 'commit', shards }, 'commit phase');
  const exit = await runChild([...args, '--phase=commit', '--json'], options);
  throwIfInterrupted(options.signal);
  if (exit.code !== 0) throw childError(`the commit phase (${shards} shards)`, exit);
  return JSON.parse(exit.stdout) as DayResult;
}
