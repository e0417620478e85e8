/**
 * The direct decoder of the worker batches: reads a block's Avro binary straight into
 * PredictionColumns / LabelColumns, with no JS object per record and no JS string per id or per
 * repeated string (a byte-keyed dictionary builds each distinct string once per batch).
 *
 * It runs only for a writer schema it knows field for field (directPlan: the product's prediction
 * v1/v2 and label v1 schemas, fields in any order, request_id skipped); any other writer keeps the
 * avsc path. Within a block, anything the avsc path would refuse or could read differently (a
 * length past the block or over maxStringBytes, a map over maxCollectionItems, an unknown union
 * branch, a negative map block count, bytes left over or missing) makes it stop before that row and
 * hand the block to the avsc path (decodeBatches), which skips the rows already taken and decodes
 * the rest, or throws the very E_CORRUPT_OBJECT error (message, URI, block, offset) it always threw.
 *
 * Values are those avsc gives: longs by avsc's own varint arithmetic, doubles little-endian, an id
 * with a byte above 0x7f is decoded to a string and written back (invalid UTF-8 becomes EF BF BD,
 * as through avsc), two byte strings that decode to one string are one dictionary code, and a map
 * with an integer-like or repeated key is ordered by a real JS object, as avsc's map is.
 */
import { decodeBatches, decodeStoredBlock, decompressBlock, type BlockDecoder, type StoredBlock } from '../avro/container-reader.js';
import { hashUtf8 } from '../join/key-table.js';
import { HAS_RESIDUAL, HAS_Y_TRUE, LabelColumns, PredictionColumns, type LabelBatch, type PredictionBatch } from './batches.js';

/** What the direct decoder does with one writer field. */
const enum Op {
  Id,
  ModelName,
  ModelVersion,
  Featureset,
  YPred,
  YTrue,
  Residual,
  InferenceTs,
  Segments,
  SkipNullableString,
  LabelYTrue,
  LabelTs,
}

/** The writer fields of a directly decodable schema, in order, as Ops. */
export type DirectPlan = readonly Op[];

type Dataset = 'predictions' | 'labels';

function typeName(type: unknown): unknown {
  return typeof type === 'object' && type !== null && !Array.isArray(type) ? (type as { type?: unknown }).type : type;
}

const isString = (type: unknown): boolean => typeName(type) === 'string';
const isDouble = (type: unknown): boolean => typeName(type) === 'double';
const isNullOr = (type: unknown, branch: (t: unknown) => boolean): boolean =>
  Array.isArray(type) && type.length === 2 && typeName(type[0]) === 'null' && branch(type[1]);
function isTimestamp(type: unknown): boolean {
  if (type === 'long') return true;
  if (typeName(type) !== 'long') return false;
  const logical = (type as { logicalType?: unknown }).logicalType;
  return logical === undefined || logical === 'timestamp-micros';
}
const isStringMap = (type: unknown): boolean => typeName(type) === 'map' && isString((type as { values?: unknown }).values);

/** Per dataset: writer field name → its type test and Op; `optional` fields may be absent. */
const FIELDS: Record<Dataset, Record<string, { test: (type: unknown) => boolean; op: Op; optional?: true }>> = {
  predictions: {
    prediction_id: { test: isString, op: Op.Id },
    model_name: { test: isString, op: Op.ModelName },
    model_version: { test: isString, op: Op.ModelVersion },
    feature_set_version: { test: isString, op: Op.Featureset },
    featureset_version: { test: isString, op: Op.Featureset },
    y_pred: { test: isDouble, op: Op.YPred },
    y_true: { test: (t) => isNullOr(t, isDouble), op: Op.YTrue },
    residual: { test: (t) => isNullOr(t, isDouble), op: Op.Residual },
    inference_ts: { test: isTimestamp, op: Op.InferenceTs },
    segment_keys: { test: isStringMap, op: Op.Segments },
    request_id: { test: (t) => isNullOr(t, isString), op: Op.SkipNullableString, optional: true },
  },
  labels: {
    prediction_id: { test: isString, op: Op.Id },
    y_true: { test: isDouble, op: Op.LabelYTrue },
    label_ts: { test: isTimestamp, op: Op.LabelTs },
  },
};

