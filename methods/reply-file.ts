/**
 * reply.file and reply.file.append: reply sinks that write a reply into
 * `<dataDir>/<directory>/<node that ran the method>/<fileName>` (SPEC §2), never outside the
 * data directory.
 *
 *   env ─ replyPath: an absolute directory or fileName is taken as relative to dataDir (steward
 *   joins them the same way: `/var/cli/x` → `<dataDir>/var/cli/x/…`); no `..`, no NUL ─▶ walk from dataDir, creating
 *   directories; a symlink on the way must resolve inside dataDir ─▶ realpath(parent) inside
 *   realpath(dataDir) ─▶ open with O_NOFOLLOW (a symlink at the final name is refused) ─▶ write
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Envelope } from '../src/wire/envelope'
import { OutpostError } from '../src/errors'
import type { MethodContext, MethodResult, StoredReply, UnaryMethod } from '../src/method'

const DEFAULT_DIRECTORY = 'replies'

/**
 * The directories outpost keeps its own files in, at their top (docs/store.md): the store, the
 * log-shipping state and the reply area. A reply file lies below its node's directory, so it
 * meets them only when that directory is one of them: a node named `outbox`, `logs` or
 * `replies` answering into the top of the data directory (`directory: /`).
 */
const OWN_DIRECTORIES = new Set(['outbox', 'logs', DEFAULT_DIRECTORY])

/**
 * Where a reply's `directory` may not start: the store (all of outbox/ is the store's) and
 * outpost's own files at the top of the data directory. Under logs/ and replies/ a reply is a
 * level below outpost's files, so `directory: logs/uptime` is fine.
 */
const OWN_TOP = new Set([
  'outbox', 'outpost.sock', 'audit.log', 'errors.log', 'nodes.json', 'nodes.log', 'schedules.json',
  'config-state.json', 'agent.json', 'upgrade-pending.json', 'upgrade-rolled-back.json', 'upgrade-watchdog.log',
  'transfers',
])

/**
 * The reply as bytes: data, then an `[error code] message` line, an `[exit N]` line for a
 * non-zero exitCode, then `[stderr]` and stderr.
 */
export function replyContent(env: Envelope): Buffer {
  const parts: Buffer[] = []
  let endsWithNewline = true
  const add = (b: Buffer): void => {
    if (b.length === 0) return
    parts.push(b)
    endsWithNewline = b[b.length - 1] === 0x0a
  }
  // A marker line starts on a line of its own even when the output before it lacks a newline.
  const line = (text: string): void => add(Buffer.from(`${endsWithNewline ? '' : '\n'}${text}\n`))
  if (env.data !== undefined) add(toBuffer(env.data))
  if (env.error !== undefined) line(`[error ${env.error.code}] ${env.error.message}`)
  if (env.exitCode !== undefined && env.exitCode !== 0) line(`[exit ${env.exitCode}]`)
  if (env.stderr !== undefined && env.stderr.length > 0) {
    line('[stderr]')
    add(toBuffer(env.stderr))
  }
  return Buffer.concat(parts)
}

function toBuffer(v: Uint8Array | string): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
}

function refuse(what: string, why: string): never {
  throw new OutpostError('path_outside', `reply file: ${what} ${why}; reply files stay inside the data directory`)
}

/**
 * A path given in the envelope, as a path under the data directory: leading slashes dropped
 * (steward's `filepath.Join(dataDir, directory, node, fileName)` does the same to an absolute
 * directory); no `..` segment, no NUL.
 */
function checkRelative(field: string, value: string, singleSegment: boolean): string {
  const shown = `${field} ${JSON.stringify(value)}`
  if (value.includes('\0')) refuse(shown, 'contains a NUL byte')
  const segments = value.split('/')
  if (segments.includes('..')) refuse(shown, "has a '..' segment")
  if (singleSegment && (segments.length > 1 || value === '.' || value === '')) refuse(shown, 'must be a single name')
  return value.replace(/^\/+/, '')
}

