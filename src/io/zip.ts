// Minimal read-only ZIP reader for torch.save archives: central directory, STORED entries, ZIP64 (PKWARE APPNOTE 6.3.10).

import { LowbitError } from '../errors.js';
import { asBytes } from './bytes.js';

export interface ZipEntry {
  name: string;
  /** Compression method (0 = stored; the only one this reader extracts). */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  /** Absolute offset of the entry's local file header. */
  localHeaderOffset: number;
}

export interface ZipArchive {
  fileName: string;
  bytes: Uint8Array;
  entries: Map<string, ZipEntry>;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

function fail(file: string, message: string, details: Record<string, unknown> = {}): never {
  throw new LowbitError('E_FORMAT', `${file}: ${message}`, { file, ...details });
}

function u64(dv: DataView, at: number, file: string, what: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(file, `${what} ${v} at byte ${at} is too large`, { offset: at });
  return Number(v);
}

/** True when `buf` starts like a ZIP archive (local file header or empty-archive EOCD). */
export function looksLikeZip(input: Uint8Array | ArrayBuffer): boolean {
  const b = asBytes(input);
  return b.byteLength >= 4 && b[0] === 0x50 && b[1] === 0x4b && (b[2] === 0x03 || b[2] === 0x05);
}

/** Parses the central directory. Entry data is not touched until `zipEntryData`. */
export function readZip(input: Uint8Array | ArrayBuffer, opts: { fileName?: string } = {}): ZipArchive {
  const bytes = asBytes(input);
  const file = opts.fileName ?? 'archive.zip';
  const len = bytes.byteLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  if (len < 22) fail(file, `file is ${len} bytes, too short for a ZIP end-of-central-directory record`, { offset: 0 });

  // The EOCD record is the last 22 bytes plus an optional comment of up to 65535 bytes.
  let eocd = -1;
  const lowest = Math.max(0, len - 22 - U16_MAX);
  for (let at = len - 22; at >= lowest; at--) {
    if (dv.getUint32(at, true) === SIG_EOCD && at + 22 + dv.getUint16(at + 20, true) <= len) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) fail(file, 'no ZIP end-of-central-directory record (not a zip archive, or truncated)', { offset: len });

  let count = dv.getUint16(eocd + 10, true);
  let cdSize = dv.getUint32(eocd + 12, true);
  let cdOffset = dv.getUint32(eocd + 16, true);
  if (eocd >= 20 && dv.getUint32(eocd - 20, true) === SIG_EOCD64_LOCATOR) {
    const rec = u64(dv, eocd - 20 + 8, file, 'ZIP64 end-of-central-directory offset');
    if (rec + 56 > eocd - 20) fail(file, `ZIP64 end-of-central-directory offset ${rec} at byte ${eocd - 12} is out of range`, { offset: eocd - 12 });
    if (dv.getUint32(rec, true) !== SIG_EOCD64) fail(file, `no ZIP64 end-of-central-directory record at byte ${rec}`, { offset: rec });
    count = u64(dv, rec + 32, file, 'ZIP64 entry count');
    cdSize = u64(dv, rec + 40, file, 'ZIP64 central directory size');
    cdOffset = u64(dv, rec + 48, file, 'ZIP64 central directory offset');
  }
  if (cdOffset + cdSize > len) {
    fail(file, `central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the end of the ${len}-byte file`, { offset: cdOffset });
  }
  if (count * 46 > cdSize) fail(file, `central directory of ${cdSize} bytes at byte ${cdOffset} cannot hold ${count} entries`, { offset: cdOffset });

  const entries = new Map<string, ZipEntry>();
  const nameDecoder = new TextDecoder('utf-8', { fatal: false });
  let at = cdOffset;
  const cdEnd = cdOffset + cdSize;
  for (let i = 0; i < count; i++) {
    if (at + 46 > cdEnd) fail(file, `central directory entry ${i} at byte ${at} is truncated`, { offset: at });
    if (dv.getUint32(at, true) !== SIG_CENTRAL) fail(file, `bad central directory signature at byte ${at}`, { offset: at });
    const method = dv.getUint16(at + 10, true);
    const crc32 = dv.getUint32(at + 16, true);
    let compressedSize = dv.getUint32(at + 20, true);
    let size = dv.getUint32(at + 24, true);
    const nameLen = dv.getUint16(at + 28, true);
    const extraLen = dv.getUint16(at + 30, true);
    const commentLen = dv.getUint16(at + 32, true);
    let localHeaderOffset = dv.getUint32(at + 42, true);
    const next = at + 46 + nameLen + extraLen + commentLen;
    if (next > cdEnd) fail(file, `central directory entry ${i} at byte ${at} runs past the directory end`, { offset: at });
    const name = nameDecoder.decode(bytes.subarray(at + 46, at + 46 + nameLen));

    // ZIP64 extended information (header id 1): only the fields whose 32-bit value is 0xFFFFFFFF, in this order.
    let x = at + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = dv.getUint16(x, true);
      const sz = dv.getUint16(x + 2, true);
      const body = x + 4;
      if (body + sz > xEnd) fail(file, `entry '${name}': extra field at byte ${x} runs past its header`, { entry: name, offset: x });
      if (id === 0x0001) {
        let p = body;
        const take = (what: string): number => {
          if (p + 8 > body + sz) fail(file, `entry '${name}': ZIP64 extra field at byte ${x} lacks the ${what}`, { entry: name, offset: x });
          const v = u64(dv, p, file, `entry '${name}' ZIP64 ${what}`);
          p += 8;
          return v;
        };
        if (size === U32_MAX) size = take('uncompressed size');
        if (compressedSize === U32_MAX) compressedSize = take('compressed size');
        if (localHeaderOffset === U32_MAX) localHeaderOffset = take('local header offset');
      }
      x = body + sz;
    }
    if (entries.has(name)) fail(file, `duplicate entry '${name}' at byte ${at}`, { entry: name, offset: at });
    entries.set(name, { name, method, compressedSize, size, crc32, localHeaderOffset });
    at = next;
  }
  return { fileName: file, bytes, entries };
}

