import fs from 'node:fs'
import initSqlJs, { type SqlJsStatic, type Statement } from 'sql.js'

let loading: Promise<SqlJsStatic> | undefined

/**
 * sql.js, initialised once per process. The wasm bytes are handed over directly so the
 * bundle (and the single binary, which embeds them) never looks for a file next to itself.
 */
export function loadSqlJs(): Promise<SqlJsStatic> {
  loading ??= initSqlJs({ wasmBinary: wasmBytes() as unknown as ArrayBuffer })
  return loading
}

function wasmBytes(): Uint8Array {
  const embedded = (globalThis as { __OUTPOST_SQL_WASM__?: Uint8Array }).__OUTPOST_SQL_WASM__
  if (embedded) return embedded
  return fs.readFileSync(require.resolve('sql.js/dist/sql-wasm.wasm'))
}

/** Whether a prepared query returns a row for these parameters (the statement is reset for reuse). */
export function hasRow(stmt: Statement, params: (string | number)[]): boolean {
  try {
    stmt.bind(params)
    return stmt.step()
  } finally {
    stmt.reset()
  }
}
