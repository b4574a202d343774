/**
 * The receiver records a chunk as held (its `have` bitmap, what a resume trusts) only once the
 * chunk's write has finished and been fdatasynced: a sync that runs while a chunk's pwrite is
 * still under way (queued behind others in libuv's pool) leaves that chunk out, so a crash or
 * power loss then cannot leave a chunk counted as held that is not on disk. A real Receiver on
 * a real temp file; the one write held back is the test's only hand on it.
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
import { Bitmap } from '../../src/files/bitmap'
import { randomFile } from './helpers'

const CHUNK = 65536
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

function ctx(method: string, args: string[], data?: Uint8Array): MethodContext {
  const env = { id: `M${Math.random()}`, toNode: 'ship1', fromNode: 'central', method, methodArgs: args, createdAt: Date.now(), ...(data ? { data } : {}) } as Envelope
  return { env, args } as unknown as MethodContext
}

interface Inside {
  open: Map<string, { handle: fs.promises.FileHandle }>
  recs: Map<string, { have: string; chunks: number }>
  sync(id: string): Promise<void>
}

test('files receiver - a sync while a chunk is still being written does not record that chunk as held', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-rsync-'))
  const src = path.join(dir, 'fw.bin')
  randomFile(src, 3 * CHUNK)
  const file = fs.readFileSync(src)
  fs.mkdirSync(path.join(dir, 'files'))
  const receiver = new Receiver({ dataDir: dir, config: defaultConfig(), log: () => {}, now: Date.now, notify: () => {} })
  const inside = receiver as unknown as Inside
  let release: () => void = () => {}
  try {
    await receiver.put(ctx('file.put', [JSON.stringify({ id: 'T1', path: path.join(dir, 'files', 'fw.bin'), name: 'fw.bin', size: file.length, sha256: sha(file), chunkBytes: CHUNK })]))
    const part = (i: number): Buffer => file.subarray(i * CHUNK, (i + 1) * CHUNK)
    const chunk = (i: number): Promise<unknown> => receiver.chunk(ctx('file.chunk', ['T1', String(i), sha(part(i))], part(i)))
    await chunk(0)
    // Chunk 1's pwrite is held back until the sync below has recorded what is held.
    const handle = inside.open.get('T1')!.handle
    const write = handle.write.bind(handle)
    const gate = new Promise<void>((r) => { release = r })
    let started = false
    handle.write = (async (...args: Parameters<typeof handle.write>) => { started = true; await gate; return write(...args) }) as typeof handle.write
    const second = chunk(1)
    while (!started) await new Promise((r) => setTimeout(r, 1))
    await inside.sync('T1')
    const have = new Bitmap(3, inside.recs.get('T1')!.have)
    assert.ok(have.has(0), 'chunk 0, written and synced, is held')
    assert.not.ok(have.has(1), 'chunk 1, whose write has not finished, is recorded as held')
    release()
    await second
    await inside.sync('T1')
    assert.ok(new Bitmap(3, inside.recs.get('T1')!.have).has(1), 'once written and synced, chunk 1 is held')
  } finally {
    release()
    await receiver.closeAll()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
