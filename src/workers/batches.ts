/**
 * Columnar batches: the records of one input block as typed arrays, built in a worker and
 * transferred (not copied) to the main thread, which joins them without a JS object or string per
 * record. Strings that repeat (model name and version, featureset, segment keys and values) are
 * dictionary codes into the batch's own `strings`; prediction ids are one UTF-8 arena with end
 * offsets. The curated records are encoded back in a worker from the batch and the join's per-row
 * results, as the very objects the main-thread path builds, so the bytes are the same.
 */
import type { Type } from 'avsc';
import { MAX_VARINT_BYTES, writeLong } from '../avro/container-format.js';
import { hashUtf8 } from '../join/key-table.js';
import { RowKind, type EnrichedRecord, type LabelRecord, type PredictionRecord } from '../join/records.js';

/** The predictions of one block, column by column. */
export interface PredictionBatch {
  count: number;
  /** UTF-8 bytes of every prediction_id, back to back; row i ends at idEnds[i]. */
  ids: Uint8Array;
  idEnds: Int32Array;
  /** Per row, the StringKeyTable hash of its id's bytes (hashUtf8). */
  idHash: Int32Array;
  yPred: Float64Array;
  /** NaN where `hasYTrue` is 0. */
  yTrue: Float64Array;
  residual: Float64Array;
  inferenceTs: Float64Array;
  /** Bit 1: y_true is not null; bit 2: residual is not null. */
  nullable: Uint8Array;
  /** Codes into `strings`. */
  modelName: Int32Array;
  modelVersion: Int32Array;
  featureset: Int32Array;
  /** Row i's segment (key code, value code) pairs are segPairs[2*segStart[i] .. 2*segStart[i+1]), in the map's key order. */
  segStart: Int32Array;
  segPairs: Int32Array;
  /**
   * Per row, a batch-local code of (modelName, modelVersion, segment pairs in map order): dense from
   * 0 in order of first occurrence, so the main thread maps each distinct one once per batch.
   */
  signature: Int32Array;
  /** Per signature code, the first row that has it. */
  signatureRow: Int32Array;
  strings: string[];
}

/** The labels of one block. */
export interface LabelBatch {
  count: number;
  ids: Uint8Array;
  idEnds: Int32Array;
  /** Per row, the StringKeyTable hash of its id's bytes (hashUtf8). */
  idHash: Int32Array;
  yTrue: Float64Array;
  labelTs: Float64Array;
}

/** What the join decided per row of a prediction batch (RowKind, records.ts), with the label fields. */
export interface JoinResults {
  kind: Uint8Array;
  yTrue: Float64Array;
  labelTs: Float64Array;
  delaySeconds: Float64Array;
}


export const HAS_Y_TRUE = 1;
export const HAS_RESIDUAL = 2;

/** The buffers to transfer with a batch (every typed array owns its buffer). */
export function transferList(batch: object): ArrayBuffer[] {
  const list: ArrayBuffer[] = [];
  for (const value of Object.values(batch)) if (ArrayBuffer.isView(value)) list.push(value.buffer as ArrayBuffer);
  return list;
}

/** Grows a typed array to at least `needed` elements, keeping its contents. */
function ensure<T extends Int32Array | Uint8Array>(array: T, needed: number): T {
  if (array.length >= needed) return array;
  const grown = new (array.constructor as new (n: number) => T)(Math.max(needed, array.length * 2));
  grown.set(array);
  return grown;
}

/** UTF-8 arena of one column of strings, grown as rows are added. */
class IdArena {
  private bytes = Buffer.allocUnsafeSlow(64 * 1024);
  private used = 0;
  add(value: string): number {
    const most = value.length * 3;
    if (this.used + most > this.bytes.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.used + most));
      this.bytes.copy(grown, 0, 0, this.used);
      this.bytes = grown;
    }
    this.used += this.bytes.write(value, this.used, 'utf8');
    return this.used;
  }
  /**
   * Appends `bytes[start..end)` if they are all ASCII (the bytes `add` writes for the string they
   * spell) and returns the end offset; returns -1, appending nothing, if any byte is above 0x7f.
   */
  addAscii(bytes: Uint8Array, start: number, end: number): number {
    const length = end - start;
    if (this.used + length > this.bytes.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.used + length));
      this.bytes.copy(grown, 0, 0, this.used);
      this.bytes = grown;
    }
    const out = this.bytes;
    let at = this.used;
    let any = 0;
    for (let i = start; i < end; i++) {
      const byte = bytes[i]!;
      any |= byte;
      out[at++] = byte;
    }
    if (any > 0x7f) return -1;
    this.used = at;
    return at;
  }
  /** hashUtf8 of the bytes at [start..end). */
  hash(start: number, end: number): number {
    return hashUtf8(this.bytes, start, end);
  }
  /** A copy of the bytes written, in a buffer of its own (to transfer). */
  take(): Uint8Array {
    return new Uint8Array(this.bytes.subarray(0, this.used));
  }
}

