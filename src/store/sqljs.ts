import fs from 'node:fs'
import v8 from 'node:v8'
import initSqlJs, { type Database, type SqlJsStatic, type SqlValue, type Statement } from 'sql.js'

let loading: Promise<SqlJsStatic> | undefined

/** The WebAssembly global, which the ES2022 lib (no DOM) does not declare. */
const WASM = (globalThis as unknown as { WebAssembly: { instantiate(bytes: Uint8Array, imports: unknown): Promise<{ instance: unknown }> } }).WebAssembly

/**
 * sql.js, initialised once per process. The wasm bytes are handed over directly so the
 * bundle (and the single binary, which embeds them) never looks for a file next to itself;
 * they are compiled here rather than passed as `wasmBinary`, which sql.js would keep for the
 * life of the process (V8 keeps its own copy): 650 KB that can go once compiled.
 */
export function loadSqlJs(): Promise<SqlJsStatic> {
  if (loading === undefined) {
    // V8 moves SQLite's hottest functions (the VDBE loop, the parser) from its baseline wasm
    // compiler to TurboFan within the first second; compiling the VDBE loop alone takes ~22 MB
    // of zone memory. By default each of those jobs runs on its own worker thread, and glibc
    // keeps what every thread's arena grew to: 20-35 MB of a freshly started agent's RSS.
    // One compilation task at a time leaves fewer arenas holding such a peak (12-18 MB kept in
    // the tcp bench's idle agent). The code produced is the same; the tier-up only finishes a
    // little later. Read when a wasm module is compiled: sql.js is the only one.
    v8.setFlagsFromString('--wasm-num-compilation-tasks=1')
    loading = new Promise<SqlJsStatic>((resolve, reject) => {
      initSqlJs({
        instantiateWasm(imports, receive) {
          WASM.instantiate(wasmBytes(), imports).then((r) => receive(r.instance as Parameters<typeof receive>[0]), reject)
          return {}
        },
      }).then(resolve, reject)
    })
  }
  return loading
}

function wasmBytes(): Uint8Array {
  // The single binary carries them as base64 (packaging/sea-entry.ts): decoded only for this.
  const embedded = (globalThis as { __OUTPOST_SQL_WASM__?: string }).__OUTPOST_SQL_WASM__
  if (embedded) return Buffer.from(embedded, 'base64')
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

/** Call `row` with each row a prepared query returns for these parameters (the statement is reset for reuse). */
export function eachRow(stmt: Statement, params: SqlValue[], row: (r: SqlValue[]) => void): void {
  try {
    stmt.bind(params)
    while (stmt.step()) row(stmt.get())
  } finally {
    stmt.reset()
  }
}

/** Rows per statement of a BatchStatement: sql.js pays per call (binding, the trip into wasm), not per row. */
const BATCH_ROWS = 128

/**
 * One statement run for many rows, BATCH_ROWS at a time (the rest one by one): ~3x cheaper a
 * row than a statement run per row, measured with the `seen` table. `sql(n)` is the statement
 * for n rows of `width` parameters each; `onRow` gets each row it returns. Call finish() before
 * the transaction commits; clear() after a failure.
 */
export class BatchStatement {
  private readonly many: Statement
  private readonly one: Statement
  private readonly params: SqlValue[] = []

  constructor(db: Database, sql: (rows: number) => string, private readonly width: number, private readonly onRow?: (row: SqlValue[]) => void) {
    this.many = db.prepare(sql(BATCH_ROWS))
    this.one = db.prepare(sql(1))
  }

  add(...row: SqlValue[]): void {
    for (const v of row) this.params.push(v)
    if (this.params.length === BATCH_ROWS * this.width) {
      this.run(this.many, this.params)
      this.params.length = 0
    }
  }

  /** Run it for the rows still held. */
  finish(): void {
    for (let i = 0; i < this.params.length; i += this.width) this.run(this.one, this.params.slice(i, i + this.width))
    this.params.length = 0
  }

  clear(): void {
    this.params.length = 0
  }

  free(): void {
    this.many.free()
    this.one.free()
  }

  private run(st: Statement, params: SqlValue[]): void {
    if (this.onRow === undefined) {
      st.run(params)
      return
    }
    eachRow(st, params, this.onRow)
  }
}

/** `head`: `INSERT … INTO t (a, b) VALUES`: n rows of `width` values. */
export function insertRows(head: string, width: number): (rows: number) => string {
  const row = `(${Array<string>(width).fill('?').join(', ')})`
  return (n) => `${head} ${Array<string>(n).fill(row).join(', ')}`
}
