/**
 * Dependencies that most agents never use (mqtt, nats, prom-client, cron-parser) are not part
 * of the bundle's own code: packaging/bundle.mjs bundles each one separately and stores it
 * brotli-compressed in the build's pack (src/lib/pack.ts), evaluated here the first time the
 * program requires it. V8 then neither parses nor keeps their ~1.6 MB of source in a process
 * that does not need them, and the bundle's own source does not carry them either.
 *
 * The code runs as a CommonJS module named `outpost-embedded/<name>.cjs` (what stack traces
 * show); it requires only Node's built-in modules.
 */
import vm from 'node:vm'
import { unpacked } from './pack'

const PARAMS = ['exports', 'require', 'module', '__filename', '__dirname']

/** Evaluate the packed dependency bundle `name` and return its exports. */
export function loadEmbeddedModule(name: string): unknown {
  return evaluateModule(name, unpacked(name).toString('latin1'))
}

/** Evaluate CommonJS code as the module `outpost-embedded/<name>.cjs` and return its exports. */
export function evaluateModule(name: string, code: string): unknown {
  const filename = `outpost-embedded/${name}.cjs`
  const fn = vm.compileFunction(code, PARAMS, { filename }) as (...args: unknown[]) => void
  const mod = { exports: {} as unknown }
  fn.call(mod.exports, mod.exports, require, mod, filename, __dirname)
  return mod.exports
}
