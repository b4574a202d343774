// One esbuild step for both outputs: dist/outpost.cjs (what `npx outpost` runs) and, for the
// single binaries, one bundle per architecture from packaging/sea-entry.ts that carries sql.js's
// wasm and that architecture's pty addon, with @lydell/node-pty's addon lookup swapped for
// src/lib/pty.ts's embedded loader. Payloads used rarely or once (the lazily loaded
// dependencies, the console, the wasm, the addon) go in a pack beside the bundle
// (`<name>.pack`, src/lib/pack.ts) rather than in its source, which V8 keeps in memory.
import { build, transform } from 'esbuild'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { brotliCompressSync, constants as zlib } from 'node:zlib'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'package.json'))

/**
 * @param {object} o
 * @param {string} o.outfile
 * @param {boolean} [o.sea]            bundle packaging/sea-entry.ts with embedded assets
 * @param {string | null} [o.ptyAddon] path of this architecture's pty.node (sea only; null: none)
 * @param {string} [o.version]         stamp another version than package.json's
 * @param {boolean} [o.sourcemap]
 * @param {string} [o.entry]           another entry than src/main.ts / packaging/sea-entry.ts (tests)
 * @returns {Promise<number>} bytes written: the bundle, its map and its pack (`packFile(outfile)`)
 */
export async function bundle({ outfile, sea = false, ptyAddon = null, version, sourcemap = !sea, entry }) {
  /** @type {Map<string, Buffer | Promise<Buffer>>} payloads by name, for the pack */
  const payloads = new Map()
  const result = await build({
    entryPoints: [entry ?? join(root, sea ? 'packaging/sea-entry.ts' : 'src/main.ts')],
    outfile,
    write: false,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20.11',
    sourcemap: sourcemap ? 'linked' : false,
    legalComments: 'none',
    logLevel: 'error',
    define: { __OUTPOST_PACK__: JSON.stringify(sea ? '@self' : basename(packFile(outfile))), ...(version === undefined ? {} : { __OUTPOST_VERSION__: JSON.stringify(version) }) },
    plugins: [lazyPlugin(payloads), consolePlugin(payloads), ...(sea ? [embedPlugin(ptyAddon, payloads)] : [])],
    // From a checkout the pty package stays in node_modules (it finds its prebuilt addon with a
    // computed require); the single binary bundles it with the embedded addon instead.
    external: sea ? [] : ['@lydell/node-pty'],
  })
  let bytes = 0
  await mkdir(dirname(outfile), { recursive: true })
  const pack = await packOf(payloads)
  // Written aside and renamed into place: a process still running the previous build keeps
  // reading the pack it opened at start (same for the bundle, which it has already read).
  for (const [file, contents] of [
    ...await Promise.all(result.outputFiles.map(async (f) => [f.path, f.path.endsWith('.map') ? f.contents : Buffer.from(await asciiOnly(f.text), 'latin1')])),
    [packFile(outfile), pack],
  ]) {
    await writeFile(`${file}.tmp`, contents)
    await rename(`${file}.tmp`, file)
    bytes += contents.length
  }
  return bytes
}

/** The pack written beside a bundle: dist/outpost.cjs → dist/outpost.pack. */
export function packFile(outfile) {
  return outfile.replace(/\.c?js$/, '') + '.pack'
}

/** src/lib/pack.ts's format: payloads, JSON index, u32 LE index length, u32 LE pack length, MAGIC. */
const MAGIC = 'OUTPACK1'
async function packOf(payloads) {
  const parts = []
  const index = {}
  let offset = 0
  for (const [name, value] of [...payloads].sort(([a], [b]) => a.localeCompare(b))) {
    const data = await value
    index[name] = [offset, data.length]
    parts.push(data)
    offset += data.length
  }
  const json = Buffer.from(JSON.stringify(index), 'utf8')
  const trailer = Buffer.alloc(16)
  trailer.writeUInt32LE(json.length, 0)
  trailer.writeUInt32LE(offset + json.length + trailer.length, 4)
  trailer.write(MAGIC, 8, 'latin1')
  return Buffer.concat([...parts, json, trailer])
}

/**
 * The bundle with every non-ASCII character of its comments replaced by `?`. esbuild escapes
 * non-ASCII characters in code (charset ascii) but copies comments as they are, and one
 * character outside Latin-1 makes V8 hold the whole source as UTF-16, two bytes a character,
 * in every process (it was 5.5 MB instead of 2.7). One `?` per UTF-16 code unit keeps every column, so the source map still
 * fits. Checked: without comments, the code must come out the same.
 */
async function asciiOnly(code) {
  const replaced = code.replace(/[^\x00-\x7f]/g, '?')
  if (replaced === code) return code
  const strip = (c) => transform(c, { loader: 'js', minifyWhitespace: true, legalComments: 'none', logLevel: 'silent' }).then((r) => r.code)
  const [before, after] = await Promise.all([strip(code), strip(replaced)])
  if (before !== after) throw new Error('bundle: non-ASCII characters outside comments; cannot make the bundle ASCII-only')
  return replaced
}

/**
 * Dependencies an agent loads only when its config asks for them (the mqtt and nats
 * transports, api.metrics, schedules): each is bundled on its own and kept brotli-compressed in
 * the pack, which src/lib/embedded-module.ts evaluates on the first `require`.
 */
