/**
 * Growable columns of numbers stored in fixed-size typed-array chunks. Growing never copies what
 * is already stored (unlike doubling one array), so peak memory stays at the data plus one chunk,
 * and there is no single-allocation size limit.
 */

const CHUNK_BITS = 20; // 1 Mi entries per chunk
const CHUNK_SIZE = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK_SIZE - 1;

type TypedArrayCtor<T> = { new (length: number): T; BYTES_PER_ELEMENT: number };

/** A column of one typed-array element type, appended to and read by index. */
export class ChunkedColumn<T extends Float64Array | Uint32Array | Uint8Array> {
  private readonly chunks: T[] = [];
  private length = 0;

  constructor(private readonly ctor: TypedArrayCtor<T>) {}

  /** Number of entries. */
  get size(): number {
    return this.length;
  }

  /** Bytes held by the allocated chunks. */
  get byteSize(): number {
    return this.chunks.length * CHUNK_SIZE * this.ctor.BYTES_PER_ELEMENT;
  }

  /** Appends a value and returns its index. */
  push(value: number): number {
    const index = this.length;
    const chunk = index >>> CHUNK_BITS;
    if (chunk === this.chunks.length) this.chunks.push(new this.ctor(CHUNK_SIZE));
    this.chunks[chunk]![index & CHUNK_MASK] = value;
    this.length = index + 1;
    return index;
  }

  /** The value at an index below size. */
  get(index: number): number {
    return this.chunks[index >>> CHUNK_BITS]![index & CHUNK_MASK]!;
  }

  /** Overwrites the value at an index below size. */
  set(index: number, value: number): void {
    this.chunks[index >>> CHUNK_BITS]![index & CHUNK_MASK] = value;
  }

  /** Adds to the value at an index below size. */
  add(index: number, delta: number): void {
    this.chunks[index >>> CHUNK_BITS]![index & CHUNK_MASK]! += delta;
  }
}

/** A Float64 column: values and offsets that may exceed 2^32. */
export const float64Column = (): ChunkedColumn<Float64Array> => new ChunkedColumn(Float64Array);
/** A Uint32 column: ids and counts. */
export const uint32Column = (): ChunkedColumn<Uint32Array> => new ChunkedColumn(Uint32Array);
/** A Uint8 column: flag bits. */
export const uint8Column = (): ChunkedColumn<Uint8Array> => new ChunkedColumn(Uint8Array);
