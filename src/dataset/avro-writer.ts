/**
 * Streams records into one or more Avro container files on a store, rolling over to a new part
 * once a file holds `maxPartBytes` of uncompressed records. Blocks are compressed on libuv's
 * threads (another core) while the main thread goes on encoding, at most COMPRESSIONS_IN_FLIGHT
 * at a time, and written in order. Bytes are deterministic (the sync marker is derived from the
 * key relative to the dataset root; part boundaries depend on uncompressed sizes only), so the
 * same records give the same files on S3 and on disk. At least one file is always written,
 * header-only when there are no records.
 */
import type { Type } from 'avsc';
import { ContainerEncoder, type RawBlock } from '../avro/container-writer.js';
import type { ObjectStore } from '../storage/types.js';
import { ChunkChannel } from './chunk-channel.js';
import type { ManifestOutput } from './manifest.js';

/** Options of one output stream of files. */
export interface AvroFilesOptions {
  type: Type;
  codec: string;
  /** Key of part `index`, relative to the store root. */
  keyOf: (index: number) => string;
  metadata: Record<string, string>;
  /** Roll over once a file holds this many bytes of uncompressed records (Infinity: one file). */
  maxPartBytes: number;
  /**
   * Written under this prefix + the key, to be moved into place at commit; the sync marker and the
   * outputs still use the final key, so the bytes are those of a file written in place.
   */
  stagingPrefix?: string;
  /** Compresses a block elsewhere (the worker pool); default: the codec's own async compression (libuv's threads). */
  compress?: (codec: string, data: Buffer) => Promise<Buffer>;
  /**
   * Memory of one open part, for writers of which many are open at once (the hash buckets of a
   * spilled day): uncompressed block size (default 256 KiB), blocks compressing at once (default
   * COMPRESSIONS_IN_FLIGHT) and bytes queued for the store (default 8 MiB).
   */
  blockBytes?: number;
  compressionsInFlight?: number;
  queuedBytes?: number;
}

interface OpenPart {
  key: string;
  encoder: ContainerEncoder;
  channel: ChunkChannel;
  upload: Promise<unknown>;
  records: number;
  /** Framed blocks being compressed, oldest first. */
  inFlight: Array<Promise<Buffer>>;
}

/** Blocks compressed at once: enough to keep libuv's pool busy, few enough to bound memory (× ~256 KiB). */
const COMPRESSIONS_IN_FLIGHT = 8;

/** Queues a block's compression and framing; results are awaited in queue order. */
function startCompression(part: OpenPart, block: RawBlock, options: AvroFilesOptions): void {
  const compressed = options.compress === undefined ? part.encoder.blockCodec.compressAsync(block.data) : options.compress(options.codec, block.data);
  const framed = compressed.then((compressed) => part.encoder.frame(block, compressed));
  framed.catch(() => undefined); // awaited in order by the writer; this only keeps an early failure from being "unhandled"
  part.inFlight.push(framed);
}

/** Writes records to parts on a store; `finish` returns the outputs for the manifest. */
export class AvroFilesWriter {
  private part: OpenPart | undefined;
  private readonly outputs: ManifestOutput[] = [];

  constructor(
    private readonly store: ObjectStore,
    private readonly options: AvroFilesOptions,
  ) {}

  /**
   * Appends one record. Returns a promise only when a block was completed and handed to the upload
   * (await it: that is the backpressure); most records return undefined, sparing the hot path an
   * async call per record.
   */
  append(record: unknown): Promise<void> | undefined {
    const part = this.part;
    if (part === undefined) return this.open().then((opened) => this.appendTo(opened, record));
    return this.appendTo(part, record);
  }

  private appendTo(part: OpenPart, record: unknown): Promise<void> | undefined {
    const block = part.encoder.appendRaw(record);
    part.records++;
    if (block === undefined) return undefined;
    return this.submit(part, block);
  }

  /** Appends records encoded elsewhere (EncodedRecords of a worker), with the block and part boundaries of `append`. */
  async appendEncoded(bytes: Uint8Array, ends: Int32Array): Promise<void> {
    let next = 0;
    while (next < ends.length) {
      const part = this.part ?? (await this.open());
      const appended = part.encoder.appendEncoded(bytes, ends, next);
      part.records += appended.next - next;
      next = appended.next;
      if (appended.block !== undefined) await this.submit(part, appended.block);
    }
  }

  /** Starts compressing a block; waits for the oldest when the window is full; rolls over when the part is full. */
  private async submit(part: OpenPart, block: RawBlock): Promise<void> {
    startCompression(part, block, this.options);
    while (part.inFlight.length >= (this.options.compressionsInFlight ?? COMPRESSIONS_IN_FLIGHT)) await part.channel.push(await part.inFlight.shift()!);
    if (part.encoder.rawBytesOut >= this.options.maxPartBytes) await this.closePart();
  }

  /** Where the file of a final key is written (the key itself without a staging prefix). */
  stagedKey(key: string): string {
    return `${this.options.stagingPrefix ?? ''}${key}`;
  }

  /**
   * Ends the current part here, if it holds records, so the next record starts a new one: a
   * spilled day's curated parts each hold one bucket, in input order (SPEC §9).
   */
  async cutPart(): Promise<void> {
    if (this.part !== undefined && this.part.records > 0) await this.closePart();
  }

  /** Finishes the last part and returns every file written. */
  async finish(): Promise<ManifestOutput[]> {
    if (this.part === undefined && this.outputs.length === 0) await this.open();
    if (this.part !== undefined) await this.closePart();
    return this.outputs;
  }

  /** Stops an unfinished part after a failure elsewhere; its upload is aborted. */
  async abort(error: unknown): Promise<void> {
    const part = this.part;
    this.part = undefined;
    if (part === undefined) return;
    part.channel.fail(error);
    await Promise.allSettled(part.inFlight);
    await part.upload.catch(() => undefined);
  }

  private async open(): Promise<OpenPart> {
    const key = this.options.keyOf(this.outputs.length);
    const encoder = new ContainerEncoder({ type: this.options.type, codec: this.options.codec, metadata: this.options.metadata, syncSeed: key, blockBytes: this.options.blockBytes });
    const channel = new ChunkChannel(this.options.queuedBytes);
    const storedKey = this.stagedKey(key);
    const upload = this.store.write(storedKey, channel, 'avro/binary');
    // A failed upload must reach the producer, which may be waiting in push().
    upload.catch((error: unknown) => channel.fail(error));
    const part: OpenPart = { key, encoder, channel, upload, records: 0, inFlight: [] };
    this.part = part;
    await channel.push(encoder.header());
    return part;
  }

  private async closePart(): Promise<void> {
    const part = this.part!;
    this.part = undefined;
    const last = part.encoder.finishRaw();
    if (last !== undefined) startCompression(part, last, this.options);
    while (part.inFlight.length > 0) await part.channel.push(await part.inFlight.shift()!);
    part.channel.close();
    const written = (await part.upload) as { size: number };
    this.outputs.push({ key: part.key, size: written.size, records: part.records });
  }
}
