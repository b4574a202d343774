/**
 * file.tail: follow a file for methodTimeout, line by line, like `tail -F`.
 *
 *   open PATH (absolute; a missing file is method_failed) ─ at its end, or at 0 with --from-start
 *   every POLL_MS: size < position ─▶ truncated: read again from 0
 *                  PATH now names another file (or none) ─▶ rotated: read the old one to its end,
 *                  then follow the new one from 0 once it exists
 *                  new bytes ─▶ complete lines yielded; a partial line waits for its end
 *   methodTimeout is the normal end (no error); op.cancel ends it with `cancelled`.
 *
 * Polling, not fs.watch: it sees truncation and rotation the same way on every filesystem.
 */
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, StreamMethod } from '../src/method'

export const POLL_MS = 200
/** A line longer than this is passed on in pieces rather than held. */
const MAX_LINE = 64 * 1024
const READ_SIZE = 64 * 1024

interface Open {
  handle: fs.promises.FileHandle
  ino: number
  dev: number
  pos: number
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = (): void => { clearTimeout(t); signal.removeEventListener('abort', done); resolve() }
    const t = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

async function open(file: string): Promise<Open | undefined> {
  let handle: fs.promises.FileHandle
  try {
    handle = await fs.promises.open(file, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new OutpostError('io', `file.tail: cannot open ${file}: ${(err as Error).message}`, { cause: err })
  }
  const st = await handle.stat()
  if (!st.isFile()) {
    await handle.close()
    throw new OutpostError('method_failed', `file.tail: ${file} is not a regular file`)
  }
  return { handle, ino: st.ino, dev: st.dev, pos: 0 }
}

/** The file PATH names now differs from the open one (rotated), or PATH is gone. */
async function rotated(file: string, cur: Open): Promise<boolean> {
  try {
    const st = await fs.promises.stat(file)
    return st.ino !== cur.ino || st.dev !== cur.dev
  } catch {
    return true
  }
}

/** Splits bytes into complete lines; holds a partial last line. */
class Lines {
  private partial: Buffer = Buffer.alloc(0)

  push(b: Buffer): Buffer | undefined {
    const all = this.partial.length > 0 ? Buffer.concat([this.partial, b]) : b
    const nl = all.lastIndexOf(0x0a)
    if (nl < 0) {
      if (all.length < MAX_LINE) { this.partial = all; return undefined }
      this.partial = Buffer.alloc(0)
      return all
    }
    this.partial = Buffer.from(all.subarray(nl + 1))
    return all.subarray(0, nl + 1)
  }

  /** The partial line, ended (the file it came from is done with). */
  flush(): Buffer | undefined {
    if (this.partial.length === 0) return undefined
    const out = Buffer.concat([this.partial, Buffer.from('\n')])
    this.partial = Buffer.alloc(0)
    return out
  }
}

/** Read cur from its position to its end. */
async function* readToEnd(cur: Open, lines: Lines): AsyncGenerator<Buffer, void, undefined> {
  const buf = Buffer.alloc(READ_SIZE)
  for (;;) {
    const { bytesRead } = await cur.handle.read(buf, 0, READ_SIZE, cur.pos)
    if (bytesRead === 0) return
    cur.pos += bytesRead
    const out = lines.push(Buffer.from(buf.subarray(0, bytesRead)))
    if (out) yield out
  }
}

export function parseTailArgs(args: readonly string[]): { file: string; fromStart: boolean } {
  let parsed
  try {
    parsed = parseArgs({ args: [...args], options: { 'from-start': { type: 'boolean' } }, allowPositionals: true, strict: true })
  } catch (err) {
    throw new OutpostError('method_failed', `file.tail: ${(err as Error).message}; usage: file.tail [--from-start] /absolute/path`)
  }
  const [file, ...extra] = parsed.positionals
  if (file === undefined || extra.length > 0) throw new OutpostError('method_failed', 'file.tail: give one file; usage: file.tail [--from-start] /absolute/path')
  if (!path.isAbsolute(file) || file.includes('\0')) throw new OutpostError('method_failed', `file.tail: ${JSON.stringify(file)} must be an absolute path (the agent's working directory is not yours)`)
  return { file: path.normalize(file), fromStart: parsed.values['from-start'] === true }
}

export async function* tailFile(file: string, fromStart: boolean, signal: AbortSignal, pollMs = POLL_MS): AsyncGenerator<Buffer, MethodResult, undefined> {
  let cur = await open(file)
  if (cur === undefined) throw new OutpostError('method_failed', `file.tail: ${file} does not exist`)
  if (!fromStart) cur.pos = (await cur.handle.stat()).size
  const lines = new Lines()
  try {
    while (!signal.aborted) {
      if (cur !== undefined) {
        const { size } = await cur.handle.stat()
        if (size < cur.pos) {
          // Truncated (copytruncate, `> file`): what is there now is new.
          cur.pos = 0
          const rest = lines.flush()
          if (rest) yield rest
        }
        yield* readToEnd(cur, lines)
        if (await rotated(file, cur)) {
          // Renamed away: whatever was written to it before the switch, then the new file.
          yield* readToEnd(cur, lines)
          const rest = lines.flush()
          if (rest) yield rest
          await cur.handle.close()
          cur = undefined
        }
      }
      if (cur === undefined) {
        cur = await open(file)
        if (cur !== undefined) continue // read the new file at once
      }
      await wait(pollMs, signal)
    }
    if (cur !== undefined) yield* readToEnd(cur, lines)
    const rest = lines.flush()
    if (rest) yield rest
    return { exitCode: 0 }
  } finally {
    await cur?.handle.close()
  }
}

export default {
  name: 'file.tail',
  aliases: ['REQTailFile'],
  kind: 'stream',
  summary: 'Follow a file line by line for methodTimeout, across truncation and rotation (tail -F).',
  untilTimeout: true,
  run(ctx: MethodContext): AsyncGenerator<Buffer, MethodResult, undefined> {
    const { file, fromStart } = parseTailArgs(ctx.args)
    return tailFile(file, fromStart, ctx.signal)
  },
} satisfies StreamMethod