/** The path relative to the data directory that a reply is written to (checked, not yet resolved). */
export function replyRelativePath(env: Envelope): string {
  // An empty string means "not set" (schedules in the config default these keys to '').
  const directory = env.directory === undefined || env.directory === '' ? DEFAULT_DIRECTORY : env.directory
  const fileName = env.fileName === undefined || env.fileName === '' ? `${env.inReplyTo ?? env.id}.log` : env.fileName
  const key = `${directory}\0${env.fromNode}\0${fileName}`
  const known = checkedPaths.get(key)
  if (known !== undefined) return known
  const dir = path.normalize(checkRelative('directory', directory, false))
  const rel = path.normalize(path.join(dir, checkRelative('fromNode', env.fromNode, true), checkRelative('fileName', fileName, false)))
  if (rel === '.' || rel.endsWith('/') || rel.startsWith('..') || path.isAbsolute(rel)) refuse(JSON.stringify(rel), 'does not name a file')
  checkOwnNames(dir, env.fromNode, directory)
  // A stream of replies to one file (log shipping, streams) checks its names once.
  if (checkedPaths.size >= 1024) checkedPaths.clear()
  checkedPaths.set(key, rel)
  return rel
}

/**
 * A node's reply directory may not be one of outpost's own directories, nor a reply's directory
 * start in the store or at one of outpost's files. Compared without case, for file systems that
 * ignore it (FAT on an SD card).
 */
function checkOwnNames(dir: string, node: string, directory: string): void {
  const top = dir.split('/').find((s) => s !== '' && s !== '.')
  const [name, shown] = top === undefined
    ? [node, `node ${JSON.stringify(node)} answering into the top of the data directory (directory ${JSON.stringify(directory)})`]
    : [top, `directory ${JSON.stringify(directory)}`]
  if (!(top === undefined ? OWN_DIRECTORIES : OWN_TOP).has(name.toLowerCase())) return
  throw new OutpostError('path_outside', `reply file: ${shown} would write into <dataDir>/${name}, which holds outpost's own files; give the request another directory`)
}

/** Names already checked by replyRelativePath (a pure function of them), and what they gave. */
const checkedPaths = new Map<string, string>()

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p)
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))
}

/** errno codes of a full disk, a quota or a file-size limit. */
const DISK_FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG'])

function ioError(what: string, err: unknown): OutpostError {
  const full = DISK_FULL.has((err as NodeJS.ErrnoException).code ?? '')
  return new OutpostError(full ? 'disk_full' : 'io', `reply file: ${what}: ${(err as Error).message}`, { cause: err })
}

/**
 * Create the directories from dataDir down to `relDir` one at a time, so nothing is ever
 * created through a symlink that leads out of the data directory.
 */
