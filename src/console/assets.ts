/**
 * The console's files (index.html, app.js, app.css), built from console/ by esbuild and
 * embedded in the bundle by packaging/bundle.mjs as the virtual module `outpost-embed:console`:
 * the node serves them from memory, with no file on disk and no CDN. Run from the sources (tsx)
 * there is no bundle step, and the console answers that it was not built.
 */
import { createHash } from 'node:crypto'

export interface Asset {
  type: string
  body: Buffer
  etag: string
}

export interface EmbeddedConsole {
  files: Record<string, { type: string; body: string }>
}

let assets: Map<string, Asset> | null | undefined

/** The console's files by URL path, or null when this build has none. */
export function consoleAssets(): Map<string, Asset> | null {
  if (assets !== undefined) return assets
  let embedded: EmbeddedConsole | undefined
  try {
    // Resolved at bundle time (a literal name): no file is looked up at run time.
    embedded = require('outpost-embed:console') as EmbeddedConsole
  } catch {
    embedded = undefined
  }
  assets = embedded === undefined ? null : new Map(Object.entries(embedded.files).map(([p, f]) => {
    const body = Buffer.from(f.body, 'utf8')
    return [p, { type: f.type, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` }]
  }))
  return assets
}