/**
 * The id columns both batch builders share: each row's id goes into one UTF-8 arena (`idAscii` or
 * `idText`, before the row's other fields), and the row's end records its id hash (`hashId`). One
 * class serves both, so a prediction id and a label id are stored and hashed alike; the decoder's
 * `addId` call site sees a single `idAscii` and `idText` whichever builder it fills.
 */
abstract class IdColumns {
  protected readonly arena = new IdArena();
  protected rows = 0;
  protected readonly idEnds: Int32Array;
  protected readonly idHash: Int32Array;

  constructor(capacity: number) {
    this.idEnds = new Int32Array(capacity);
    this.idHash = new Int32Array(capacity);
  }

  /** The next row's id from its bytes `bytes[start..end)` if they are all ASCII; false (nothing added) otherwise. */
  idAscii(bytes: Uint8Array, start: number, end: number): boolean {
    const idEnd = this.arena.addAscii(bytes, start, end);
    this.idEnds[this.rows] = idEnd;
    return idEnd >= 0;
  }

  /** The next row's id as a string. */
  idText(id: string): void {
    this.idEnds[this.rows] = this.arena.add(id);
  }

  /** Rows added so far. */
  get length(): number {
    return this.rows;
  }

  /** Records the hash (hashUtf8) of `row`'s id, once the row is ended. */
  protected hashId(row: number): void {
    this.idHash[row] = this.arena.hash(row === 0 ? 0 : this.idEnds[row - 1]!, this.idEnds[row]!);
  }
}

/**
 * Builds a PredictionBatch (in a worker), `count` rows at most: from decoded records (`add`), or row
 * by row from the direct decoder (columnar-decoder.ts: `idAscii`/`idText`, `pair`..., `endRow`).
 * Both end every row the same way, so idHash and signature agree whichever path filled them.
 */
export class PredictionColumns extends IdColumns {
  private readonly dictionary = new Map<string, number>();
  private readonly strings: string[] = [];
  private readonly yPred: Float64Array;
  private readonly yTrue: Float64Array;
  private readonly residual: Float64Array;
  private readonly inferenceTs: Float64Array;
  private readonly nullable: Uint8Array;
  private readonly modelName: Int32Array;
  private readonly modelVersion: Int32Array;
  private readonly featureset: Int32Array;
  private readonly segStart: Int32Array;
  private segPairs = new Int32Array(1024);
  private pairs = 0;
  private readonly signature: Int32Array;
  private readonly signatures = new SignatureTable();

  constructor(private readonly capacity: number) {
    super(capacity);
    this.yPred = new Float64Array(capacity);
    this.yTrue = new Float64Array(capacity);
    this.residual = new Float64Array(capacity);
    this.inferenceTs = new Float64Array(capacity);
    this.nullable = new Uint8Array(capacity);
    this.modelName = new Int32Array(capacity);
    this.modelVersion = new Int32Array(capacity);
    this.featureset = new Int32Array(capacity);
    this.segStart = new Int32Array(capacity + 1);
    this.signature = new Int32Array(capacity);
  }

  /** The dictionary code of a string, given in order of first use. */
  code(value: string): number {
    let code = this.dictionary.get(value);
    if (code === undefined) {
      code = this.strings.length;
      this.dictionary.set(value, code);
      this.strings.push(value);
    }
    return code;
  }

  /** One segment (key code, value code) of the next row, in the map's key order. */
  pair(key: number, value: number): void {
    if (this.pairs * 2 + 2 > this.segPairs.length) this.segPairs = ensure(this.segPairs, this.pairs * 2 + 2);
    this.segPairs[this.pairs * 2] = key;
    this.segPairs[this.pairs * 2 + 1] = value;
    this.pairs++;
  }

  /** Ends the row whose id and pairs were given: its other fields, then its id hash and signature. */
  endRow(yPred: number, yTrue: number, residual: number, nullable: number, inferenceTs: number, modelName: number, modelVersion: number, featureset: number): void {
    const row = this.rows++;
    this.yPred[row] = yPred;
    this.yTrue[row] = yTrue;
    this.residual[row] = residual;
    this.nullable[row] = nullable;
    this.inferenceTs[row] = inferenceTs;
    this.modelName[row] = modelName;
    this.modelVersion[row] = modelVersion;
    this.featureset[row] = featureset;
    this.segStart[row + 1] = this.pairs;
    this.hashId(row);
    this.signature[row] = this.signatures.codeOf(row, this.modelName, this.modelVersion, this.segStart, this.segPairs);
  }