/**
 * The plan of a writer schema the direct decoder reads exactly as avsc resolves it into the
 * product's reader schema, or undefined (then the avsc path decodes): a record whose fields are all
 * known, with their known types, each needed one exactly once.
 */
export function directPlan(dataset: Dataset, writerSchema: unknown): DirectPlan | undefined {
  if (typeName(writerSchema) !== 'record') return undefined;
  const fields = (writerSchema as { fields?: unknown }).fields;
  if (!Array.isArray(fields)) return undefined;
  const known = FIELDS[dataset];
  const ops: Op[] = [];
  for (const field of fields as Array<{ name?: unknown; type?: unknown }>) {
    const spec = typeof field.name === 'string' && Object.hasOwn(known, field.name) ? known[field.name]! : undefined;
    if (spec === undefined || !spec.test(field.type) || ops.includes(spec.op)) return undefined;
    ops.push(spec.op);
  }
  const needed = new Set(Object.values(known).filter((spec) => spec.optional !== true).map((spec) => spec.op));
  return ops.filter((op) => needed.has(op)).length === needed.size ? ops : undefined;
}

/** Call sites of ByteStrings.sid: the three dictionary fields, then map entries by position (the last ones share). */
const SITES = 3 + 2 * 16;

/** Whether a map key is one a JS object enumerates out of insertion order (an integer-like key). */
const INTEGER_LIKE = /^(?:0|[1-9][0-9]*)$/;

/**
 * Distinct byte strings of one batch: bytes → string id (one per distinct decoded string), the
 * string built once per distinct byte string, and the string's batch code once first used.
 */
class ByteStrings {
  private arena = Buffer.allocUnsafeSlow(16 * 1024);
  private used = 0;
  private entryStart = new Int32Array(64);
  private entryLength = new Int32Array(64);
  private entryHash = new Int32Array(64);
  private entrySid = new Int32Array(64);
  private entries = 0;
  private slots = new Int32Array(128);
  private readonly sidOfText = new Map<string, number>();
  readonly texts: string[] = [];
  /** Per string id: 1 when it is an integer-like map key. */
  integerLike = new Uint8Array(64);
  /** Per string id: its code in the batch's dictionary + 1, 0 until first used. */
  private codes = new Int32Array(64);

  /** Per call site (a field, a map entry's position): the entry it found last, tried first. */
  private readonly lastEntry = new Int32Array(SITES).fill(-1);

