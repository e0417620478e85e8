/**
 * Splits decoded records into hash buckets by prediction_id (bucket-hash.ts), each record
 * re-encoded with the reader schema, so a bucket file holds exactly what the join reads back. The
 * same code runs in a worker (the `partition` task, --workers N) and on the main thread
 * (--workers 0), so both write the same bucket files. Records keep their input order within a
 * bucket (SPEC §3: first prediction wins, latest label_ts wins with ties to the later one).
 */
import type { Type } from 'avsc';
import { StringBucketer } from './bucket-hash.js';

/** The records of one input task, grouped by bucket: bucket b's records are recordStarts[b] … recordStarts[b+1] - 1. */
export interface BucketedRecords {
  /** Records decoded, the dropped ones included. */
  read: number;
  /** Encoded records, bucket after bucket; bucket b's bytes are byteStarts[b] … byteStarts[b+1] - 1. */
  bytes: Uint8Array;
  /** Per record, its end relative to its bucket's first byte (what AvroFilesWriter.appendEncoded takes). */
  ends: Int32Array;
  recordStarts: Int32Array;
  byteStarts: Int32Array;
}

/** Accumulates records, then hands them back grouped by bucket. */
export class BucketSplitter {
  private readonly bucketer: StringBucketer;
  private arena = Buffer.allocUnsafeSlow(64 * 1024);
  private used = 0;
  private bucketOfRecord: Int32Array = new Int32Array(1024);
  private endOfRecord: Int32Array = new Int32Array(1024);
  private records = 0;
  private read = 0;

  /** Labels with label_ts above `labelsThrough` are dropped (predictions: pass Infinity). */
  constructor(
    private readonly type: Type,
    readonly buckets: number,
    level: number,
    private readonly labelsThrough: number,
  ) {
    this.bucketer = new StringBucketer(buckets, level);
  }

  /** Adds records in input order. */
  add(records: ReadonlyArray<{ prediction_id: string; label_ts?: number }>): void {
    for (const record of records) {
      this.read++;
      if (record.label_ts !== undefined && record.label_ts > this.labelsThrough) continue;
      if (this.records === this.bucketOfRecord.length) {
        this.bucketOfRecord = grow(this.bucketOfRecord);
        this.endOfRecord = grow(this.endOfRecord);
      }
      let end = this.type.encode(record, this.arena, this.used);
      while (end < 0) {
        // avsc returns minus the missing byte count when the buffer is too small.
        const grown = Buffer.allocUnsafeSlow(Math.max(this.arena.length * 2, this.arena.length - end));
        this.arena.copy(grown, 0, 0, this.used);
        this.arena = grown;
        end = this.type.encode(record, this.arena, this.used);
      }
      this.bucketOfRecord[this.records] = this.bucketer.of(record.prediction_id);
      this.endOfRecord[this.records++] = end;
      this.used = end;
    }
  }

  /** The records added so far, grouped by bucket (a counting sort, stable), in buffers of their own; then starts over. */
  take(): BucketedRecords {
    const n = this.records;
    const buckets = this.buckets;
    const recordStarts = new Int32Array(buckets + 1);
    const byteStarts = new Int32Array(buckets + 1);
    for (let r = 0; r < n; r++) {
      const b = this.bucketOfRecord[r]!;
      recordStarts[b + 1]!++;
      byteStarts[b + 1]! += this.endOfRecord[r]! - (r === 0 ? 0 : this.endOfRecord[r - 1]!);
    }
    for (let b = 0; b < buckets; b++) {
      recordStarts[b + 1]! += recordStarts[b]!;
      byteStarts[b + 1]! += byteStarts[b]!;
    }
    const bytes = new Uint8Array(this.used);
    const ends = new Int32Array(n);
    const nextRecord = recordStarts.slice(0, buckets);
    const nextByte = byteStarts.slice(0, buckets);
    for (let r = 0; r < n; r++) {
      const b = this.bucketOfRecord[r]!;
      const start = r === 0 ? 0 : this.endOfRecord[r - 1]!;
      const end = this.endOfRecord[r]!;
      bytes.set(this.arena.subarray(start, end), nextByte[b]!);
      nextByte[b]! += end - start;
      ends[nextRecord[b]!++] = nextByte[b]! - byteStarts[b]!;
    }
    const taken: BucketedRecords = { read: this.read, bytes, ends, recordStarts, byteStarts };
    this.records = 0;
    this.used = 0;
    this.read = 0;
    return taken;
  }
}

function grow(array: Int32Array): Int32Array {
  const grown = new Int32Array(array.length * 2);
  grown.set(array);
  return grown;
}