  add(records: readonly unknown[]): void {
    for (const record of records) {
      const p = record as PredictionRecord;
      this.idText(p.prediction_id);
      const modelName = this.code(p.model_name);
      const modelVersion = this.code(p.model_version);
      const featureset = this.code(p.feature_set_version);
      const segments = p.segment_keys;
      for (const key in segments) this.pair(this.code(key), this.code(segments[key]!));
      const nullable = (p.y_true === null ? 0 : HAS_Y_TRUE) | (p.residual === null ? 0 : HAS_RESIDUAL);
      this.endRow(p.y_pred, p.y_true ?? NaN, p.residual ?? NaN, nullable, p.inference_ts, modelName, modelVersion, featureset);
    }
  }

  take(): PredictionBatch {
    const n = this.rows;
    const cut = <T extends Int32Array | Uint8Array | Float64Array>(array: T): T => (n === this.capacity ? array : (array.slice(0, n) as T));
    return {
      count: n,
      ids: this.arena.take(),
      idEnds: cut(this.idEnds),
      idHash: cut(this.idHash),
      yPred: cut(this.yPred),
      yTrue: cut(this.yTrue),
      residual: cut(this.residual),
      inferenceTs: cut(this.inferenceTs),
      nullable: cut(this.nullable),
      modelName: cut(this.modelName),
      modelVersion: cut(this.modelVersion),
      featureset: cut(this.featureset),
      segStart: this.segStart.slice(0, n + 1),
      segPairs: this.segPairs.slice(0, this.pairs * 2),
      signature: cut(this.signature),
      signatureRow: this.signatures.firstRows(),
      strings: this.strings,
    };
  }
}

/**
 * Batch-local codes of (modelName, modelVersion, segment pairs) tuples: open addressing over the
 * code + 1 of each tuple, compared with the columns of the tuple's first row (no copy of the tuple).
 */
class SignatureTable {
  private slots = new Int32Array(64);
  private hashes = new Int32Array(32);
  private rows = new Int32Array(32);
  private count = 0;

  /** The code of row's tuple, a new one when no earlier row has it. */
  codeOf(row: number, modelName: Int32Array, modelVersion: Int32Array, segStart: Int32Array, segPairs: Int32Array): number {
    const from = segStart[row]! * 2;
    const to = segStart[row + 1]! * 2;
    let h = mixSignature(mixSignature(to - from, modelName[row]!), modelVersion[row]!);
    for (let i = from; i < to; i++) h = mixSignature(h, segPairs[i]!);
    const mask = this.slots.length - 1;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const held = this.slots[slot]! - 1;
      if (held < 0) break;
      if (this.hashes[held] !== h) continue;
      const first = this.rows[held]!;
      if (modelName[first] !== modelName[row] || modelVersion[first] !== modelVersion[row]) continue;
      const firstFrom = segStart[first]! * 2;
      if (segStart[first + 1]! * 2 - firstFrom !== to - from) continue;
      let same = true;
      for (let i = 0; same && i < to - from; i++) same = segPairs[firstFrom + i] === segPairs[from + i];
      if (same) return held;
    }
    const code = this.count++;
    if (code === this.rows.length) {
      this.rows = ensure(this.rows, code + 1);
      this.hashes = ensure(this.hashes, code + 1);
    }
    this.rows[code] = row;
    this.hashes[code] = h;
    if (this.count * 2 > this.slots.length) this.regrow();
    else this.place(code);
    return code;
  }

  /** Per code, its first row (an array of its own). */
  firstRows(): Int32Array {
    return this.rows.slice(0, this.count);
  }

  private place(code: number): void {
    const mask = this.slots.length - 1;
    let slot = this.hashes[code]! & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = code + 1;
  }

  private regrow(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    for (let code = 0; code < this.count; code++) this.place(code);
  }
}

function mixSignature(h: number, value: number): number {
  const k = Math.imul(h ^ value, 0x9e3779b1);
  return k ^ (k >>> 15);
}

/**
 * Builds a LabelBatch (in a worker): from decoded records (`add`) or row by row from the direct
 * decoder (`idAscii`/`idText`, then `endRow`).
 */
export class LabelColumns extends IdColumns {
  private readonly yTrue: Float64Array;
  private readonly labelTs: Float64Array;

  constructor(capacity: number) {
    super(capacity);
    this.yTrue = new Float64Array(capacity);
    this.labelTs = new Float64Array(capacity);
  }

