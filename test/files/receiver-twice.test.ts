/**
 * Two copies of one chunk written at once at the receiver: a copy that came ahead of the order
 * with only `upTo` to check it by (written, checked later) and, while its pwrite is still
 * under way, the same chunk with its own sha256 (checked at once, held). The writes land in
 * the order they came, so the checked copy is what the file holds; were they free to finish in
 * any order (libuv's pool does not keep one), a damaged copy ahead could land last, over the
 * good one, and fail the whole file at its commit. A real Receiver on a real temp file; the
 * first write held back is the test's only hand on it.
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

test('files receiver - a damaged copy ahead and the checked copy of the same chunk: the checked one is what the file holds', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-rtwice-'))
  const src = path.join(dir, 'fw.bin')
  randomFile(src, 3 * CHUNK)
  const file = fs.readFileSync(src)
  fs.mkdirSync(path.join(dir, 'files'))
  const target = path.join(dir, 'files', 'fw.bin')
  const receiver = new Receiver({ dataDir: dir, config: defaultConfig(), log: () => {}, now: Date.now, notify: () => {} })
  const inside = receiver as unknown as { open: Map<string, { handle: fs.promises.FileHandle }> }
  let release: () => void = () => {}
  try {
    const put = await receiver.put(ctx('file.put', [JSON.stringify({ id: 'T1', path: target, name: 'fw.bin', size: file.length, sha256: '', chunkBytes: CHUNK })]))
    assert.ok(JSON.parse(put.data as string).upTo, 'the receiver takes chunks by upTo')
    const part = (i: number): Buffer => file.subarray(i * CHUNK, (i + 1) * CHUNK)
    const upTo = (i: number): string => sha(file.subarray(0, (i + 1) * CHUNK))
    await receiver.chunk(ctx('file.chunk', ['T1', '0', sha(part(0))], part(0)))
    // The first write from here (the damaged copy of chunk 2, ahead) is held back; the next (the good copy's) is watched.
    const handle = inside.open.get('T1')!.handle
    const write = handle.write.bind(handle)
    const gate = new Promise<void>((r) => { release = r })
    let heldBack: () => void = () => {}
    const isHeld = new Promise<void>((r) => { heldBack = r })
    let secondWrite: (p: Promise<unknown>) => void = () => {}
    const second = new Promise<Promise<unknown>>((r) => { secondWrite = r })
    let calls = 0
    handle.write = (async (...args: Parameters<typeof handle.write>) => {
      if (calls++ === 0) { heldBack(); await gate; return write(...args) }
      const p = write(...args)
      secondWrite(p)
      return p
    }) as typeof handle.write
    const damaged = Buffer.from(part(2)).fill(0x5a, 0, 1000)
    const ahead = receiver.chunk(ctx('file.chunk', ['T1', '2', '', upTo(2)], damaged))
    await isHeld
    const good = receiver.chunk(ctx('file.chunk', ['T1', '2', sha(part(2))], part(2)))
    // Free to run at once (without the order), the good copy's write finishes before the damaged
    // one is let go; kept in order, it does not start before then (the wait is only a bound).
    const started = await Promise.race([second, new Promise<undefined>((r) => setTimeout(() => r(undefined), 300))])
    if (started !== undefined) await started
    release()
    await Promise.all([ahead, good])
    handle.write = write
    for (const i of [0, 1]) await receiver.chunk(ctx('file.chunk', ['T1', String(i), sha(part(i))], part(i)))
    const done = await receiver.commit(ctx('file.commit', ['T1', sha(file)]))
    assert.ok(JSON.parse(done.data as string).done, 'the commit finds the file whole')
    assert.ok(fs.readFileSync(target).equals(file), 'the file holds the checked copy of chunk 2')
  } finally {
    release()
    await receiver.closeAll()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
