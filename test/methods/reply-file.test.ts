import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { replyFile, replyFileAppend } from '../../methods/reply-file'
import { defaultConfig } from '../../src/config'
import type { Envelope } from '../../src/wire/envelope'
import type { MethodContext } from '../../src/method'
import { rejectsCode } from '../helpers'
import { DiskGuard } from '../../src/lib/disk-guard'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-reply-file-'))
let n = 0

test.after(() => fs.rmSync(root, { recursive: true, force: true }))

/** A fresh data dir and, beside it (outside it), a directory a symlink can point to. */
function dirs(): { dataDir: string; outside: string } {
  const base = path.join(root, String(n++))
  const dataDir = path.join(base, 'data')
  const outside = path.join(base, 'outside')
  fs.mkdirSync(dataDir, { recursive: true })
  fs.mkdirSync(outside)
  return { dataDir, outside }
}

function makeCtx(dataDir: string, fields: Partial<Envelope> = {}): MethodContext {
  const config = defaultConfig()
  config.dataDir = dataDir
  const env: Envelope = {
    id: '01J00000000000000000000REP',
    toNode: 'central',
    fromNode: 'ship1',
    method: 'reply.file',
    inReplyTo: '01J00000000000000000000REQ',
    createdAt: Date.now(),
    ...fields,
  }
  return { node: 'central', env, args: [], config, dataDir, signal: new AbortController().signal, log: () => {} }
}

/** Every file under dir, relative, sorted. */
function files(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort()
}

test('reply.file - writes <dataDir>/replies/<fromNode>/<inReplyTo>.log and returns that path', async () => {
  const { dataDir } = dirs()
  const r = await replyFile.run(makeCtx(dataDir, { data: 'hello\n' }))
  const expected = path.join(dataDir, 'replies', 'ship1', '01J00000000000000000000REQ.log')
  assert.is(r.data, expected)
  assert.is(fs.readFileSync(expected, 'utf8'), 'hello\n')
})

test('reply.file - directory and fileName from the envelope; the id when there is no inReplyTo', async () => {
  const { dataDir } = dirs()
  const r = await replyFile.run(makeCtx(dataDir, { data: new Uint8Array([0x61, 0x62]), directory: 'logs/uptime', fileName: 'out.txt' }))
  assert.is(r.data, path.join(dataDir, 'logs', 'uptime', 'ship1', 'out.txt'))
  assert.is(fs.readFileSync(path.join(dataDir, 'logs', 'uptime', 'ship1', 'out.txt'), 'utf8'), 'ab')
  const { inReplyTo: _, ...noReply } = makeCtx(dataDir).env
  const ctx = makeCtx(dataDir)
  ctx.env = noReply
  const r2 = await replyFile.run(ctx)
  assert.is(r2.data, path.join(dataDir, 'replies', 'ship1', '01J00000000000000000000REP.log'))
  assert.is(fs.readFileSync(r2.data as string, 'utf8'), '')
})

test('reply.file - overwrites an existing file', async () => {
  const { dataDir } = dirs()
  await replyFile.run(makeCtx(dataDir, { data: 'first, longer\n' }))
  const r = await replyFile.run(makeCtx(dataDir, { data: 'second\n' }))
  assert.is(fs.readFileSync(r.data as string, 'utf8'), 'second\n')
})

test('reply.file.append - appends', async () => {
  const { dataDir } = dirs()
  await replyFileAppend.run(makeCtx(dataDir, { data: 'one\n' }))
  const r = await replyFileAppend.run(makeCtx(dataDir, { data: 'two\n' }))
  assert.is(fs.readFileSync(r.data as string, 'utf8'), 'one\ntwo\n')
})

test('reply.file - writes the error line and stderr after the data', async () => {
  const { dataDir } = dirs()
  const r = await replyFile.run(makeCtx(dataDir, { data: 'out\n', error: { code: 'method_timeout', message: 'stopped' }, stderr: 'oops\n' }))
  assert.is(fs.readFileSync(r.data as string, 'utf8'), 'out\n[error method_timeout] stopped\n[stderr]\noops\n')
  // Output without a final newline: the marker lines still start a line; empty stderr is left out.
  const r2 = await replyFile.run(makeCtx(dataDir, { data: 'partial', error: { code: 'x', message: 'y' }, stderr: '' }))
  assert.is(fs.readFileSync(r2.data as string, 'utf8'), 'partial\n[error x] y\n')
})

