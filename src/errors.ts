// Typed errors: every failure the library raises is a LowbitError with a stable `code`.

/**
 * Stable error codes. Callers may switch on `err.code`; messages may change, codes do not.
 *
 * - E_SHAPE        shapes do not match what an op or file needs
 * - E_DTYPE        wrong element type
 * - E_ARG          an argument value is invalid (negative size, bits out of range, ...)
 * - E_RANGE        an index or token id is out of range
 * - E_NONFINITE    NaN or Infinity where the operation cannot take it
 * - E_NOT_INIT     a WASM-backed call before `init()` resolved
 * - E_BACKEND      the requested backend is not available on this runtime
 * - E_OOM          WASM linear memory cannot grow to satisfy an allocation
 * - E_DETACHED     a typed-array view of WASM memory went stale after memory growth
 * - E_FORMAT       a file (safetensors, zip, pickle, json, tokenizer) is malformed
 * - E_IO           a file cannot be read or a URL cannot be fetched (names the path or URL)
 * - E_UNSAFE       a pickle asks for a global or opcode outside the allowed subset
 * - E_CONFIG       a model config has an impossible or unsupported value
 * - E_KEY          a checkpoint key is missing or unexpected
 * - E_UNSUPPORTED  a valid request this build does not implement
 * - E_VERSION      a file was written by a newer format version
 * - E_NUMERIC      a numerical failure (e.g. matrix not positive definite)
 */
export type ErrorCode =
  | 'E_SHAPE'
  | 'E_DTYPE'
  | 'E_ARG'
  | 'E_RANGE'
  | 'E_NONFINITE'
  | 'E_NOT_INIT'
  | 'E_BACKEND'
  | 'E_OOM'
  | 'E_DETACHED'
  | 'E_FORMAT'
  | 'E_IO'
  | 'E_UNSAFE'
  | 'E_CONFIG'
  | 'E_KEY'
  | 'E_UNSUPPORTED'
  | 'E_VERSION'
  | 'E_NUMERIC';

export class LowbitError extends Error {
  readonly code: ErrorCode;
  /** Optional structured context (tensor name, byte offset, requested bytes, ...). */
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(`${code}: ${message}`);
    this.name = 'LowbitError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

/** Throws `LowbitError(code, message)` unless `cond` holds. */
export function check(cond: unknown, code: ErrorCode, message: string | (() => string)): asserts cond {
  if (!cond) throw new LowbitError(code, typeof message === 'function' ? message() : message);
}

/** Formats a shape as `[2, 3, 4]` for error messages. */
export function fmtShape(shape: ArrayLike<number>): string {
  return `[${Array.from(shape).join(', ')}]`;
}