function makeParents(realRoot: string, dataDir: string, relDir: string): string {
  let current = dataDir
  for (const segment of relDir.split('/').filter((s) => s !== '' && s !== '.')) {
    current = path.join(current, segment)
    let st: fs.Stats | undefined
    try {
      st = fs.lstatSync(current)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot inspect ${current}`, err)
    }
    if (st === undefined) {
      try {
        fs.mkdirSync(current)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`cannot create ${current}`, err)
        // Created meanwhile (another process): inspect what is there now.
        try { st = fs.lstatSync(current) } catch (e) { throw ioError(`cannot inspect ${current}`, e) }
      }
    }
    if (st?.isSymbolicLink()) {
      let target: string
      try {
        target = fs.realpathSync.native(current)
      } catch {
        refuse(current, 'is a symlink that does not resolve')
      }
      if (!inside(realRoot, target)) refuse(current, `is a symlink to ${target}, outside the data directory`)
      st = fs.statSync(current)
    }
    if (st !== undefined && !st.isDirectory()) throw new OutpostError('io', `reply file: ${current} is not a directory`)
  }
  return current
}

interface Waiting { ctx: MethodContext; append: boolean; content: Buffer; resolve: (p: string) => void; reject: (e: unknown) => void }

/**
 * Writes waiting per file, so replies land in the order they arrived. A file's writes go once
 * the turn that asked for them is over (setImmediate): the appends of that turn (a batch's
 * replies, a piece of sinks' runs) go to the file in one write; appends asked for while a large
 * write is on its way wait for it and go together after it.
 */
const queues = new Map<string, Waiting[]>()

/** Write (or append) a reply to its file, after the writes to it that came first; returns the absolute path written. */
export function writeReplyFile(ctx: MethodContext, append: boolean): Promise<string> {
  const rel = replyRelativePath(ctx.env)
  const dataDir = ctx.dataDir
  const key = `${dataDir}\0${rel}`
  const content = replyContent(ctx.env)
  return new Promise((resolve, reject) => {
    const q = queues.get(key)
    const item = { ctx, append, content, resolve, reject }
    if (q !== undefined) { q.push(item); return }
    queues.set(key, [item])
    setImmediate(() => void drain(key, path.resolve(dataDir), rel))
  })
}

async function drain(key: string, dataDir: string, rel: string): Promise<void> {
  const q = queues.get(key)!
  while (q.length > 0) {
    const first = q[0]!
    let n = 1
    if (first.append) while (n < q.length && q[n]!.append) n++
    const batch = q.splice(0, n)
    try {
      const written = await write(first.ctx, dataDir, rel, first.append, batch.length === 1 ? first.content : Buffer.concat(batch.map((b) => b.content)))
      for (const b of batch) b.resolve(written)
    } catch (err) {
      for (const b of batch) b.reject(err)
    }
  }
  queues.delete(key)
}

/** Content up to this is written synchronously (into the page cache, as the journal's small batches are); larger goes through the thread pool. */
const SYNC_WRITE_BYTES = 64 * 1024

/**
 * The checks and the open are synchronous: a handful of metadata calls on cached directory
 * entries cost less than one trip each through the thread pool, and a run of sinks (a piece of
 * receipts waits for the end of the runs before it) is not held up by eight such trips a write.
 */
async function write(ctx: MethodContext, dataDir: string, rel: string, append: boolean, content: Buffer): Promise<string> {
  // A nearly full disk keeps its last room for the outbox's records: the reply is not stored
  // here, and says so (the waiting client gets it, with this error, from the dispatcher).
  if (ctx.disk?.allow(content.length) === false) {
    throw new OutpostError('disk_full', `reply file: ${path.join(dataDir, rel)} not written (${content.length} bytes): the disk is nearly full and its last room is kept for the outbox; free space in the data directory`)
  }
  try {
    fs.mkdirSync(dataDir, { recursive: true })
  } catch (err) {
    throw ioError(`cannot create the data directory ${dataDir}`, err)
  }
  const realRoot = fs.realpathSync.native(dataDir)
  const parent = makeParents(realRoot, dataDir, path.dirname(rel))
  const realParent = fs.realpathSync.native(parent)
  if (!inside(realRoot, realParent)) refuse(parent, `resolves to ${realParent}, outside the data directory`)

  const file = path.join(realParent, path.basename(rel))
  const { O_WRONLY, O_CREAT, O_TRUNC, O_APPEND, O_NOFOLLOW } = fs.constants
  const flags = O_WRONLY | O_CREAT | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC)
  let fd: number
  try {
    fd = fs.openSync(file, flags, 0o644)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') refuse(file, 'is a symlink')
    throw ioError(`cannot open ${file}`, err)
  }
  try {
    if (content.length > SYNC_WRITE_BYTES) await new Promise<void>((resolve, reject) => fs.writeFile(fd, content, (err) => (err ? reject(err) : resolve())))
    else for (let at = 0; at < content.length;) at += fs.writeSync(fd, content, at)
  } catch (err) {
    throw ioError(`cannot write ${file}`, err)
  } finally {
    fs.closeSync(fd)
  }
  // The SPEC layout path (the file opened is the same one, reached through resolved directories).
  return path.join(dataDir, rel)
}

/**
 * After a crash while replies were being written: which of them the file already holds. A
 * file's writes go in the order the replies came, so those that landed are the first few of the
 * ones caught for it: reply.file, the file is the last of those (the ones before it were written
 * and replaced); reply.file.append, the file ends with those, one after the other (a turn's
 * appends are one write: the file ends with all of them, not with each), unless the kill tore
 * the write after them. A tail that equals them by chance counts as landed; a torn one does not.
 */
async function landedAll(ctxs: readonly MethodContext[], append: boolean): Promise<boolean[]> {
  const out = ctxs.map(() => false)
  const byFile = new Map<string, number[]>()
  for (const [i, ctx] of ctxs.entries()) {
    let file: string
    try { file = path.join(path.resolve(ctx.dataDir), replyRelativePath(ctx.env)) } catch { continue }
    const list = byFile.get(file)
    if (list === undefined) byFile.set(file, [i])
    else list.push(i)
  }
  for (const [file, list] of byFile) {
    const contents = list.map((i) => replyContent(ctxs[i]!.env))
    let len = contents.reduce((k, c) => k + c.length, 0)
    const whole = await readTail(file, len)
    if (whole === undefined) continue
    let n = 0
    if (append) {
      // The most of them, from the first, that the file ends with;
      for (let j = contents.length; j > 0; len -= contents[--j]!.length) {
        if (len <= whole.tail.length && Buffer.concat(contents.slice(0, j)).equals(whole.tail.subarray(whole.tail.length - len))) { n = j; break }
      }
      // or followed by the start of the others (a write the kill tore; written again after it).
      for (let j = contents.length - 1; j > 0 && n === 0; j--) n = tornAfter(whole.tail, Buffer.concat(contents.slice(0, j)), Buffer.concat(contents.slice(j))) ? j : 0
    } else {
      // The last of them that the whole file is.
      for (let j = contents.length; j > 0; j--) if (contents[j - 1]!.length === whole.size && contents[j - 1]!.equals(whole.tail)) { n = j; break }
    }
    for (let k = 0; k < n; k++) out[list[k]!] = true
  }
  return out
}

/** Whether `tail` ends with `landed` and then part of `rest` (not all of it). */
function tornAfter(tail: Buffer, landed: Buffer, rest: Buffer): boolean {
  for (let at = tail.lastIndexOf(landed); at >= 0; at = at > 0 ? tail.lastIndexOf(landed, at - 1) : -1) {
    const torn = tail.subarray(at + landed.length)
    if (torn.length < rest.length && torn.equals(rest.subarray(0, torn.length))) return true
  }
  return false
}

/** The file's size and its last `max` bytes (all of it when smaller); undefined when it cannot be read. */
async function readTail(file: string, max: number): Promise<{ size: number; tail: Buffer } | undefined> {
  let handle: fs.promises.FileHandle
  try {
    handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
  } catch {
    return undefined
  }
  try {
    const { size } = await handle.stat()
    const tail = Buffer.alloc(Math.min(size, max))
    await handle.read(tail, 0, tail.length, size - tail.length)
    return { size, tail }
  } finally {
    await handle.close()
  }
}

export const replyFile = {
  name: 'reply.file',
  aliases: ['REQToFile'],
  sink: true,
  kind: 'unary',
  summary: 'Write a reply to <dataDir>/<directory>/<node>/<fileName>, replacing the file.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    return { data: await writeReplyFile(ctx, false) }
  },
  landed: async (ctx: MethodContext) => (await landedAll([ctx], false))[0]!,
  landedAll: (ctxs: readonly MethodContext[]) => landedAll(ctxs, false),
} satisfies UnaryMethod

/** Most of a stored reply read back (GET /v1/messages/:id). */
const MAX_STORED_TEXT = 1024 * 1024

/** The reply to request `id` where a reply without directory and fileName goes: <dataDir>/replies/<node>/<id>.log. */
export function storedReply(dataDir: string, id: string): StoredReply | undefined {
  const dir = path.join(dataDir, DEFAULT_DIRECTORY)
  let nodes: string[]
  try { nodes = fs.readdirSync(dir) } catch { return undefined }
  for (const n of nodes) {
    const file = path.join(dir, n, `${id}.log`)
    let text: string
    try {
      const fd = fs.openSync(file, 'r')
      try {
        const buf = Buffer.alloc(MAX_STORED_TEXT)
        text = buf.subarray(0, fs.readSync(fd, buf, 0, MAX_STORED_TEXT, 0)).toString('utf8')
      } finally { fs.closeSync(fd) }
    } catch { continue }
    const err = /^\[error ([a-z_]+)\] ?(.*)$/m.exec(text)
    return { fromNode: n, file: path.relative(dataDir, file), text, ...(err ? { error: { code: err[1]!, message: err[2]! } } : {}) }
  }
  return undefined
}

export const replyFileAppend = {
  name: 'reply.file.append',
  aliases: ['REQToFileAppend'],
  sink: true,
  kind: 'unary',
  summary: 'Append a reply to <dataDir>/<directory>/<node>/<fileName>.',
  async run(ctx: MethodContext): Promise<MethodResult> {
    return { data: await writeReplyFile(ctx, true) }
  },
  landed: async (ctx: MethodContext) => (await landedAll([ctx], true))[0]!,
  landedAll: (ctxs: readonly MethodContext[]) => landedAll(ctxs, true),
  stored: storedReply,
} satisfies UnaryMethod
