/**
 * Streams records into one or more Avro container files on a store, rolling over to a new part
 * when a file reaches `maxPartBytes`. Bytes are deterministic (the sync marker is derived from the
 * key relative to the dataset root), so the same records give the same files on S3 and on disk.
 * At least one file is always written, header-only when there are no records.
 */
import type { Type } from 'avsc';
import { ContainerEncoder } from '../avro/container-writer.js';
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
  /** Roll over once a file holds this many bytes (Infinity: one file). */
  maxPartBytes: number;
}

interface OpenPart {
  key: string;
  encoder: ContainerEncoder;
  channel: ChunkChannel;
  upload: Promise<unknown>;
  records: number;
}

/** Writes records to parts on a store; `finish` returns the outputs for the manifest. */
export class AvroFilesWriter {
  private part: OpenPart | undefined;
  private readonly outputs: ManifestOutput[] = [];
  /** Every key this writer started, for cleanup after a failure. */
  readonly startedKeys: string[] = [];

  constructor(
    private readonly store: ObjectStore,
    private readonly options: AvroFilesOptions,
  ) {}

  /** Appends one record, rolling to a new part when the current one is full. */
  async append(record: unknown): Promise<void> {
    const part = this.part ?? (await this.open());
    const block = part.encoder.append(record);
    part.records++;
    if (block !== undefined) {
      await part.channel.push(block);
      if (part.encoder.bytesOut >= this.options.maxPartBytes) await this.closePart();
    }
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
    await part.upload.catch(() => undefined);
  }

  private async open(): Promise<OpenPart> {
    const key = this.options.keyOf(this.outputs.length);
    const encoder = new ContainerEncoder({ type: this.options.type, codec: this.options.codec, metadata: this.options.metadata, syncSeed: key });
    const channel = new ChunkChannel();
    const upload = this.store.write(key, channel, 'avro/binary');
    // A failed upload must reach the producer, which may be waiting in push().
    upload.catch((error: unknown) => channel.fail(error));
    this.startedKeys.push(key);
    const part: OpenPart = { key, encoder, channel, upload, records: 0 };
    this.part = part;
    await channel.push(encoder.header());
    return part;
  }

  private async closePart(): Promise<void> {
    const part = this.part!;
    this.part = undefined;
    const last = part.encoder.finish();
    if (last !== undefined) await part.channel.push(last);
    part.channel.close();
    const written = (await part.upload) as { size: number };
    this.outputs.push({ key: part.key, size: written.size, records: part.records });
  }
}
