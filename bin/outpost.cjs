#!/usr/bin/env node
'use strict'
// The CLI entry point: runs the esbuild bundle that `npm ci` (prepare) builds.
const path = require('node:path')
const fs = require('node:fs')
const bundle = path.join(__dirname, '..', 'dist', 'outpost.cjs')
if (!fs.existsSync(bundle)) {
  process.stderr.write('outpost: dist/outpost.cjs is missing; run `npm run build` (npm ci does it)\n')
  process.exit(2)
}
require(bundle)
