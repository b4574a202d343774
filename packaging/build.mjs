// Bundles the CLI into one CommonJS file (dist/outpost.cjs) with esbuild: what `npx outpost`
// runs and what the single-binary packaging embeds. Every plugin is a static import, so the
// bundle holds them all.
import { build } from 'esbuild'
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
mkdirSync(join(root, 'dist'), { recursive: true })
const started = Date.now()
const result = await build({
  entryPoints: [join(root, 'src', 'main.ts')],
  outfile: join(root, 'dist', 'outpost.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20.11',
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  // The pty addon is loaded at run time (src/pty.ts): from node_modules in a checkout; the
  // single binary replaces that loader. Its package picks the prebuilt with a computed require.
  external: ['@lydell/node-pty'],
})
const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0)
console.log(`built dist/outpost.cjs (${(bytes / 1024).toFixed(0)} KiB with its map) in ${Date.now() - started} ms`)
