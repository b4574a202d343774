/**
 * A chunk that comes in order carries `upTo`, the sha256 of the file from its start to the end
 * of the chunk (src/files/chunk-ref.ts); the receiver checks it against its own sha256 of what
 * it holds so far, hashing the chunk's bytes once (src/files/receiver.ts). On a real Receiver
 * and a real temp file, the file.* methods called as the dispatcher calls them: a chunk whose
 * own sha256 is right but whose upTo is not is dropped (asked for again at commit); with the
 * right one, and with none (a sender before 2026-12-06), the file arrives whole.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { defaultConfig } from '../../src/config'
import type { MethodContext } from '../../src/method'
import type { Envelope } from '../../src/wire/envelope'
import { Receiver } from '../../src/files/receiver'
import { randomFile } from './helpers'

const CHUNK = 65536
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

function ctx(method: string, args: string[], data?: Uint8Array): MethodContext {
  const env = { id: `M${Math.random()}`, toNode: 'ship1', fromNode: 'central', method, methodArgs: args, createdAt: Date.now(), ...(data ? { data } : {}) } as Envelope
  return { env, args } as unknown as MethodContext
}

const answer = (r: { data?: unknown }): Record<string, unknown> => JSON.parse(String(r.data)) as Record<string, unknown>

const newReceiver = (dir: string): Receiver => new Receiver({ dataDir: dir, config: defaultConfig(), log: () => {}, now: Date.now, notify: () => {} })

/** One transfer T1 of `file` to a fresh Receiver in a temp folder, the file.* methods called as the dispatcher calls them. */
interface Transfer {
  dir: string
  file: Buffer
  /** The receiver the calls below go to (a test of a restart puts a new one here). */
  receiver: Receiver
  part: (i: number) => Buffer
  /** file.put of the transfer; its answer. */
  put: () => Promise<Record<string, unknown>>
  /** file.chunk i: by default with its own sha256 and its upTo; `data` replaces its bytes. */
  chunk: (i: number, args?: string[], data?: Uint8Array) => Promise<unknown>
  commit: () => Promise<Record<string, unknown>>
  /** Commit, and the file is in place, whole. */
  whole: (message?: string) => Promise<void>
}

