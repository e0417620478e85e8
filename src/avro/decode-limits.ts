/**
 * The bounds that keep a corrupt or hostile Avro object from exhausting memory or CPU (issue 5),
 * their defaults, and the CLI flag that raises each, named in the message of an object past it.
 */
/**
 * Bounds that keep a corrupt or hostile object from exhausting memory or CPU (issue 5). An object
 * past one fails as corrupt (E_CORRUPT_OBJECT), naming the limit; each has a CLI flag.
 */
export interface DecodeLimits {
  /** Largest header (magic, metadata, sync) accepted, in bytes (`--avro-max-header-mb`). */
  maxHeaderBytes: number;
  /** Largest block accepted as stored (compressed), in bytes; this much is buffered at most (`--avro-max-block-mb`). */
  maxBlockBytes: number;
  /** Largest record count a block may declare (`--avro-max-block-records`). */
  maxBlockRecords: number;
  /** Largest block accepted once decompressed, in bytes: guards against compression bombs (`--avro-max-inflated-block-mb`). */
  maxDecompressedBlockBytes: number;
  /** Largest string or bytes value in a record, in bytes (`--avro-max-string-mb`). */
  maxStringBytes: number;
  /** Largest item count of one array/map block, and of all arrays and maps of one record together (`--avro-max-items`). */
  maxCollectionItems: number;
  /** Deepest nesting of the writer schema: records, arrays, maps, unions, default values (`--avro-max-schema-depth`). */
  maxSchemaDepth: number;
}

/**
 * Defaults far above what writers produce: Java and avsc write headers of a few KiB and blocks of
 * 16 KiB to a few MiB, real schemas nest about ten levels; yet low enough that one object cannot
 * take more than a few GiB of memory (10^8 items of one array would).
 */
export const defaultDecodeLimits: DecodeLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024 * 1024,
  maxBlockBytes: 256 * 1024 * 1024,
  maxBlockRecords: 10_000_000,
  maxDecompressedBlockBytes: 512 * 1024 * 1024,
  maxStringBytes: 64 * 1024 * 1024,
  maxCollectionItems: 10_000_000,
  maxSchemaDepth: 128,
});

/** The flag that raises each limit, named in the message of an object past it (the way out for genuine data). */
export const limitFlags: Readonly<Record<keyof DecodeLimits, string>> = {
  maxHeaderBytes: '--avro-max-header-mb',
  maxBlockBytes: '--avro-max-block-mb',
  maxBlockRecords: '--avro-max-block-records',
  maxDecompressedBlockBytes: '--avro-max-inflated-block-mb',
  maxStringBytes: '--avro-max-string-mb',
  maxCollectionItems: '--avro-max-items',
  maxSchemaDepth: '--avro-max-schema-depth',
};

/** "maxBlockBytes (268435456; raise it with --avro-max-block-mb if the object is genuine)". */
export function limitText(limits: DecodeLimits, name: keyof DecodeLimits): string {
  return `${name} (${limits[name]}; raise it with ${limitFlags[name]} if the object is genuine)`;
}


/** The limits given, with the defaults where unset. */
export function resolveLimits(limits: Partial<DecodeLimits> | undefined): DecodeLimits {
  const resolved = { ...defaultDecodeLimits };
  for (const name of Object.keys(defaultDecodeLimits) as Array<keyof DecodeLimits>) {
    const value = limits?.[name];
    if (value !== undefined) resolved[name] = value;
  }
  return resolved;
}