const refusals: Array<[string, Partial<Envelope>]> = [
  ['directory ../x', { directory: '../x' }],
  ['directory /../x', { directory: '/../x' }],
  ['directory a/../../x', { directory: 'a/../../x' }],
  ['fileName ../../../x', { fileName: '../../../x' }],
  ['fileName /a/../../../x', { fileName: '/a/../../../x' }],
  ['fileName with NUL', { fileName: 'a\0b' }],
  ['fromNode ..', { fromNode: '..' }],
  ['fromNode with a slash', { fromNode: '../outside' }],
]

test('reply.file - an absolute directory or fileName is joined under the data dir, as steward does', async () => {
  const { dataDir, outside } = dirs()
  const r = await replyFileAppend.run(makeCtx(dataDir, { data: 'x\n', directory: '/var/cli/command_result/', fileName: 'out.log' }))
  assert.is(r.data, path.join(dataDir, 'var', 'cli', 'command_result', 'ship1', 'out.log'))
  assert.is(fs.readFileSync(r.data as string, 'utf8'), 'x\n')
  const r2 = await replyFile.run(makeCtx(dataDir, { data: 'y', directory: 'd', fileName: '//etc/x' }))
  assert.is(r2.data, path.join(dataDir, 'd', 'ship1', 'etc', 'x'))
  assert.equal(fs.readdirSync(outside), [])
})

for (const [what, fields] of refusals) {
  test(`reply.file - refuses ${what} (path_outside) and writes nothing`, async () => {
    const { dataDir, outside } = dirs()
    const base = path.dirname(dataDir)
    await rejectsCode(replyFile.run(makeCtx(dataDir, { data: 'x', ...fields })), 'path_outside')
    await rejectsCode(replyFileAppend.run(makeCtx(dataDir, { data: 'x', ...fields })), 'path_outside')
    assert.equal(files(base), [])
    assert.equal(fs.readdirSync(outside), [])
  })
}

test("reply.file - a reply never lands in the data dir's own directories: a node named outbox or logs at the top, or such a directory (path_outside)", async () => {
  const { dataDir } = dirs()
  // A store and log-shipping state as a running node has them.
  fs.mkdirSync(path.join(dataDir, 'outbox'))
  fs.writeFileSync(path.join(dataDir, 'outbox', 'lock'), '4242\n')
  fs.mkdirSync(path.join(dataDir, 'logs'))
  const before = files(dataDir)
  const cases: Array<[Partial<Envelope>, string]> = [
    [{ fromNode: 'outbox', directory: '/', fileName: 'lock' }, 'node "outbox"'],
    [{ fromNode: 'outbox', directory: '.', fileName: 'journal-9.log' }, 'node "outbox"'],
    [{ fromNode: 'logs', directory: '/' }, 'node "logs"'],
    [{ fromNode: 'Outbox', directory: '/', fileName: 'x' }, 'node "Outbox"'], // FAT ignores case
    [{ fromNode: 'replies', directory: '/', fileName: 'ship1' }, 'node "replies"'],
    [{ directory: 'outbox' }, 'directory "outbox"'],
    [{ directory: '/outbox/x/', fileName: 'x' }, 'directory "/outbox/x/"'],
    [{ directory: 'audit.log' }, 'directory "audit.log"'],
  ]
  for (const [fields, named] of cases) {
    for (const method of [replyFile, replyFileAppend]) {
      await rejectsCode(method.run(makeCtx(dataDir, { data: 'x', ...fields })), 'path_outside', named, "outpost's own files")
    }
  }
  assert.equal(files(dataDir), before)
  assert.is(fs.readFileSync(path.join(dataDir, 'outbox', 'lock'), 'utf8'), '4242\n')
  // Nodes of those names still get replies where replies go, other nodes at the top, and
  // directories under logs/ or replies/ lie below outpost's files there.
  const r = await replyFile.run(makeCtx(dataDir, { data: 'ok', fromNode: 'outbox' }))
  assert.is(r.data, path.join(dataDir, 'replies', 'outbox', '01J00000000000000000000REQ.log'))
  const top = await replyFile.run(makeCtx(dataDir, { data: 'ok', fromNode: 'ship1', directory: '/', fileName: 'x' }))
  assert.is(top.data, path.join(dataDir, 'ship1', 'x'))
  const under = await replyFile.run(makeCtx(dataDir, { data: 'ok', fromNode: 'logs', directory: 'logs/uptime', fileName: 'x' }))
  assert.is(under.data, path.join(dataDir, 'logs', 'uptime', 'logs', 'x'))
})

