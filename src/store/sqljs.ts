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

/** Rows per statement of a BatchInsert: sql.js pays per call (binding, the trip into wasm), not per row. */
const BATCH_ROWS = 128

/**
 * Inserts rows BATCH_ROWS at a time through one multi-row statement, the rest one by one
 * (~3x cheaper a row than a statement run per row, measured with the `seen` table). Call
 * finish() before the transaction commits; clear() after a failure.
 */
export class BatchInsert {
  private readonly many: Statement
  private readonly one: Statement
  private readonly params: SqlValue[] = []
  private readonly width: number

  /** `head`: `INSERT … INTO t (a, b) VALUES`; `width`: the columns of a row. */
  constructor(db: Database, head: string, width: number) {
    const row = `(${Array<string>(width).fill('?').join(', ')})`
    this.width = width
    this.many = db.prepare(`${head} ${Array<string>(BATCH_ROWS).fill(row).join(', ')}`)
    this.one = db.prepare(`${head} ${row}`)
  }

  add(...row: SqlValue[]): void {
    for (const v of row) this.params.push(v)
    if (this.params.length === BATCH_ROWS * this.width) {
      this.many.run(this.params)
      this.params.length = 0
    }
  }

  /** Insert the rows still held. */
  finish(): void {
    for (let i = 0; i < this.params.length; i += this.width) this.one.run(this.params.slice(i, i + this.width))
    this.params.length = 0
  }

  clear(): void {
    this.params.length = 0
  }

  free(): void {
    this.many.free()
    this.one.free()
  }
}
