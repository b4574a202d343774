// Bundles the CLI into one CommonJS file (dist/outpost.cjs) with esbuild: what `npx outpost`
// runs. The single binaries are built by packaging/package.mjs from the same bundler setup.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { bundle, root } from './bundle.mjs'

mkdirSync(join(root, 'dist'), { recursive: true })
const started = Date.now()
const bytes = await bundle({ outfile: join(root, 'dist', 'outpost.cjs') })
console.log(`built dist/outpost.cjs (${(bytes / 1024).toFixed(0)} KiB with its map) in ${Date.now() - started} ms`)
