// Typed builders for the ONNX messages the peer benchmark needs, serialized with ./protobuf.ts.
//
// Field numbers are from the ONNX schema, onnx/onnx `onnx/onnx.proto` (proto2, package onnx):
//   ModelProto         ir_version=1 (int64), producer_name=2, producer_version=3, domain=4,
//                      model_version=5, doc_string=6, graph=7 (GraphProto), opset_import=8 (repeated)
//   OperatorSetIdProto domain=1 (string), version=2 (int64)
//   GraphProto         node=1 (repeated NodeProto), name=2, initializer=5 (repeated TensorProto),
//                      doc_string=10, input=11, output=12, value_info=13 (repeated ValueInfoProto)
//   NodeProto          input=1, output=2 (repeated string), name=3, op_type=4, attribute=5, doc_string=6,
//                      domain=7
//   AttributeProto     name=1, f=2 (float), i=3 (int64), s=4 (bytes), t=5, floats=7, ints=8, type=20
//                      (AttributeType: FLOAT=1 INT=2 STRING=3 TENSOR=4 FLOATS=6 INTS=7)
//   TensorProto        dims=1 (repeated int64), data_type=2 (int32), name=8, raw_data=9 (bytes: fixed
//                      width little-endian, row-major)
//   ValueInfoProto     name=1, type=2 (TypeProto)
//   TypeProto          tensor_type=1 (TypeProto.Tensor: elem_type=1 (int32), shape=2 (TensorShapeProto))
//   TensorShapeProto   dim=1 (repeated Dimension: dim_value=1 (int64) | dim_param=2 (string))
//   TensorProto.DataType FLOAT=1 UINT8=2 INT8=3 UINT16=4 INT16=5 INT32=6 INT64=7 FLOAT16=10 ...

import { Writer } from './protobuf.js';

export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** ONNX IR version written into the model (IR v8 is what opset 17 ships with; ORT reads v3..v11+). */
export const IR_VERSION = 8;

export interface Tensor {
  name: string;
  dataType: DataTypeCode;
  dims: number[];
  /** Row-major element bytes (raw_data). */
  raw: Uint8Array;
}

export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: DataTypeCode;
  shape: Dim[];
}

export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] };

export interface Node {
  opType: string;
  inputs: string[];
  outputs: string[];
  /** '' (or absent) is the default ai.onnx domain; contrib ops use 'com.microsoft'. */
  domain?: string;
  name?: string;
  attrs?: Record<string, AttrValue>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Tensor[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export interface OpsetId {
  domain: string;
  version: number;
}

// ---- small constructors ----------------------------------------------------------------------

export const int = (value: number): AttrValue => ({ kind: 'int', value });
export const float = (value: number): AttrValue => ({ kind: 'float', value });
export const str = (value: string): AttrValue => ({ kind: 'string', value });
export const ints = (value: number[]): AttrValue => ({ kind: 'ints', value });

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function f32Tensor(name: string, dims: number[], data: Float32Array): Tensor {
  checkCount(name, dims, data.length);
  return { name, dataType: DataType.FLOAT, dims, raw: bytesOf(data) };
}

export function u8Tensor(name: string, dims: number[], data: Uint8Array): Tensor {
  checkCount(name, dims, data.length);
  return { name, dataType: DataType.UINT8, dims, raw: data };
}

export function i8Tensor(name: string, dims: number[], data: Int8Array): Tensor {
  checkCount(name, dims, data.length);
  return { name, dataType: DataType.INT8, dims, raw: bytesOf(data) };
}

function checkCount(name: string, dims: number[], n: number): void {
  const want = dims.reduce((a, b) => a * b, 1);
  if (want !== n) throw new Error(`tensor ${name}: dims [${dims.join(', ')}] need ${want} elements, got ${n}`);
}

export function valueInfo(name: string, elemType: DataTypeCode, shape: Dim[]): ValueInfo {
  return { name, elemType, shape };
}

// ---- encoders ---------------------------------------------------------------------------------

export function writeTensor(w: Writer, t: Tensor): void {
  // dims is `repeated int64` without [packed = true] in proto2: one field per dim
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.raw);
}

export function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) => {
    type.message(1, (tt) => {
      tt.int(1, v.elemType);
      tt.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => {
            if (typeof d === 'number') dim.int(1, d);
            else dim.string(2, d);
          });
        }
      });
    });
  });
}

export function writeAttribute(w: Writer, name: string, a: AttrValue): void {
  w.string(1, name);
  switch (a.kind) {
    case 'float': w.float(2, a.value); w.int(20, 1); break;
    case 'int': w.int(3, a.value); w.int(20, 2); break;
    case 'string': w.string(4, a.value); w.int(20, 3); break;
    case 'floats': for (const f of a.value) w.float(7, f); w.int(20, 6); break;
    case 'ints': for (const i of a.value) w.int(8, i); w.int(20, 7); break;
  }
}

export function writeNode(w: Writer, n: Node): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, a] of Object.entries(n.attrs ?? {})) w.message(5, (aw) => writeAttribute(aw, k, a));
  if (n.domain) w.string(7, n.domain);
}

export function writeGraph(w: Writer, g: Graph): void {
  for (const n of g.nodes) w.message(1, (nw) => writeNode(nw, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (tw) => writeTensor(tw, t));
  for (const v of g.inputs) w.message(11, (vw) => writeValueInfo(vw, v));
  for (const v of g.outputs) w.message(12, (vw) => writeValueInfo(vw, v));
}

/** A serialized ModelProto holding `graph`, importing `opsets` (ai.onnx is domain ''). */
export function modelBytes(graph: Graph, opsets: OpsetId[], producer = 'lowbit-bench'): Uint8Array {
  const w = new Writer();
  w.int(1, IR_VERSION);
  w.string(2, producer);
  w.string(3, '0');
  w.message(7, (gw) => writeGraph(gw, graph));
  for (const o of opsets) {
    w.message(8, (ow) => {
      ow.string(1, o.domain);
      ow.int(2, o.version);
    });
  }
  return w.finish();
}

/** ai.onnx opset 17 (MatMul-13, MatMulInteger-10, DynamicQuantizeLinear-11) + com.microsoft 1. */
export const DEFAULT_OPSETS: OpsetId[] = [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }];
