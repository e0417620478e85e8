/**
 * The worker pool of a run (`--workers N`, piscina): decoding input blocks into columnar batches,
 * encoding curated records and compressing output blocks happen on N worker threads while the main
 * thread keeps the order-dependent join. Failures come back as the errors the main-thread path
 * throws; a worker that dies (heap limit, native crash) fails the run with E_INTERNAL naming the
 * task, and `close` stops every worker (a failed or interrupted run leaves none behind).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina, queueOptionsSymbol } from 'piscina';
import type { ContainerHeader, DecodeLimits, StoredBlock } from '../avro/container-reader.js';
import { CorruptObjectError, ModelMetricsError, SchemaIncompatibleError, StorageError, type ErrorCode } from '../errors.js';
import { transferList, type JoinResults, type LabelBatch, type PredictionBatch } from './batches.js';
import type { DecodeTask, PartitionTask, Task, TaskBlock, TaskFailure, TaskReply } from './task-worker.js';
import type { BucketedRecords } from '../scale/bucket-split.js';
import type { WorkerJoinSettings } from '../join/day-join.js';
import type { SharedLabelParts } from '../join/shared-labels.js';
import type { FlushReply, FlushTask, JoinReply, JoinTask } from './join-task.js';

/** Where a task names the thread it must run on (flushJoin): piscina hands it to the load balancer. */
const THREAD = queueOptionsSymbol;

/**
 * Piscina's default balancing (a free thread, else the least busy one with room), except that a
 * task naming a thread waits for that one. Two things keep that safe: the pool's thread count is
 * fixed (minThreads = maxThreads, so a task waiting for its thread never makes piscina start
 * another), and no task is abortable (piscina's own balancer keeps those apart). A waiting task
 * holds up dispatch until a thread finishes a task; flushJoin is only sent once the join's tasks
 * are done.
 */
function balancer(task: object, workers: Array<{ id: number; currentUsage: number }>): { id: number; currentUsage: number } | null {
  const wanted = (task as { [THREAD]?: { threadId: number } })[THREAD]?.threadId;
  if (wanted !== undefined) return workers.find((worker) => worker.id === wanted && worker.currentUsage < TASKS_PER_WORKER) ?? null;
  let candidate: { id: number; currentUsage: number } | null = null;
  for (const worker of workers) {
    if (worker.currentUsage === 0) return worker;
    if (worker.currentUsage < (candidate?.currentUsage ?? TASKS_PER_WORKER)) candidate = worker;
  }
  return candidate;
}

/** Blocks each worker may hold at once (queued or running): bounds the batches in flight to 4 × N. */
export const TASKS_PER_WORKER = 4;

/** The compiled worker script; from the TypeScript sources (tests) it is the build's copy in dist/. */
function workerFile(): string {
  const here = fileURLToPath(new URL('./task-worker.js', import.meta.url));
  if (existsSync(here)) return here;
  const built = here.replace(/([\\/])src([\\/]workers[\\/])/, '$1dist$1src$2');
  if (existsSync(built)) return built;
  throw new ModelMetricsError('E_INTERNAL', `the worker script ${here} is missing (run npm run build), or run with --workers 0`, { option: '--workers' });
}

/** The writer schema's JSON text, once per header (a string is cheap to send; the parsed schema is a graph to clone). */
const schemaTexts = new WeakMap<ContainerHeader, string>();
function schemaJsonOf(header: ContainerHeader): string {
  let text = schemaTexts.get(header);
  if (text === undefined) schemaTexts.set(header, (text = JSON.stringify(header.writerSchema)));
  return text;
}

/** The blocks of a decoding task: one copy of their stored bytes of its own (they are views into the read buffer) and the header. */
function taskBlocksOf(blocks: readonly StoredBlock[]): Pick<DecodeTask, 'header' | 'blocks' | 'stored'> {
  const stored = new Uint8Array(blocks.reduce((n, block) => n + block.stored.length, 0));
  const taskBlocks: TaskBlock[] = [];
  let at = 0;
  for (const block of blocks) {
    stored.set(block.stored, at);
    taskBlocks.push({ count: block.count, start: at, end: at + block.stored.length, site: block.site });
    at += block.stored.length;
  }
  const { header } = blocks[0]!;
  return { header: { schemaJson: schemaJsonOf(header), codec: header.codec, fingerprint: header.fingerprint }, blocks: taskBlocks, stored };
}

/** "blocks 3-10 of <uri>", for a failed task's message. */
function blockRange(blocks: readonly StoredBlock[]): string {
  const first = blocks[0]!.site;
  return `blocks ${first.block}-${first.block + blocks.length - 1} of ${first.uri}`;
}

/** Rebuilds a worker's error as the main-thread error class of its code. */
function rethrown(failure: TaskFailure): ModelMetricsError {
  switch (failure.code) {
    case 'E_CORRUPT_OBJECT':
      return new CorruptObjectError(failure.message, failure.context);
    case 'E_SCHEMA_INCOMPATIBLE':
      return new SchemaIncompatibleError(failure.message, failure.context);
    case 'E_STORAGE':
      return new StorageError(failure.message, failure.context);
    default:
      return new ModelMetricsError(failure.code as ErrorCode, failure.message, failure.context);
  }
}

/** A queued task as piscina keeps it: the payload given to `run`. */
interface QueuedTask {
  task?: { op?: string };
}

/**
 * Piscina's task queue with the output side first: encoding and compressing curated blocks is what
 * the main thread waits for (its writer's window is full), while decode tasks only refill the
 * read-ahead, so they never hold those up behind them.
 */
