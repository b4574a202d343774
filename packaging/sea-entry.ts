/**
 * Entry point of the single binary: lets src/store/sqljs.ts find sql.js's wasm, then runs the
 * ordinary CLI. Everything is in one CommonJS bundle because a Node single executable
 * application can `require` only built-in modules; the wasm and the pty addon are in the pack
 * that packaging/package.mjs appends to the executable (src/lib/pack.ts), read only when used.
 */
import { packed } from '../src/lib/pack'

const g = globalThis as { __OUTPOST_SQL_WASM__?: string; __OUTPOST_SEA__?: boolean }
// sqljs.ts takes the wasm as base64 text from this global, read once when sql.js starts: a
// getter, so the text exists only for that moment rather than for the life of the process.
Object.defineProperty(g, '__OUTPOST_SQL_WASM__', { configurable: true, get: () => packed('sql-wasm')?.toString('base64') })
g.__OUTPOST_SEA__ = true
// After the globals are set: main.ts starts the CLI as it is evaluated.
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('../src/main')
