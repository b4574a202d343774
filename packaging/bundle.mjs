// One esbuild step for both outputs: dist/outpost.cjs (what `npx outpost` runs) and, for the
// single binaries, one bundle per architecture from packaging/sea-entry.ts that embeds sql.js's
// wasm and that architecture's pty addon (esbuild `binary` loader), with @lydell/node-pty's
// addon lookup swapped for src/pty.ts's embedded loader.
import { build } from 'esbuild'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

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
 */
export async function bundle({ outfile, sea = false, ptyAddon = null, version, sourcemap = !sea, entry }) {
  const result = await build({
    entryPoints: [entry ?? join(root, sea ? 'packaging/sea-entry.ts' : 'src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20.11',
    sourcemap: sourcemap ? 'linked' : false,
    legalComments: 'none',
    logLevel: 'error',
    metafile: true,
    define: version === undefined ? {} : { __OUTPOST_VERSION__: JSON.stringify(version) },
    plugins: sea ? [embedPlugin(ptyAddon)] : [],
    // From a checkout the pty package stays in node_modules (it finds its prebuilt addon with a
    // computed require); the single binary bundles it with the embedded addon instead.
    external: sea ? [] : ['@lydell/node-pty'],
  })
  return Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0)
}

function embedPlugin(ptyAddon) {
  const ptyLoader = join(root, 'src', 'pty.ts')
  return {
    name: 'outpost-embed',
    setup(b) {
      b.onResolve({ filter: /^outpost-embed:/ }, (args) => {
        if (args.path === 'outpost-embed:sql-wasm') return { path: require.resolve('sql.js/dist/sql-wasm.wasm'), namespace: 'file' }
        if (args.path === 'outpost-embed:pty-addon') return ptyAddon ? { path: ptyAddon, namespace: 'file' } : { path: 'none', namespace: 'outpost-empty' }
        return undefined
      })
      b.onLoad({ filter: /\.(wasm|node)$/ }, async (args) => ({ contents: await import('node:fs/promises').then((fs) => fs.readFile(args.path)), loader: 'binary' }))
      b.onLoad({ filter: /.*/, namespace: 'outpost-empty' }, () => ({ contents: new Uint8Array(0), loader: 'binary' }))
      // @lydell/node-pty requires `@lydell/node-pty-<platform>-<arch>/pty.node` at run time,
      // which a single binary cannot: hand it the embedded addon instead.
      b.onLoad({ filter: /[\\/]@lydell[\\/]node-pty[\\/]requireBinary\.js$/ }, () => ({
        contents: `exports.requireBinary = function (file) {
  if (file !== 'pty.node') throw new Error('outpost single binary: no embedded ' + file)
  return require(${JSON.stringify(ptyLoader)}).loadEmbeddedAddon(globalThis.__OUTPOST_PTY_ADDON__)
}`,
        loader: 'js',
        resolveDir: root,
      }))
    },
  }
}