/**
 * The bytes of a STORED entry, as a zero-copy view. Other compression methods are rejected (torch.save never
 * compresses), so an extracted length is always bounded by the file size.
 */
export function zipEntryData(zip: ZipArchive, entry: ZipEntry): Uint8Array {
  const file = zip.fileName;
  const { bytes } = zip;
  const len = bytes.byteLength;
  if (entry.method !== 0) {
    fail(file, `entry '${entry.name}' uses compression method ${entry.method}; only stored (0) entries are supported (torch.save writes them uncompressed)`, {
      entry: entry.name,
      offset: entry.localHeaderOffset,
    });
  }
  if (entry.compressedSize !== entry.size) {
    fail(file, `stored entry '${entry.name}' has compressed size ${entry.compressedSize} != size ${entry.size}`, { entry: entry.name, offset: entry.localHeaderOffset });
  }
  const lh = entry.localHeaderOffset;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  if (lh + 30 > len || dv.getUint32(lh, true) !== SIG_LOCAL) {
    fail(file, `entry '${entry.name}': no local file header at byte ${lh}`, { entry: entry.name, offset: lh });
  }
  // Name and extra lengths come from the local header: they may differ from the central directory (torch pads here).
  const start = lh + 30 + dv.getUint16(lh + 26, true) + dv.getUint16(lh + 28, true);
  const end = start + entry.size;
  if (end > len) {
    fail(file, `entry '${entry.name}': data [${start}, ${end}) runs past the end of the ${len}-byte file`, { entry: entry.name, offset: start });
  }
  return bytes.subarray(start, end);
}

let crcTable: Int32Array | null = null;

/** CRC-32 (ISO-HDLC, as ZIP uses) of `data`. */
export function crc32(data: Uint8Array): number {
  if (crcTable === null) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  const t = crcTable;
  let c = -1;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
