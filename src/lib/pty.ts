/**
 * The one place the pty addon is loaded. `@lydell/node-pty` is node-pty with prebuilt addons;
 * the bundle keeps it external (packaging/build.mjs), so from a checkout it is required from
 * node_modules. In a single binary, packaging/bundle.mjs bundles the package and swaps its
 * addon lookup for `loadEmbeddedAddon` below, which writes the embedded `.node` file out and
 * dlopens it (packaging/sea-entry.ts embeds the addon for the binary's architecture).
 *
 * Where the addon cannot load (no prebuilt for the platform, glibc too old for forkpty),
 * loadPty() returns the reason instead, and cli.stream falls back to a detached child.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type * as NodePty from '@lydell/node-pty'

export type PtyModule = typeof NodePty
export type PtyLoad = { ok: true; pty: PtyModule } | { ok: false; reason: string }

let cached: PtyLoad | undefined

/** Load the pty addon once; `OUTPOST_NO_PTY=1` forces the fallback (tests, troubleshooting). */
export function loadPty(env: NodeJS.ProcessEnv = process.env): PtyLoad {
  if (env.OUTPOST_NO_PTY === '1') return { ok: false, reason: 'OUTPOST_NO_PTY=1 is set' }
  if (cached) return cached
  try {
    // A static require, so the packaging step can find and replace it.
    cached = { ok: true, pty: require('@lydell/node-pty') as PtyModule }
  } catch (err) {
    cached = { ok: false, reason: (err as Error).message.split('\n')[0] ?? String(err) }
  }
  return cached
}

/**
 * The single binary's addon loader: writes the embedded `pty.node` (base64) into a private
 * directory (0700, owned by this user, name derived from the content hash so versions never
 * clash) and `process.dlopen`s it. Addons cannot be loaded from memory, hence the file.
 */
export function loadEmbeddedAddon(base64: string | undefined): unknown {
  const bytes = Buffer.from(base64 ?? '', 'base64')
  if (bytes.length === 0) throw new Error(`this outpost binary carries no pty addon for linux-${process.arch}`)
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

function sameContent(file: string, bytes: Buffer): boolean {
  try {
    return bytes.equals(fs.readFileSync(file))
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
