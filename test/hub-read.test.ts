import net from 'node:net'
import { createHash } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readIntoOwnBuffer } from '../src/hub-read'
import { encodeFrame, FrameDecoder, type PartFrame } from '../src/wire/framing'

test('hub read - an accepted socket is read into one buffer of its own, every byte in order, and its end is seen', async () => {
  const sent = Buffer.alloc(3 * 1024 * 1024)
  for (let i = 0; i < sent.length; i++) sent[i] = (i * 7 + (i >>> 11)) & 0xff
  const hash = createHash('sha256')
  const buffers = new Set<ArrayBufferLike>()
  let got = 0
  let own = false
  const ended = new Promise<void>((resolve) => {
    const srv = net.createServer((s) => {
      const onBytes = (b: Buffer): void => { buffers.add(b.buffer); hash.update(b); got += b.length }
      own = readIntoOwnBuffer(s, onBytes)
      if (!own) s.on('data', onBytes)
      s.on('close', () => { srv.close(); resolve() })
    })
    srv.listen(0, '127.0.0.1', () => {
      const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1', () => {
        for (let at = 0; at < sent.length; at += 100_000) c.write(sent.subarray(at, at + 100_000))
        c.end()
      })
    })
  })
  await ended
  assert.ok(own, 'read into its own buffer')
  assert.is(got, sent.length)
  assert.is(hash.digest('hex'), createHash('sha256').update(sent).digest('hex'))
  assert.is(buffers.size, 1, 'every read landed in the same buffer')
})

test('hub read - a transient decoder keeps the bytes of a frame cut by a read, though the read buffer is written over', () => {
  const frames: PartFrame[] = []
  for (let i = 0; i < 5; i++) frames.push({ t: 'part', id: 'x1', to: 'ship1', from: 'central', i, n: 5, b: new Uint8Array(5000).fill(i + 1) })
  const wire = Buffer.concat(frames.map((f) => encodeFrame(f)))
  const decoder = new FrameDecoder({ views: true, transient: true })
  // One buffer, written over for each read, as the hub's socket does.
  const readBuf = Buffer.alloc(7000)
  const out: PartFrame[] = []
  for (let at = 0; at < wire.length; at += readBuf.length) {
    const n = wire.copy(readBuf, 0, at, at + readBuf.length)
    for (const f of decoder.push(readBuf.subarray(0, n))) {
      const p = f as PartFrame
      out.push({ ...p, b: new Uint8Array(p.b) })
    }
    readBuf.fill(0xee)
  }
  assert.is(out.length, frames.length)
  for (const [i, f] of out.entries()) {
    assert.is(f.i, i)
    assert.ok(Buffer.from(f.b).equals(Buffer.from(frames[i]!.b)), `frame ${i}'s bytes`)
  }
})

test.run()