  /** Ends the row whose id was given. */
  endRow(yTrue: number, labelTs: number): void {
    const row = this.rows++;
    this.yTrue[row] = yTrue;
    this.labelTs[row] = labelTs;
    this.hashId(row);
  }

  add(records: readonly unknown[]): void {
    for (const record of records) {
      const label = record as LabelRecord;
      this.idText(label.prediction_id);
      this.endRow(label.y_true, label.label_ts);
    }
  }

  take(): LabelBatch {
    const n = this.rows;
    return {
      count: n,
      ids: this.arena.take(),
      idEnds: this.idEnds.slice(0, n),
      idHash: this.idHash.slice(0, n),
      yTrue: this.yTrue.slice(0, n),
      labelTs: this.labelTs.slice(0, n),
    };
  }
}

/** Empty join results for a batch of `count` rows (filled by DayJoin.planBatch and the worker's join task). */
export function joinResults(count: number): JoinResults {
  return { kind: new Uint8Array(count), yTrue: new Float64Array(count), labelTs: new Float64Array(count), delaySeconds: new Float64Array(count) };
}

/** A row's segment map, built in the decoded map's key order (so it encodes to the same bytes). */
function segmentsOf(batch: PredictionBatch, row: number): Record<string, string> {
  const map: Record<string, string> = {};
  for (let pair = batch.segStart[row]!; pair < batch.segStart[row + 1]!; pair++) {
    const key = batch.strings[batch.segPairs[pair * 2]!]!;
    const value = batch.strings[batch.segPairs[pair * 2 + 1]!]!;
    if (key === '__proto__') Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
    else map[key] = value;
  }
  return map;
}

/** The EnrichedRecord of a kept row: field for field what DayJoin.accept returns for the same prediction. */
export function enrichedRow(batch: PredictionBatch, results: JoinResults, row: number, idText: string): EnrichedRecord {
  const kind = results.kind[row]!;
  const yPred = batch.yPred[row]!;
  let yTrue: number | null = null;
  let residual: number | null = null;
  let labelTs: number | null = null;
  let delay: number | null = null;
  let source: EnrichedRecord['label_source'] = null;
  if (kind === RowKind.invalid) {
    yTrue = batch.nullable[row]! & HAS_Y_TRUE ? batch.yTrue[row]! : null;
    residual = batch.nullable[row]! & HAS_RESIDUAL ? batch.residual[row]! : null;
  } else if (kind === RowKind.fromLabels || kind === RowKind.inline) {
    yTrue = results.yTrue[row]!;
    residual = yTrue - yPred;
    labelTs = results.labelTs[row]!;
    delay = results.delaySeconds[row]!;
    source = kind === RowKind.fromLabels ? 'labels' : 'inline';
  }
  return {
    prediction_id: idText,
    model_name: batch.strings[batch.modelName[row]!]!,
    model_version: batch.strings[batch.modelVersion[row]!]!,
    featureset_version: batch.strings[batch.featureset[row]!]!,
    y_pred: yPred,
    y_true: yTrue,
    residual,
    inference_ts: batch.inferenceTs[row]!,
    segment_keys: segmentsOf(batch, row),
    label_ts: labelTs,
    label_delay_seconds: delay,
    label_source: source,
  };
}

/** Encoded curated records of a batch: bytes back to back, record i ending at ends[i]. */
export interface EncodedRecords {
  bytes: Uint8Array;
  ends: Int32Array;
}

/**
 * Encodes the kept rows of a batch as EnrichedPrediction records (schemas/enriched/v1.avsc), in row
 * order, straight from the columns: the bytes avsc writes for `enrichedRow` (strings as length +
 * UTF-8, doubles little-endian, longs zig-zag, a union's branch index first, a map as one block of
 * its keys in the decoded map's order), without building the record. The same-bytes test compares
 * it with the main thread's avsc encoding on every kind of row.
 */
