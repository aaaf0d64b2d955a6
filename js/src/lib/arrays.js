// @ts-check
// Decoding of nbviz's binary arrays: {buffer, dtype, shape}, as sent by
// nbviz/_widget.py. Jupyter hands buffers over as DataViews into a larger
// message, so the byte offset must be honoured (and copied when unaligned).

/** @typedef {{buffer: DataView | ArrayBuffer | ArrayBufferView, dtype: string, shape: number[]}} WireArray */
/** @typedef {Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array} NumericArray */
/** @typedef {{data: NumericArray, shape: number[]}} NdArray */

const TYPES = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/**
 * @param {WireArray | null | undefined} value
 * @returns {NdArray | null}
 */
export function decodeArray(value) {
  if (value == null) return null;
  const Type = TYPES[/** @type {keyof typeof TYPES} */ (value.dtype)];
  if (!Type) throw new Error(`nbviz: unsupported array dtype ${value.dtype}`);
  const buf = value.buffer;
  /** @type {ArrayBuffer} */
  let bytes;
  let offset = 0;
  let byteLength;
  if (buf instanceof ArrayBuffer) {
    bytes = buf;
    byteLength = buf.byteLength;
  } else {
    bytes = /** @type {ArrayBuffer} */ (buf.buffer);
    offset = buf.byteOffset;
    byteLength = buf.byteLength;
  }
  const length = byteLength / Type.BYTES_PER_ELEMENT;
  let data;
  if (offset % Type.BYTES_PER_ELEMENT === 0) {
    data = new Type(bytes, offset, length);
  } else {
    data = new Type(bytes.slice(offset, offset + byteLength));
  }
  const expected = value.shape.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new Error(`nbviz: array of shape [${value.shape}] has ${data.length} elements`);
  }
  return { data, shape: value.shape.slice() };
}