  /** The string id of `bytes[start..end)`; `site` (below SITES) is where the caller reads it. */
  sid(bytes: Buffer, start: number, end: number, site: number): number {
    const length = end - start;
    const last = this.lastEntry[site]!;
    if (last >= 0 && this.entryLength[last] === length) {
      const at = this.entryStart[last]!;
      let same = true;
      for (let i = 0; same && i < length; i++) same = this.arena[at + i] === bytes[start + i];
      if (same) return this.entrySid[last]!;
    }
    const hash = hashUtf8(bytes, start, end);
    const mask = this.slots.length - 1;
    let slot = hash & mask;
    for (; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot]! - 1;
      if (entry < 0) break;
      if (this.entryHash[entry] !== hash || this.entryLength[entry] !== length) continue;
      const at = this.entryStart[entry]!;
      let same = true;
      for (let i = 0; same && i < length; i++) same = this.arena[at + i] === bytes[start + i];
      if (same) {
        this.lastEntry[site] = entry;
        return this.entrySid[entry]!;
      }
    }
    this.lastEntry[site] = this.entries;
    return this.insert(bytes, start, end, hash, slot);
  }

  /** The batch code of a string id, through the columns' own dictionary on first use. */
  code(sid: number, columns: PredictionColumns): number {
    const known = this.codes[sid]!;
    if (known !== 0) return known - 1;
    const code = columns.code(this.texts[sid]!);
    this.codes[sid] = code + 1;
    return code;
  }

  private insert(bytes: Buffer, start: number, end: number, hash: number, slot: number): number {
    const length = end - start;
    if (this.used + length > this.arena.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.arena.length * 2, this.used + length));
      this.arena.copy(grown, 0, 0, this.used);
      this.arena = grown;
    }
    bytes.copy(this.arena, this.used, start, end);
    const text = bytes.toString('utf8', start, end);
    let sid = this.sidOfText.get(text);
    if (sid === undefined) {
      sid = this.texts.length;
      this.sidOfText.set(text, sid);
      this.texts.push(text);
      if (sid === this.codes.length) {
        this.codes = grow(this.codes);
        this.integerLike = grow(this.integerLike);
      }
      this.integerLike[sid] = INTEGER_LIKE.test(text) ? 1 : 0;
    }
    const entry = this.entries++;
    if (entry === this.entryStart.length) {
      this.entryStart = grow(this.entryStart);
      this.entryLength = grow(this.entryLength);
      this.entryHash = grow(this.entryHash);
      this.entrySid = grow(this.entrySid);
    }
    this.entryStart[entry] = this.used;
    this.entryLength[entry] = length;
    this.entryHash[entry] = hash;
    this.entrySid[entry] = sid;
    this.used += length;
    this.slots[slot] = entry + 1;
    if (this.entries * 2 > this.slots.length) this.regrow();
    return sid;
  }

  private regrow(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    const mask = this.slots.length - 1;
    for (let entry = 0; entry < this.entries; entry++) {
      let slot = this.entryHash[entry]! & mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
      this.slots[slot] = entry + 1;
    }
  }
}

function grow<T extends Int32Array | Uint8Array>(array: T): T {
  const grown = new (array.constructor as new (n: number) => T)(array.length * 2);
  grown.set(array);
  return grown;
}

/** Thrown inside the row loop when the avsc path must take over the block from the current row. */
const BAIL = Symbol('bail');

/**
 * Reads one block's decompressed bytes. `pos` is the read position; every read checks the bytes
 * and limits the avsc path checks, and throws BAIL where that path would fail or might differ.
 */
class BlockReader {
  pos = 0;
  private readonly view: DataView;

  constructor(
    readonly data: Buffer,
    private readonly maxStringBytes: number,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  /** A long by avsc's Tap.readLong arithmetic (lib/utils.js), so every value is the one avsc gives. */
  long(): number {
    const buf = this.data;
    let pos = this.pos;
    let n = 0;
    let k = 0;
    let b: number;
    let h: number;
    do {
      b = buf[pos++]!;
      h = b & 0x80;
      n |= (b & 0x7f) << k;
      k += 7;
    } while (h && k < 28);
    let value: number;
    if (h) {
      let f = n;
      let fk = 268435456;
      do {
        b = buf[pos++]!;
        f += (b & 0x7f) * fk;
        fk *= 128;
      } while (b & 0x80);
      value = (f % 2 ? -(f + 1) : f) / 2;
    } else {
      value = (n >> 1) ^ -(n & 1);
    }
    if (pos > buf.length) throw BAIL;
    this.pos = pos;
    return value;
  }

  /** A string's length checked like avsc's readLength; returns where it ends (its bytes start at `pos`). */
  stringEnd(): number {
    const length = this.long();
    const end = this.pos + length;
    if (length < 0 || end > this.data.length || length > this.maxStringBytes) throw BAIL;
    return end;
  }

  double(): number {
    const pos = this.pos;
    if (pos + 8 > this.data.length) throw BAIL;
    this.pos = pos + 8;
    return this.view.getFloat64(pos, true);
  }

  /** The branch of a ["null", X] union: false for null, true for X. */
  present(): boolean {
    const index = this.long();
    if (index === 0) return false;
    if (index === 1) return true;
    throw BAIL;
  }
}

/**
 * The next row's id from `bytes[start..end)`: ASCII bytes as they are; any other through the string
 * avsc would build, so invalid UTF-8 is stored as the bytes of U+FFFD as on the avsc path.
 */
function addId(columns: PredictionColumns | LabelColumns, bytes: Buffer, start: number, end: number): void {
  if (!columns.idAscii(bytes, start, end)) columns.idText(bytes.toString('utf8', start, end));
}

/** Builds one batch from a task's blocks: directly where the plan allows, by avsc otherwise. */
export class ColumnarDecoder {
  readonly columns: PredictionColumns | LabelColumns;
  private readonly strings = new ByteStrings();
  private rowPairs = new Int32Array(64);
  private keyStamp = new Int32Array(64);
  private stamp = 0;
  /** Blocks the avsc path decoded (all of them without a plan; with one, those it took over). */
  blocksByAvsc = 0;