test('reply.file - refuses a symlinked directory that points outside the data dir, creating nothing there', async () => {
  const { dataDir, outside } = dirs()
  fs.symlinkSync(outside, path.join(dataDir, 'replies'))
  const msg = await rejectsCode(replyFile.run(makeCtx(dataDir, { data: 'x' })), 'path_outside', path.join(dataDir, 'replies'))
  assert.ok(msg.includes(outside), msg)
  await rejectsCode(replyFileAppend.run(makeCtx(dataDir, { data: 'x' })), 'path_outside')
  assert.equal(fs.readdirSync(outside), [])
  // Deeper down too: <dataDir>/replies/ship1 -> outside.
  const d2 = dirs()
  fs.mkdirSync(path.join(d2.dataDir, 'replies'))
  fs.symlinkSync(d2.outside, path.join(d2.dataDir, 'replies', 'ship1'))
  await rejectsCode(replyFile.run(makeCtx(d2.dataDir, { data: 'x' })), 'path_outside')
  assert.equal(fs.readdirSync(d2.outside), [])
})

test('reply.file - a symlinked directory that stays inside the data dir is followed', async () => {
  const { dataDir } = dirs()
  fs.mkdirSync(path.join(dataDir, 'real'))
  fs.symlinkSync(path.join(dataDir, 'real'), path.join(dataDir, 'replies'))
  const r = await replyFile.run(makeCtx(dataDir, { data: 'in\n' }))
  assert.is(fs.readFileSync(path.join(dataDir, 'real', 'ship1', '01J00000000000000000000REQ.log'), 'utf8'), 'in\n')
  assert.is(r.data, path.join(dataDir, 'replies', 'ship1', '01J00000000000000000000REQ.log'))
})

test('reply.file - refuses a symlink at the file name, leaving its target untouched', async () => {
  const { dataDir, outside } = dirs()
  const target = path.join(outside, 'passwd')
  fs.writeFileSync(target, 'precious\n')
  fs.mkdirSync(path.join(dataDir, 'replies', 'ship1'), { recursive: true })
  const link = path.join(dataDir, 'replies', 'ship1', '01J00000000000000000000REQ.log')
  fs.symlinkSync(target, link)
  await rejectsCode(replyFile.run(makeCtx(dataDir, { data: 'x' })), 'path_outside', link)
  await rejectsCode(replyFileAppend.run(makeCtx(dataDir, { data: 'x' })), 'path_outside', link)
  assert.is(fs.readFileSync(target, 'utf8'), 'precious\n')
  // A dangling symlink would have created the target: it is refused as well.
  fs.rmSync(target)
  await rejectsCode(replyFile.run(makeCtx(dataDir, { data: 'x' })), 'path_outside')
  assert.not.ok(fs.existsSync(target))
})

test('reply.file - the data dir itself may be reached through a symlink', async () => {
  const { dataDir, outside } = dirs()
  const alias = path.join(outside, 'alias')
  fs.symlinkSync(dataDir, alias)
  const r = await replyFile.run(makeCtx(alias, { data: 'ok\n' }))
  assert.is(r.data, path.join(alias, 'replies', 'ship1', '01J00000000000000000000REQ.log'))
  assert.is(fs.readFileSync(path.join(dataDir, 'replies', 'ship1', '01J00000000000000000000REQ.log'), 'utf8'), 'ok\n')
})

