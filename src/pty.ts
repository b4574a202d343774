/**
 * The one place the pty addon is loaded. `@lydell/node-pty` is node-pty with prebuilt addons;
 * the bundle keeps it external (packaging/build.mjs), so from a checkout it is required from
 * node_modules. A single binary swaps this loader for one that writes the embedded `.node`
 * file out and dlopens it: keep this seam small.
 *
 * Where the addon cannot load (no prebuilt for the platform, glibc too old for forkpty),
 * loadPty() returns the reason instead, and cli.stream falls back to a detached child.
 */
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