  /** `plan` undefined: every block through avsc (the writer is not directly decodable). */
  constructor(
    private readonly dataset: Dataset,
    private readonly plan: DirectPlan | undefined,
    private readonly decoder: BlockDecoder,
    capacity: number,
  ) {
    this.columns = dataset === 'predictions' ? new PredictionColumns(capacity) : new LabelColumns(capacity);
  }

  /** Decodes one stored block into the batch. */
  block(block: Pick<StoredBlock, 'count' | 'stored' | 'site'>): void {
    const { columns, decoder } = this;
    if (this.plan === undefined) {
      this.blocksByAvsc++;
      for (const records of decodeStoredBlock(decoder, block)) columns.add(records);
      return;
    }
    const data = decompressBlock(block.stored, decoder, block.site);
    const first = columns.length;
    const reader = new BlockReader(data, decoder.limits.maxStringBytes);
    const done = this.dataset === 'predictions' ? this.predictions(reader, block.count) : this.labels(reader, block.count);
    if (done === block.count && reader.pos === data.length) return;
    this.blocksByAvsc++;
    // The avsc path reads the block again: it throws the block's error, or gives the rows from `done` on.
    let skip = columns.length - first;
    for (const records of decodeBatches({ count: block.count, data }, decoder, block.site)) {
      if (skip >= records.length) {
        skip -= records.length;
        continue;
      }
      columns.add(skip === 0 ? records : records.slice(skip));
      skip = 0;
    }
  }

  take(): PredictionBatch | LabelBatch {
    return this.columns.take();
  }

