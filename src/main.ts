import v8 from 'node:v8'
import { main } from './cli'

// sql.js (the store's SQLite, the only WebAssembly here) stays on V8's baseline compiler. By
// default V8 recompiles SQLite's hottest functions with TurboFan within the first second of an
// agent; the VDBE loop alone takes ~22 MB of compiler memory, freed in pieces that glibc keeps
// resident (6-11 MB of a freshly started agent's RSS, varying from start to start). The message
// path does not show the difference (CPU per message the same within noise); SQL-heavy bulk
// work does: ~40% slower in a pure SQL loop, restarts with 100k waiting somewhat slower
// (docs/performance.md, "Memory"). Set before any wasm is compiled: flags are read then.
v8.setFlagsFromString('--no-wasm-tier-up')
v8.setFlagsFromString('--no-wasm-dynamic-tiering')
// TurboFan inlines less into each function it optimises (200 bytes of inlined bytecode, V8's
// default 920): a fresh agent optimises ~340 functions in its first 20k messages, on V8's
// worker threads, which cost the sender more CPU a message than its whole main-thread audit
// and encoding; smaller compiles cut A's CPU a message by ~9 µs in the first round, for ~6% more
// CPU in a file transfer (docs/performance.md, "the sender's background threads"). Read when a
// function is compiled: reverting is this line.
v8.setFlagsFromString('--max-inlined-bytecode-size-cumulative=200')

// A reader that goes away (`outpost send --json | head -1`) ends the command quietly, as
// SIGPIPE ends other tools, instead of a stack trace for the EPIPE of the next write.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0)
  throw e
})

void main({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr })
  .then((code) => { process.exitCode = code })
