/**
 * The real CLI as a child process that a test can watch and act on while it runs: every JSON log
 * line of its stderr is offered to the test's rules as soon as it arrives, so a test can SIGKILL
 * (or SIGSTOP) the process at a phase of the run named by a log event (issue 5, crash safety),
 * without any test-only hook in the job itself.
 */
import { spawn } from 'node:child_process';
import { REPO_ROOT, type LogLine } from './cli.js';

/** How a watched run ended. */
export interface WatchedExit {
  /** Exit code; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  logs: LogLine[];
  stdout: string;
  stderr: string;
  /** The line a kill rule fired on, if any. */
  killedAt?: LogLine;
}

/** A CLI child process being watched. */
export interface WatchedRun {
  pid: number;
  /** Resolves once the process has exited and been reaped (so its pid is gone). */
  exited: Promise<WatchedExit>;
  /** Resolves with the first log line (seen so far or later) that matches; undefined if the run ends first. */
  waitFor(match: (line: LogLine) => boolean): Promise<LogLine | undefined>;
  /** Sends a signal now. */
  signal(signal: NodeJS.Signals): void;
}

/** Options of a watched run. */
export interface WatchOptions {
  /** SIGKILL the process in the same tick as the first line that matches. */
  killWhen?: (line: LogLine) => boolean;
  /** Abandon (SIGKILL) a run that outlives this; default 120 s. */
  timeoutMs?: number;
}

const CLI_ENTRY = `${REPO_ROOT}bin/model-metrics.js`;

/** Starts `node bin/model-metrics.js ...args` and watches its stderr line by line. */
export function startCli(args: readonly string[], env: Record<string, string>, options: WatchOptions = {}): WatchedRun {
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const waiters: Array<{ match: (line: LogLine) => boolean; resolve: (line: LogLine | undefined) => void }> = [];
  let stdout = '';
  let stderr = '';
  let pending = '';
  let killedAt: LogLine | undefined;
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
    pending += text;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      logs.push(line);
      if (killedAt === undefined && options.killWhen?.(line) === true) {
        killedAt = line;
        child.kill('SIGKILL');
      }
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.match(line)) waiters.splice(i, 1)[0]!.resolve(line);
      }
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const exited = new Promise<WatchedExit>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      for (const waiter of waiters.splice(0)) waiter.resolve(undefined);
      resolve({ code, signal, logs, stdout, stderr, ...(killedAt === undefined ? {} : { killedAt }) });
    });
  });
  let ended = false;
  void exited.then(() => (ended = true), () => (ended = true));
  return {
    pid: child.pid!,
    exited,
    waitFor(match) {
      const seen = logs.find(match);
      if (seen !== undefined || ended) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    signal: (signal) => {
      child.kill(signal);
    },
  };
}

/** The events of a run's log, in order. */
export function eventsOf(exit: WatchedExit): string[] {
  return exit.logs.map((line) => String(line.event ?? ''));
}

/** A short account of a run, for assertion messages. */
export function describeExit(exit: WatchedExit): string {
  return `exit ${exit.code} signal ${exit.signal}\nstdout: ${exit.stdout.slice(0, 1000)}\nstderr: ${exit.stderr.slice(-3000)}`;
}
