import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeArray } from "../src/lib/arrays.js";

test("decodes a DataView into a typed array honouring byteOffset", () => {
  const backing = new ArrayBuffer(4 + 3 * 4);
  new Int32Array(backing, 4, 3).set([7, -2, 9]);
  const view = new DataView(backing, 4, 12);
  const out = decodeArray({ buffer: view, dtype: "int32", shape: [3] });
  assert.ok(out.data instanceof Int32Array);
  assert.deepEqual(Array.from(out.data), [7, -2, 9]);
  assert.deepEqual(out.shape, [3]);
});

test("copies when the offset is not aligned to the element size", () => {
  const backing = new ArrayBuffer(1 + 2 * 4);
  const bytes = new Uint8Array(backing);
  const src = new Uint8Array(new Float32Array([1.5, -3.25]).buffer);
  bytes.set(src, 1);
  const out = decodeArray({ buffer: new DataView(backing, 1, 8), dtype: "float32", shape: [2] });
  assert.deepEqual(Array.from(out.data), [1.5, -3.25]);
});

test("keeps multi-dimensional shapes and accepts ArrayBuffers", () => {
  const data = new Uint8Array([1, 2, 3, 4, 5, 6]);
  const out = decodeArray({ buffer: data.buffer, dtype: "uint8", shape: [2, 3] });
  assert.deepEqual(out.shape, [2, 3]);
  assert.equal(out.data[5], 6);
});

test("null stays null; bad dtype or shape throws", () => {
  assert.equal(decodeArray(null), null);
  assert.throws(() => decodeArray({ buffer: new ArrayBuffer(8), dtype: "int64", shape: [1] }), /dtype int64/);
  assert.throws(() => decodeArray({ buffer: new ArrayBuffer(8), dtype: "int32", shape: [3] }), /shape/);
});