export function encodeKeptRows(batch: PredictionBatch, results: JoinResults): EncodedRecords {
  const dictionary = batch.strings.map((text) => Buffer.from(text, 'utf8'));
  const longest = dictionary.reduce((most, bytes) => Math.max(most, bytes.length), 0) + MAX_VARINT_BYTES;
  const ids = batch.ids;
  let out = Buffer.allocUnsafeSlow(Math.max(4096, batch.count * 160));
  const ends = new Int32Array(batch.count);
  let kept = 0;
  let pos = 0;
  const string = (bytes: Uint8Array): void => {
    pos = writeLong(bytes.length, out, pos);
    out.set(bytes, pos);
    pos += bytes.length;
  };
  const nullableDouble = (present: boolean, value: number): void => {
    if (!present) {
      out[pos++] = 0;
      return;
    }
    out[pos++] = 2; // branch 1, zig-zag
    pos = out.writeDoubleLE(value, pos);
  };
  for (let row = 0; row < batch.count; row++) {
    const kind = results.kind[row]!;
    if (kind === RowKind.dropped) continue;
    const idStart = row === 0 ? 0 : batch.idEnds[row - 1]!;
    const idEnd = batch.idEnds[row]!;
    const pairsFrom = batch.segStart[row]!;
    const pairsTo = batch.segStart[row + 1]!;
    const bound = idEnd - idStart + (5 + 2 * (pairsTo - pairsFrom)) * longest + 96;
    if (pos + bound > out.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(out.length * 2, pos + bound));
      out.copy(grown, 0, 0, pos);
      out = grown;
    }
    const yPred = batch.yPred[row]!;
    string(ids.subarray(idStart, idEnd));
    string(dictionary[batch.modelName[row]!]!);
    string(dictionary[batch.modelVersion[row]!]!);
    string(dictionary[batch.featureset[row]!]!);
    pos = out.writeDoubleLE(yPred, pos);
    const labeled = kind === RowKind.fromLabels || kind === RowKind.inline;
    if (kind === RowKind.invalid) {
      nullableDouble((batch.nullable[row]! & HAS_Y_TRUE) !== 0, batch.yTrue[row]!);
      nullableDouble((batch.nullable[row]! & HAS_RESIDUAL) !== 0, batch.residual[row]!);
    } else {
      nullableDouble(labeled, results.yTrue[row]!);
      nullableDouble(labeled, results.yTrue[row]! - yPred);
    }
    pos = writeLong(batch.inferenceTs[row]!, out, pos);
    if (pairsTo > pairsFrom) {
      pos = writeLong(pairsTo - pairsFrom, out, pos);
      for (let pair = pairsFrom; pair < pairsTo; pair++) {
        string(dictionary[batch.segPairs[pair * 2]!]!);
        string(dictionary[batch.segPairs[pair * 2 + 1]!]!);
      }
    }
    out[pos++] = 0; // end of the map
    if (labeled) {
      out[pos++] = 2;
      pos = writeLong(results.labelTs[row]!, out, pos);
    } else {
      out[pos++] = 0;
    }
    nullableDouble(labeled, results.delaySeconds[row]!);
    if (labeled) {
      out[pos++] = 2;
      string(kind === RowKind.fromLabels ? LABELS : INLINE);
    } else {
      out[pos++] = 0;
    }
    ends[kept++] = pos;
  }
  return { bytes: new Uint8Array(out.subarray(0, pos)), ends: ends.slice(0, kept) };
}

/** Encodes the kept rows with avsc from the records `enrichedRow` builds: for a curated schema other than the one encodeKeptRows writes. */
export function encodeKeptRowsWith(type: Type, batch: PredictionBatch, results: JoinResults): EncodedRecords {
  const ids = Buffer.from(batch.ids.buffer, batch.ids.byteOffset, batch.ids.byteLength);
  const records: Buffer[] = [];
  const ends = new Int32Array(batch.count);
  let kept = 0;
  let pos = 0;
  for (let row = 0; row < batch.count; row++) {
    if (results.kind[row] === RowKind.dropped) continue;
    const bytes = type.toBuffer(enrichedRow(batch, results, row, ids.toString('utf8', row === 0 ? 0 : batch.idEnds[row - 1]!, batch.idEnds[row]!)));
    records.push(bytes);
    pos += bytes.length;
    ends[kept++] = pos;
  }
  return { bytes: new Uint8Array(Buffer.concat(records)), ends: ends.slice(0, kept) };
}

/** The curated fields encodeKeptRows writes, in order, with their types (schemas/enriched/v1.avsc). */
export const HAND_ENCODED_FIELDS = JSON.stringify([
  ['prediction_id', 'string'], ['model_name', 'string'], ['model_version', 'string'], ['featureset_version', 'string'], ['y_pred', 'double'],
  ['y_true', ['null', 'double']], ['residual', ['null', 'double']], ['inference_ts', { type: 'long', logicalType: 'timestamp-micros' }],
  ['segment_keys', { type: 'map', values: 'string' }], ['label_ts', ['null', { type: 'long', logicalType: 'timestamp-micros' }]],
  ['label_delay_seconds', ['null', 'double']], ['label_source', ['null', 'string']],
]);

const LABELS = Buffer.from('labels', 'utf8');
const INLINE = Buffer.from('inline', 'utf8');
