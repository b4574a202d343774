/**
 * Entry point of the single binary: hands the embedded sql.js wasm to src/store/sqljs.ts and the
 * embedded pty addon to src/lib/pty.ts, then runs the ordinary CLI. Everything is in one CommonJS
 * bundle because a Node single executable application can `require` only built-in modules.
 */
import sqlWasm from 'outpost-embed:sql-wasm'
import ptyAddon from 'outpost-embed:pty-addon'

// Base64 text, decoded only when used: decoded bytes kept in a module would stay for good.
const g = globalThis as { __OUTPOST_SQL_WASM__?: string; __OUTPOST_PTY_ADDON__?: string; __OUTPOST_SEA__?: boolean }
g.__OUTPOST_SQL_WASM__ = sqlWasm
g.__OUTPOST_PTY_ADDON__ = ptyAddon
g.__OUTPOST_SEA__ = true
// After the globals are set: main.ts starts the CLI as it is evaluated.
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('../src/main')