export const LAZY = ['mqtt', 'nats', 'prom-client', 'cron-parser']

function lazyPlugin(payloads) {
  const loader = join(root, 'src', 'lib', 'embedded-module.ts')
  const filter = new RegExp(`^(${LAZY.join('|')})$`)
  return {
    name: 'outpost-lazy',
    setup(b) {
      b.onResolve({ filter }, (args) => (/[\\/]node_modules[\\/]/.test(args.importer) ? undefined : { path: args.path, namespace: 'outpost-lazy' }))
      b.onLoad({ filter: /.*/, namespace: 'outpost-lazy' }, (args) => {
        if (!payloads.has(args.path)) payloads.set(args.path, packDependency(args.path))
        return { contents: `module.exports = require(${JSON.stringify(loader)}).loadEmbeddedModule(${JSON.stringify(args.path)})`, loader: 'js', resolveDir: root }
      })
    },
  }
}

/**
 * The fleet console (console/): its TSX and CSS bundled for the browser (preact included,
 * minified), carried brotli-compressed in the pack and read by the module
 * `outpost-embed:console`, which src/console/assets.ts serves from memory once asked for.
 * Every build of the CLI and of the single binaries carries it.
 */
function consolePlugin(payloads) {
  const pack = join(root, 'src', 'lib', 'pack.ts')
  return {
    name: 'outpost-console',
    setup(b) {
      b.onResolve({ filter: /^outpost-embed:console$/ }, () => ({ path: 'console', namespace: 'outpost-console' }))
      b.onLoad({ filter: /.*/, namespace: 'outpost-console' }, () => {
        payloads.set('console', buildConsole().then((files) => brotli(Buffer.from(JSON.stringify({ files }), 'utf8'))))
        return { contents: `module.exports = JSON.parse(require(${JSON.stringify(pack)}).unpacked('console').toString('utf8'))`, loader: 'js', resolveDir: root }
      })
    },
  }
}

function brotli(bytes) {
  return brotliCompressSync(bytes, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_SIZE_HINT]: bytes.length } })
}

/** console/ as the files the node serves: { '/index.html': { type, body }, '/console/app.js': …, '/console/app.css': …, '/console/term.js', '/console/term.css' }. */
export async function buildConsole() {
  const dir = join(root, 'console')
  const result = await build({
    // The terminal's xterm.js is a file of its own, loaded by that view only (console/xterm-load.ts).
    entryPoints: { app: join(dir, 'main.tsx'), term: join(dir, 'term-entry.ts') },
    outdir: join(root, 'dist', 'console'),
    write: false,
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: ['chrome100', 'firefox100', 'safari15'],
    minify: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    charset: 'ascii',
    legalComments: 'none',
    logLevel: 'error',
    tsconfig: join(dir, 'tsconfig.json'),
  })
  const files = {}
  for (const f of result.outputFiles) {
    const name = f.path.slice(f.path.lastIndexOf('/') + 1)
    files[`/console/${name}`] = { type: name.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8', body: f.text }
  }
  const { readFile } = await import('node:fs/promises')
  files['/index.html'] = { type: 'text/html; charset=utf-8', body: await readFile(join(dir, 'index.html'), 'utf8') }
  files['/console/icon.svg'] = { type: 'image/svg+xml', body: await readFile(join(dir, 'icon.svg'), 'utf8') }
  return files
}

/** One dependency as its own CommonJS bundle (Node built-ins external), brotli-compressed. */
async function packDependency(name) {
  const result = await build({
    stdin: { contents: `module.exports = require(${JSON.stringify(name)})`, resolveDir: root, loader: 'js', sourcefile: `${name}.cjs` },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    target: 'node20.11',
    legalComments: 'none',
    logLevel: 'error',
  })
  const code = await asciiOnly(result.outputFiles[0].text)
  return brotli(Buffer.from(code, 'latin1'))
}

/** The single binary's sql.js wasm ('sql-wasm') and pty addon ('pty-addon', when this architecture has one), raw in the pack. */
function embedPlugin(ptyAddon, payloads) {
  const ptyLoader = join(root, 'src', 'lib', 'pty.ts')
  const pack = join(root, 'src', 'lib', 'pack.ts')
  payloads.set('sql-wasm', readFile(require.resolve('sql.js/dist/sql-wasm.wasm')))
  if (ptyAddon) payloads.set('pty-addon', readFile(ptyAddon))
  return {
    name: 'outpost-embed',
    setup(b) {
      // @lydell/node-pty requires `@lydell/node-pty-<platform>-<arch>/pty.node` at run time,
      // which a single binary cannot: hand it the embedded addon instead.
      b.onLoad({ filter: /[\\/]@lydell[\\/]node-pty[\\/]requireBinary\.js$/ }, () => ({
        contents: `exports.requireBinary = function (file) {
  if (file !== 'pty.node') throw new Error('outpost single binary: no embedded ' + file)
  return require(${JSON.stringify(ptyLoader)}).loadEmbeddedAddon(require(${JSON.stringify(pack)}).packed('pty-addon'))
}`,
        loader: 'js',
        resolveDir: root,
      }))
    },
  }
}