/** Run `body` on a transfer put already (of `file`, by default a random one of 3 chunks and 100 bytes), its folder removed after. */
async function withTransfer(body: (t: Transfer) => Promise<void>, file?: Buffer): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-upto-'))
  if (file === undefined) {
    const src = path.join(dir, 'fw.bin')
    randomFile(src, 3 * CHUNK + 100)
    file = fs.readFileSync(src)
  }
  const f = file
  fs.mkdirSync(path.join(dir, 'files'))
  const target = path.join(dir, 'files', 'fw.bin')
  const meta = JSON.stringify({ id: 'T1', path: target, name: 'fw.bin', size: f.length, sha256: '', chunkBytes: CHUNK })
  const part = (i: number): Buffer => f.subarray(i * CHUNK, Math.min(f.length, (i + 1) * CHUNK))
  const t: Transfer = {
    dir, file: f, receiver: newReceiver(dir), part,
    put: async () => answer(await t.receiver.put(ctx('file.put', [meta]))),
    chunk: (i, args, data) => t.receiver.chunk(ctx('file.chunk', args ?? ['T1', String(i), sha(part(i)), sha(f.subarray(0, (i + 1) * CHUNK))], data ?? part(i))),
    commit: async () => answer(await t.receiver.commit(ctx('file.commit', ['T1', sha(f)]))),
    whole: async (message) => {
      const done = await t.commit()
      assert.is(done.done, true, message ?? JSON.stringify(done))
      assert.ok(fs.readFileSync(target).equals(f), message)
    },
  }
  try {
    await t.put()
    await body(t)
  } finally {
    await t.receiver.closeAll()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const upToOnly = (file: Buffer, i: number): string[] => ['T1', String(i), '', sha(file.subarray(0, (i + 1) * CHUNK))]

/** Expect a chunk to be refused as method_args. */
async function refused(chunk: Promise<unknown>, why: string): Promise<void> {
  try {
    await chunk
    assert.unreachable(why)
  } catch (err) {
    assert.is((err as { code?: string }).code, 'method_args')
  }
}

test('files upTo - a chunk whose own sha256 is right but whose upTo is not is dropped, and asked for again at commit', () => withTransfer(async ({ file, part, chunk, commit, whole }) => {
  await chunk(0)
  // upTo of another file: chunk 0 differs there (what a receiver that holds a wrong chunk 0 would see).
  const other = Buffer.from(file.subarray(0, 2 * CHUNK))
  other[5] = other[5]! ^ 1
  await refused(chunk(1, ['T1', '1', sha(part(1)), sha(other)]), 'the chunk was taken')
  await chunk(2)
  await chunk(3)
  assert.equal((await commit()).missing, [1])
  await chunk(1)
  await whole()
}))

test('files upTo - chunks without it (a sender before 2026-12-06), in any order, are checked on their own', () => withTransfer(async ({ part, chunk, whole }) => {
  for (const i of [1, 0, 3]) await chunk(i, ['T1', String(i), sha(part(i))])
  await refused(chunk(2, ['T1', '2', sha(part(1))]), 'a chunk with a wrong sha256 was taken')
  await chunk(2, ['T1', '2', sha(part(2))])
  await whole()
}))

test('files upTo - the receiver says it takes chunks by upTo alone; such chunks ahead of a missing one are checked once it comes, and only it is asked for again', () => withTransfer(async ({ file, put, chunk, commit, whole }) => {
  assert.is((await put()).upTo, true)
  await chunk(0, upToOnly(file, 0))
  // Chunk 1 lost on the way: 2 and 3 come ahead of it, with nothing of their own to check them by.
  await chunk(2, upToOnly(file, 2))
  await chunk(3, upToOnly(file, 3))
  assert.equal((await commit()).missing, [1])
  // Sent again after the commit, read again: with its own sha256.
  await chunk(1)
  await whole()
}))

test('files upTo - a chunk ahead that does not match its upTo is dropped once the ones before it are in, and asked for again', () => withTransfer(async ({ file, chunk, commit, whole }) => {
  await chunk(0, upToOnly(file, 0))
  const bad = Buffer.from(file.subarray(2 * CHUNK, 3 * CHUNK))
  bad[7] = bad[7]! ^ 1
  await chunk(2, upToOnly(file, 2), bad)
  await chunk(3, upToOnly(file, 3))
  await chunk(1, upToOnly(file, 1))
  // 1 in order; 2 read back and found wrong; 3 waits behind it.
  assert.equal((await commit()).missing, [2])
  await chunk(2)
  await whole()
}))

test('files upTo - after a restart of the receiver, what it holds is read back once and chunks by upTo alone are checked again', () => withTransfer(async (t) => {
  await t.chunk(0, upToOnly(t.file, 0))
  await t.chunk(1, upToOnly(t.file, 1))
  // Held (synced and recorded), then the process ends.
  await t.put()
  await t.receiver.closeAll()
  t.receiver = newReceiver(t.dir)
  assert.is((await t.put()).upTo, true)
  await t.chunk(2, upToOnly(t.file, 2))
  await t.chunk(3, upToOnly(t.file, 3))
  await t.whole()
}))

test('files upTo - chunks by upTo alone in random orders, with duplicates and a damaged one: the file arrives whole and only the damaged one is asked for again', async () => {
  let seed = 7
  const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  for (let round = 0; round < 20; round++) {
    const file = Buffer.alloc(9 * CHUNK + 77)
    for (let i = 0; i < file.length; i += 4) file.writeUInt32LE(rand(2 ** 31), i - (i + 4 > file.length ? i + 4 - file.length : 0))
    await withTransfer(async ({ dir, part, chunk, commit }) => {
      const n = 10
      // Mostly in order, some swapped, some twice; one damaged (its upTo cannot match).
      const order = [...Array(n).keys()]
      for (let k = 0; k < 4; k++) { const a = rand(n); const b = rand(n); [order[a], order[b]] = [order[b]!, order[a]!] }
      for (let k = 0; k < 2; k++) order.splice(rand(order.length), 0, order[rand(order.length)]!)
      const damaged = rand(n)
      const sent = new Set<number>()
      await Promise.all(order.map(async (i) => {
        const bad = i === damaged && !sent.has(i)
        const data = bad ? Buffer.from(part(i)) : part(i)
        if (bad) data[0] = data[0]! ^ 0xff
        sent.add(i)
        await chunk(i, upToOnly(file, i), data).catch(() => {})
      }))
      for (let r = 0; ; r++) {
        const a = await commit()
        if (a.done === true) break
        const missing = a.missing as number[]
        assert.ok(r < 3, `round ${round}: still missing ${JSON.stringify(missing)}`)
        for (const i of missing) assert.is(i, damaged, `round ${round}: chunk ${i} asked for again (order ${order.join(',')}, damaged ${damaged})`)
        for (const i of missing) await chunk(i, ['T1', String(i), sha(part(i))])
      }
      assert.ok(fs.readFileSync(path.join(dir, 'files', 'fw.bin')).equals(file), `round ${round}`)
    }, file)
  }
})

test.run()
