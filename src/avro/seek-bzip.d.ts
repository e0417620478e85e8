/** Types of the part of seek-bzip 2.0 (a CommonJS module without its own) that codecs.ts uses. */
declare module 'seek-bzip' {
  /** Where decoded bytes go, one at a time; a throw stops the decoding. */
  interface ByteSink {
    writeByte(byte: number): void;
  }
  /** The bzip2 decoder. */
  const Bunzip: {
    /** Decodes `input` (one bzip2 stream, or several when `multistream`) into `output`; throws on bad data or a bad CRC. */
    decode(input: Uint8Array, output: ByteSink, multistream?: boolean): void;
  };
  export default Bunzip;
}
