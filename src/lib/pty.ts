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
 * The single binary's addon loader: writes the embedded `pty.node` (from the binary's pack,
 * src/lib/pack.ts) into a private directory (0700, owned by this user, name derived from the
 * content hash so versions never clash) and `process.dlopen`s it. Addons cannot be loaded from
 * memory, hence the file.
 */
export function loadEmbeddedAddon(bytes: Buffer | undefined): unknown {
  if (bytes === undefined || bytes.length === 0) throw new Error(`this outpost binary carries no pty addon for linux-${process.arch}`)
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

/** How long a terminal whose program ended may stay quiet while read before it is closed. */
const DRAIN_QUIET_MS = 200
/** At most this long reading (not paused) after the program ended: a process left on the terminal may print forever. */
const DRAIN_MAX_MS = 5000

type Pty = ReturnType<PtyModule['spawn']>

/**
 * Read a terminal to its end after its program exits. Two things lost the last output of a
 * program that printed a burst and exited (~10 KiB of 3 MB):
 *  - libuv ends a stream at POLLHUP when its last read was shorter than its buffer
 *    (uv__stream_io's "short-circuit" for sockets). A pty master gives at most a few KiB per
 *    read however much is pending, and reports POLLHUP once the last process closed the
 *    terminal: the stream ended with the rest still in the kernel, and node-pty closed it.
 *  - node-pty closes the terminal 200 ms after the program exits (DESTROY_SOCKET_TIMEOUT_MS in
 *    unixTerminal.js), read or not: all that was pending is lost while the reader is paused
 *    (the session's window full).
 * So this node holds the terminal's other side (the pts) open itself: no hangup while output
 * is pending. node-pty's close after the exit is held back until the terminal was read, not
 * paused, with nothing coming for DRAIN_QUIET_MS (or for DRAIN_MAX_MS in all: a process left
 * in the background may print forever); then the pts is let go and the terminal closed.
 * node-pty reports the exit only after that close, so its onExit comes after the last onData.
 *
 * Returns the close that does not wait (the session ended: what is left is not wanted).
 */
export function closeWhenDrained(term: Pty): () => void {
  const t = term as unknown as { _socket?: import('node:net').Socket; _pty?: string }
  const sock = t._socket
  if (sock === undefined || typeof sock.destroy !== 'function') return () => {}
  let pts: number | undefined
  try {
    if (typeof t._pty === 'string') pts = fs.openSync(t._pty, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK)
  } catch { /* not held: the stream may still end early */ }
  const destroy = sock.destroy.bind(sock)
  let timer: NodeJS.Timeout | undefined
  let last = Date.now()
  let reading = 0
  const close = (): void => {
    if (timer !== undefined) clearInterval(timer)
    timer = undefined
    if (pts !== undefined) { try { fs.closeSync(pts) } catch { /* closed */ } pts = undefined }
    if (!sock.destroyed) destroy()
  }
  sock.on('data', () => { last = Date.now() })
  sock.on('close', close)
  sock.destroy = (err?: Error): import('node:net').Socket => {
    // An error (EIO), the end of the stream, or nothing held: closed at once.
    if (err !== undefined || sock.readableEnded || sock.destroyed || pts === undefined) { close(); return destroy(err) }
    timer ??= setInterval(() => {
      // Paused (the window is full): the quiet is counted from when reading starts again.
      if (sock.isPaused()) { last = Date.now(); return }
      reading += DRAIN_QUIET_MS / 4
      if (Date.now() - last >= DRAIN_QUIET_MS || reading >= DRAIN_MAX_MS) close()
    }, DRAIN_QUIET_MS / 4)
    return sock
  }
  return close
}

/** Longest wait between two tries of a write the terminal could not take. */
const INPUT_RETRY_MAX_MS = 50

/**
 * A terminal's input, written without node-pty's write. libuv cannot reopen a pty master, so
 * it opens it as a TTY handle with "blocking writes" (uv_tty_init's fallback), but node-pty
 * made the fd non-blocking: a write the terminal cannot take (its program reads no input and
 * the input queue is full) fails with EAGAIN, and libuv's uv__write retries it at once, in a
 * loop, in the event loop's thread. The node spun there and answered nothing, not even the
 * close that would have ended the session.
 *
 * Here a write is one write(2) on the non-blocking fd, in the event loop's thread (so never on
 * an fd node-pty closed meanwhile: it closes on this thread too); what the terminal does not
 * take waits, tried again after 1, 2, 4 … INPUT_RETRY_MAX_MS ms. `written(n)` says when bytes
 * went in (the session credits its peer then: a program that reads nothing holds the sender to
 * its window).
 */
export class PtyInput {
  private readonly fd: number | undefined
  private readonly sock: import('node:net').Socket | undefined
  private readonly written: (n: number) => void
  private queue: Buffer[] = []
  private timer: NodeJS.Timeout | undefined
  private delay = 1
  private closed = false

  constructor(term: Pty, written: (n: number) => void) {
    const t = term as unknown as { _fd?: number; _socket?: import('node:net').Socket }
    this.fd = t._fd
    this.sock = t._socket
    this.written = written
  }

  write(data: Uint8Array | string): void {
    if (this.closed) return
    this.queue.push(typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength))
    if (this.timer === undefined) this.pump()
  }

  /** What is not written yet is dropped. */
  close(): void {
    this.closed = true
    this.queue = []
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }

  private pump(): void {
    this.timer = undefined
    while (!this.closed && this.queue.length > 0) {
      if (this.fd === undefined || this.sock?.destroyed === true) { this.close(); return }
      const head = this.queue[0]!
      let n: number
      try {
        n = fs.writeSync(this.fd, head)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') { this.close(); return }
        this.timer = setTimeout(() => this.pump(), this.delay)
        this.delay = Math.min(this.delay * 2, INPUT_RETRY_MAX_MS)
        return
      }
      this.delay = 1
      if (n < head.length) this.queue[0] = head.subarray(n)
      else this.queue.shift()
      this.written(n)
    }
  }
}
