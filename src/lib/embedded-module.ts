/**
 * Dependencies that most agents never use (mqtt, nats, prom-client, cron-parser) are not part
 * of the bundle's own code: packaging/bundle.mjs bundles each one separately and stores it as
 * a brotli-compressed string, evaluated here the first time the program requires it. V8 then
 * neither parses nor keeps their ~1.6 MB of source in a process that does not need them (the
 * bundle stays one file, as the single binary needs).
 *
 * The code runs as a CommonJS module named `outpost-embedded/<name>.cjs` (what stack traces
 * show); it requires only Node's built-in modules.
 */
import vm from 'node:vm'
import { brotliDecompressSync } from 'node:zlib'

const PARAMS = ['exports', 'require', 'module', '__filename', '__dirname']

/** Evaluate one packed dependency bundle and return its exports. */
export function loadEmbeddedModule(name: string, packed: string): unknown {
  const filename = `outpost-embedded/${name}.cjs`
  const code = brotliDecompressSync(Buffer.from(packed, 'base64')).toString('latin1')
  const fn = vm.compileFunction(code, PARAMS, { filename }) as (...args: unknown[]) => void
  const mod = { exports: {} as unknown }
  fn.call(mod.exports, mod.exports, require, mod, filename, __dirname)
  return mod.exports
}
