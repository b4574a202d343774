/**
 * The one place that loads node-pty. From the checkout it is the npm package with its prebuilt
 * addon; in the single binary, packaging/sea-entry.ts embeds the addon for the binary's
 * architecture and packaging/bundle.mjs swaps @lydell/node-pty's binary lookup for
 * `loadEmbeddedAddon` below. Where neither loads (no addon for this CPU, or a glibc older than
 * the addon needs), callers get null and fall back to a detached child process group.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

type NodePty = typeof import('@lydell/node-pty')

let cached: { pty: NodePty | null; error?: Error } | undefined

/** node-pty, or null when no addon can load here (the reason is in `ptyLoadError()`). */
export function loadPty(): NodePty | null {
  if (cached) return cached.pty
  try {
    // A static require, so esbuild bundles the package (and the single binary its addon).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = { pty: require('@lydell/node-pty') as NodePty }
  } catch (err) {
    cached = { pty: null, error: err as Error }
  }
  return cached.pty
}

/** Why loadPty() returned null, for logs and `outpost version --json`. */
export function ptyLoadError(): string | undefined {
  loadPty()
  return cached?.error?.message
}

/**
 * The single binary's addon loader: writes the embedded `pty.node` bytes into a private
 * directory (0700, owned by this user, name derived from the content hash so versions never
 * clash) and `process.dlopen`s it. Addons cannot be loaded from memory, hence the file.
 */
export function loadEmbeddedAddon(bytes: Uint8Array | undefined): unknown {
  if (!bytes || bytes.length === 0) throw new Error(`this outpost binary carries no pty addon for linux-${process.arch}`)
  const dir = privateDir()
  const file = path.join(dir, `pty-${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}.node`)
  if (!sameContent(file, bytes)) {
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, bytes, { mode: 0o700 })
    fs.renameSync(tmp, file)
  }
  const mod = { exports: {} as unknown }
  process.dlopen(mod, file)
  return mod.exports
}

function sameContent(file: string, bytes: Uint8Array): boolean {
  try {
    return Buffer.from(bytes).equals(fs.readFileSync(file))
  } catch {
    return false
  }
}

/** $XDG_RUNTIME_DIR/outpost or <tmp>/outpost-<uid>: refused when another user could write it. */
function privateDir(): string {
  const uid = process.getuid?.() ?? 0
  const base = process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, 'outpost') : path.join(os.tmpdir(), `outpost-${uid}`)
  fs.mkdirSync(base, { recursive: true, mode: 0o700 })
  const st = fs.lstatSync(base)
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(`${base} is not a private directory of this user; the pty addon is not written there`)
  }
  return base
}