test('reply.file.append - after a crash, tells whether a reply already landed (the file ends with it)', async () => {
  const { dataDir } = dirs()
  const one = makeCtx(dataDir, { data: 'one\n' })
  const two = makeCtx(dataDir, { data: 'two\n' })
  assert.is(await replyFileAppend.landed(one), false, 'no file yet')
  await replyFileAppend.run(one)
  assert.is(await replyFileAppend.landed(one), true)
  assert.is(await replyFileAppend.landed(two), false)
  await replyFileAppend.run(two)
  assert.is(await replyFileAppend.landed(two), true)
  assert.is(await replyFileAppend.landed(one), false, 'only the tail counts')
})

test('reply.file - after a crash, a reply landed only when the file is exactly it', async () => {
  const { dataDir } = dirs()
  const ctx = makeCtx(dataDir, { data: 'whole\n' })
  assert.is(await replyFile.landed(ctx), false)
  await replyFile.run(ctx)
  assert.is(await replyFile.landed(ctx), true)
  assert.is(await replyFile.landed(makeCtx(dataDir, { data: 'le\n' })), false)
})

test('reply.file.append - on a nearly full disk replies are not written (disk_full, one log line for all), and are again once space is back', async () => {
  const { dataDir } = dirs()
  const MIB = 1024 * 1024
  let free = 3 * MIB
  const said: string[] = []
  const disk = new DiskGuard({ dir: dataDir, floor: 6 * MIB, what: 'audit.log, reply files and errors.log', log: (_l, m) => said.push(m), free: () => free })
  for (let i = 0; i < 5; i++) {
    const ctx = { ...makeCtx(dataDir, { data: `line ${i}\n`, fileName: 'out.log' }), disk }
    await rejectsCode(replyFileAppend.run(ctx), 'disk_full', `${path.join(dataDir, 'replies', 'ship1', 'out.log')} not written (7 bytes)`, 'free space')
  }
  assert.equal(files(dataDir), [], 'nothing was written')
  assert.is(said.length, 1, said.join('\n'))
  free = 60 * MIB
  await replyFileAppend.run({ ...makeCtx(dataDir, { data: 'line 5\n', fileName: 'out.log' }), disk })
  assert.is(fs.readFileSync(path.join(dataDir, 'replies', 'ship1', 'out.log'), 'utf8'), 'line 5\n')
  assert.is(said.length, 2)
  assert.match(said[1]!, /written again \(5 writes of 0\.0 MiB were skipped meanwhile\)/)
})

test('reply.file.append - a run of appends lands while every thread of the pool is busy, in order, in one write', async () => {
  // A piece of sinks' receipts waits for the end of the runs before it (src/receipts.ts): eight
  // trips through the thread pool a write held each piece up behind whatever the pool was doing.
  const { dataDir, outside } = dirs()
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4)
  // Each FIFO opened for reading holds one thread of the pool until a writer opens it.
  const fifos = Array.from({ length: threads }, (_, i) => path.join(outside, `fifo${i}`))
  for (const f of fifos) execFileSync('mkfifo', [f])
  const held = fifos.map((f) => fs.promises.open(f, 'r'))
  let released = false
  const release = (): void => {
    if (released) return
    released = true
    for (const f of fifos) fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK))
  }
  // Should the appends need the pool, they could only end after this (the test then fails, not hangs).
  const watchdog = setTimeout(release, 5_000)
  try {
    const runs = Array.from({ length: 127 }, (_, i) => replyFileAppend.run(makeCtx(dataDir, { data: `line ${i}\n`, fileName: 'events.log' })))
    const writes: number[] = []
    const spy = fs.writeSync
    fs.writeSync = ((...a: Parameters<typeof fs.writeSync>) => { writes.push(a[0]); return spy(...a) }) as typeof fs.writeSync
    try {
      await Promise.all(runs)
    } finally {
      fs.writeSync = spy
    }
    assert.is(released, false, 'the appends ended while the pool was held')
    assert.is(fs.readFileSync(path.join(dataDir, 'replies', 'ship1', 'events.log'), 'utf8'), Array.from({ length: 127 }, (_, i) => `line ${i}\n`).join(''))
    assert.is(writes.length, 1, 'one write for the appends of one turn')
  } finally {
    clearTimeout(watchdog)
    release()
    for (const h of await Promise.all(held)) await h.close()
  }
})

test.run()