class OutputFirstQueue {
  private readonly output: QueuedTask[] = [];
  private readonly input: QueuedTask[] = [];

  private laneOf(task: QueuedTask): QueuedTask[] {
    return task.task?.op === 'decode' || task.task?.op === 'partition' ? this.input : this.output;
  }

  get size(): number {
    return this.output.length + this.input.length;
  }

  shift(): QueuedTask | null {
    return this.output.shift() ?? this.input.shift() ?? null;
  }

  push(task: QueuedTask): void {
    this.laneOf(task).push(task);
  }

  unshift(task: QueuedTask): void {
    this.laneOf(task).unshift(task);
  }

  remove(task: QueuedTask): void {
    const lane = this.laneOf(task);
    const at = lane.indexOf(task);
    if (at >= 0) lane.splice(at, 1);
  }
}

/** N worker threads for one run. */
export class WorkerPool {
  private readonly pool: Piscina;
  private closed = false;
  /** Tasks in flight that the pipeline bounds itself to (TASKS_PER_WORKER per thread). */
  readonly capacity: number;

  constructor(readonly threads: number) {
    this.pool = new Piscina({
      filename: workerFile(),
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Number.POSITIVE_INFINITY,
      taskQueue: new OutputFirstQueue() as never,
      // Tasks are posted to the workers as soon as they are queued: piscina dispatches from the main
      // thread, which is busy joining, so with one task per worker a worker would idle between them.
      concurrentTasksPerWorker: TASKS_PER_WORKER,
      loadBalancer: balancer as never,
      // Decoding allocates short-lived records only (a batch's columns are typed arrays, outside the
      // heap): a small young generation keeps each worker's memory down.
      resourceLimits: { maxYoungGenerationSizeMb: 16 },
    });
    this.capacity = threads * TASKS_PER_WORKER;
  }

  private async run(task: Task, transfer: ArrayBuffer[], what: string): Promise<unknown> {
    let reply: TaskReply;
    try {
      reply = (await this.pool.run(task, { transferList: transfer })) as TaskReply;
    } catch (error) {
      throw new ModelMetricsError(
        'E_INTERNAL',
        `a worker thread failed while ${what} (${error instanceof Error ? error.message : String(error)}); nothing was published; rerun, and if it recurs run with --workers 0 and report it`,
        { operation: 'worker', option: '--workers' },
        { cause: error },
      );
    }
    if (!reply.ok) throw rethrown(reply.failure);
    return reply.value;
  }

  /** Decompresses and decodes consecutive stored blocks of one object into one columnar batch. */
  decode(dataset: 'predictions', blocks: readonly StoredBlock[], limits: Partial<DecodeLimits>): Promise<PredictionBatch>;
  decode(dataset: 'labels', blocks: readonly StoredBlock[], limits: Partial<DecodeLimits>): Promise<LabelBatch>;
  decode(dataset: 'predictions' | 'labels', blocks: readonly StoredBlock[], limits: Partial<DecodeLimits>): Promise<unknown> {
    const task: DecodeTask = { op: 'decode', dataset, limits, ...taskBlocksOf(blocks) };
    return this.run(task, [task.stored.buffer as ArrayBuffer], `decoding ${blockRange(blocks)}`);
  }

  /** Decodes consecutive stored blocks of one object and splits their records into hash buckets (the spill, SPEC §9). */
  partition(dataset: 'predictions' | 'labels', blocks: readonly StoredBlock[], limits: Partial<DecodeLimits>, split: { buckets: number; level: number; labelsThrough: number }): Promise<BucketedRecords> {
    const task: PartitionTask = { op: 'partition', dataset, limits, ...taskBlocksOf(blocks), ...split };
    return this.run(task, [task.stored.buffer as ArrayBuffer], `partitioning ${blockRange(blocks)}`) as Promise<BucketedRecords>;
  }

  /** Joins the planned rows of a batch against the shared labels and encodes its curated records (join-task.ts; the batch, results and plan are handed over). */
  join(batch: PredictionBatch, results: JoinResults, plan: Int32Array, heads: Int32Array, settings: WorkerJoinSettings, labels: SharedLabelParts, token: number): Promise<JoinReply> {
    const task: JoinTask = { op: 'join', batch, results, plan, heads, settings, labels, token };
    return this.run(task, [...transferList(batch), ...transferList(results), plan.buffer as ArrayBuffer, heads.buffer as ArrayBuffer], 'joining predictions') as Promise<JoinReply>;
  }

  /** Every thread's windows of a join (its token), one task aimed at each thread; call once its join tasks are done. */
  flushJoin(token: number): Promise<FlushReply[]> {
    return Promise.all(
      this.pool.threads.map((thread) => {
        const task: FlushTask & { [THREAD]?: { threadId: number } } = { op: 'flush', token, [THREAD]: { threadId: thread.threadId } };
        return this.run(task, [], 'handing over join windows') as Promise<FlushReply>;
      }),
    );
  }

  /** Compresses one output block (the data is handed over: a buffer of its own is moved, not copied, and unusable after). */
  async compress(codec: string, data: Buffer): Promise<Buffer> {
    const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !(data.buffer instanceof SharedArrayBuffer);
    const own = owned ? new Uint8Array(data.buffer, 0, data.byteLength) : new Uint8Array(data);
    const out = (await this.run({ op: 'compress', codec, data: own }, [own.buffer], `compressing a ${codec} block`)) as Uint8Array;
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }

  /** Stops every worker; pending tasks fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }
}