  /** Rows decoded (all of `count` unless the avsc path must take over). */
  private predictions(reader: BlockReader, count: number): number {
    const columns = this.columns as PredictionColumns;
    const { plan, strings } = this;
    const data = reader.data;
    const maxItems = this.decoder.limits.maxCollectionItems;
    let row = 0;
    try {
      for (; row < count; row++) {
        let idStart = 0;
        let idEnd = 0;
        let modelName = 0;
        let modelVersion = 0;
        let featureset = 0;
        let yPred = 0;
        let yTrue = NaN;
        let residual = NaN;
        let nullable = 0;
        let inferenceTs = 0;
        let pairs = 0;
        let irregular = false;
        for (let field = 0; field < plan!.length; field++) {
          const op = plan![field]!;
          switch (op) {
            case Op.Id:
              idEnd = reader.stringEnd();
              idStart = reader.pos;
              reader.pos = idEnd;
              break;
            case Op.ModelName:
            case Op.ModelVersion:
            case Op.Featureset: {
              const end = reader.stringEnd();
              const sid = strings.sid(data, reader.pos, end, op - Op.ModelName);
              reader.pos = end;
              if (op === Op.ModelName) modelName = sid;
              else if (op === Op.ModelVersion) modelVersion = sid;
              else featureset = sid;
              break;
            }
            case Op.YPred:
              yPred = reader.double();
              break;
            case Op.YTrue:
              if (reader.present()) {
                yTrue = reader.double();
                nullable |= HAS_Y_TRUE;
              }
              break;
            case Op.Residual:
              if (reader.present()) {
                residual = reader.double();
                nullable |= HAS_RESIDUAL;
              }
              break;
            case Op.InferenceTs:
              inferenceTs = reader.long();
              break;
            case Op.Segments: {
              const stamp = ++this.stamp;
              let itemsLeft = maxItems;
              for (let n = reader.long(); n !== 0; n = reader.long()) {
                if (n < 0 || n > itemsLeft || n > data.length - reader.pos) throw BAIL;
                itemsLeft -= n;
                while ((pairs + n) * 2 > this.rowPairs.length) this.rowPairs = grow(this.rowPairs);
                for (let i = 0; i < n; i++) {
                  const site = 3 + 2 * Math.min(pairs, 15);
                  let end = reader.stringEnd();
                  const key = strings.sid(data, reader.pos, end, site);
                  reader.pos = end;
                  end = reader.stringEnd();
                  const value = strings.sid(data, reader.pos, end, site + 1);
                  reader.pos = end;
                  while (key >= this.keyStamp.length) this.keyStamp = grow(this.keyStamp);
                  if (this.keyStamp[key] === stamp || strings.integerLike[key] === 1) irregular = true;
                  this.keyStamp[key] = stamp;
                  this.rowPairs[pairs * 2] = key;
                  this.rowPairs[pairs * 2 + 1] = value;
                  pairs++;
                }
              }
              break;
            }
            case Op.SkipNullableString:
              if (reader.present()) reader.pos = reader.stringEnd();
              break;
            default:
              throw BAIL;
          }
        }
        // The row is complete and valid: only now does it touch the columns.
        addId(columns, data, idStart, idEnd);
        const nameCode = strings.code(modelName, columns);
        const versionCode = strings.code(modelVersion, columns);
        const featuresetCode = strings.code(featureset, columns);
        if (irregular) this.pairsInObjectOrder(pairs);
        else for (let i = 0; i < pairs; i++) columns.pair(strings.code(this.rowPairs[i * 2]!, columns), strings.code(this.rowPairs[i * 2 + 1]!, columns));
        columns.endRow(yPred, yTrue, residual, nullable, inferenceTs, nameCode, versionCode, featuresetCode);
      }
    } catch (error) {
      if (error !== BAIL) throw error;
    }
    return row;
  }

  /** A map with a repeated or integer-like key: its pairs in the order (and last value per key) of the JS object avsc builds. */
  private pairsInObjectOrder(pairs: number): void {
    const columns = this.columns as PredictionColumns;
    const texts = this.strings.texts;
    const map: Record<string, string> = {};
    for (let i = 0; i < pairs; i++) {
      const key = texts[this.rowPairs[i * 2]!]!;
      const value = texts[this.rowPairs[i * 2 + 1]!]!;
      if (key === '__proto__') Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
      else map[key] = value;
    }
    for (const key in map) columns.pair(columns.code(key), columns.code(map[key]!));
  }

  private labels(reader: BlockReader, count: number): number {
    const columns = this.columns as LabelColumns;
    const data = reader.data;
    let row = 0;
    try {
      for (; row < count; row++) {
        let idStart = 0;
        let idEnd = 0;
        let yTrue = 0;
        let labelTs = 0;
        for (const op of this.plan!) {
          if (op === Op.Id) {
            idEnd = reader.stringEnd();
            idStart = reader.pos;
            reader.pos = idEnd;
          } else if (op === Op.LabelYTrue) {
            yTrue = reader.double();
          } else if (op === Op.LabelTs) {
            labelTs = reader.long();
          } else {
            throw BAIL;
          }
        }
        addId(columns, data, idStart, idEnd);
        columns.endRow(yTrue, labelTs);
      }
    } catch (error) {
      if (error !== BAIL) throw error;
    }
    return row;
  }
}
