/**
 * Buffers of large messages put back together (src/wire/whole-pool.ts), given back by the file
 * receiver once a chunk's write has finished: a given-back buffer serves the next message of
 * about its size; a buffer the pool did not lend, or one given back twice, does not come back
 * (twice); the receiver gives a chunk's buffer back only after its pwrite has finished (held
 * back here: not before), and not for a chunk it refuses. A real Reassembler and a real
 * Receiver on a real temp file.
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
import { Reassembler } from '../../src/wire/reassembler'
import { freeWholeBuffers, giveBack, wholeBuffer } from '../../src/wire/whole-pool'
import { Receiver } from '../../src/files/receiver'
import { randomFile } from './helpers'

const CHUNK = 262144
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** A message of `n` bytes put back together from 8 KiB parts by a real Reassembler. */
function reassembled(n: number, id: string): Uint8Array {
  const r = new Reassembler()
  const bytes = Buffer.alloc(n, 7)
  const parts = Math.ceil(n / 8192)
  let whole: Uint8Array | undefined
  for (let i = 0; i < parts; i++) whole = r.add({ t: 'part', id, to: 'ship1', from: 'central', i, n: parts, b: bytes.subarray(i * 8192, (i + 1) * 8192) }) ?? whole
  assert.ok(whole !== undefined && Buffer.from(whole).equals(bytes), 'the message put back together')
  return whole!
}

test('whole pool - a buffer given back serves the next message of about its size; only the pool\'s own, and once', () => {
  const a = reassembled(CHUNK + 300, 'A')
  const before = freeWholeBuffers()
  giveBack(a)
  giveBack(a)
  assert.is(freeWholeBuffers(), before + 1, 'given back once')
  const b = reassembled(CHUNK + 280, 'B')
  assert.is(b.buffer, a.buffer, 'the next message of about that size is put together in it')
  assert.is(freeWholeBuffers(), before)
  giveBack(new Uint8Array(CHUNK + 300))
  giveBack(Buffer.allocUnsafeSlow(CHUNK + 300))
  assert.is(freeWholeBuffers(), before, 'a buffer it did not lend is not taken')
  const small = reassembled(10_000, 'C')
  giveBack(small)
  assert.is(freeWholeBuffers(), before, 'a small message keeps its own buffer')
  giveBack(b)
  assert.ok(wholeBuffer(2 * CHUNK).buffer !== b.buffer, 'a message much larger than a free buffer gets a new one')
})

function ctx(method: string, args: string[], data?: Uint8Array): MethodContext {
  const env = { id: `M${Math.random()}`, toNode: 'ship1', fromNode: 'central', method, methodArgs: args, createdAt: Date.now(), ...(data ? { data } : {}) } as Envelope
  return { env, args } as unknown as MethodContext
}

test('whole pool - the file receiver gives a chunk\'s buffer back once its write has finished, not before; not a chunk it refuses', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-wholepool-'))
  const src = path.join(dir, 'fw.bin')
  randomFile(src, 2 * CHUNK)
  const file = fs.readFileSync(src)
  fs.mkdirSync(path.join(dir, 'files'))
  const receiver = new Receiver({ dataDir: dir, config: defaultConfig(), log: () => {}, now: Date.now, notify: () => {} })
  const inside = receiver as unknown as { open: Map<string, { handle: fs.promises.FileHandle }> }
  let release: () => void = () => {}
  try {
    await receiver.put(ctx('file.put', [JSON.stringify({ id: 'T1', path: path.join(dir, 'files', 'fw.bin'), name: 'fw.bin', size: file.length, sha256: sha(file), chunkBytes: CHUNK })]))
    /** Chunk i's bytes in a buffer of the pool, as the transport would give them (the envelope's data is a view of the message). */
    const lent = (i: number, damage = false): Uint8Array => {
      const whole = wholeBuffer(CHUNK + 300)
      whole.set(file.subarray(i * CHUNK, (i + 1) * CHUNK), 300)
      if (damage) whole[300] = whole[300]! ^ 0xff
      return whole.subarray(300)
    }
    // A chunk that does not match its sha256 is refused: its buffer is not given back.
    const damaged = lent(0, true)
    const before = freeWholeBuffers()
    await receiver.chunk(ctx('file.chunk', ['T1', '0', sha(file.subarray(0, CHUNK))], damaged)).then(() => assert.unreachable('refused'), () => {})
    assert.is(freeWholeBuffers(), before, 'a refused chunk\'s buffer is left to the collector')
    const data0 = lent(0)
    assert.is(freeWholeBuffers(), before, 'no free buffer: chunk 0 has a new one')
    await receiver.chunk(ctx('file.chunk', ['T1', '0', sha(file.subarray(0, CHUNK))], data0))
    assert.is(freeWholeBuffers(), before + 1, 'written: chunk 0\'s buffer is given back')
    // Chunk 1's pwrite held back: its buffer stays lent until the write has finished.
    const handle = inside.open.get('T1')!.handle
    const write = handle.write.bind(handle)
    const gate = new Promise<void>((r) => { release = r })
    let started = false
    handle.write = (async (...args: Parameters<typeof handle.write>) => { started = true; await gate; return write(...args) }) as typeof handle.write
    const data1 = lent(1)
    assert.is(freeWholeBuffers(), before, 'chunk 1 took the free buffer')
    const second = receiver.chunk(ctx('file.chunk', ['T1', '1', sha(file.subarray(CHUNK))], data1))
    while (!started) await new Promise((r) => setTimeout(r, 1))
    assert.is(freeWholeBuffers(), before, 'not given back while its write is under way')
    release()
    await second
    assert.is(freeWholeBuffers(), before + 1, 'given back once written')
    handle.write = write
    const done = await receiver.commit(ctx('file.commit', ['T1', sha(file)]))
    assert.ok(JSON.parse(done.data as string).done)
    assert.ok(fs.readFileSync(path.join(dir, 'files', 'fw.bin')).equals(file))
  } finally {
    release()
    await receiver.closeAll()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
