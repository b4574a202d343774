import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeFrame, FrameDecoder, type Frame } from '../src/wire/framing'
import { Cluster } from './fixtures/cluster'

/** A node spoken by hand: raw frames in and out. */
class Raw {
  readonly sock: net.Socket
  readonly frames: Frame[] = []
  private readonly dec = new FrameDecoder()
  private waiters: (() => void)[] = []

  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1')
    this.sock.on('data', (d: Buffer) => {
      this.frames.push(...this.dec.push(d))
      for (const w of this.waiters.splice(0)) w()
    })
  }

  send(f: Frame): void {
    this.sock.write(encodeFrame(f))
  }

  async next(pred: (f: Frame) => boolean, ms = 3000): Promise<Frame> {
    const end = Date.now() + ms
    for (;;) {
      const i = this.frames.findIndex(pred)
      if (i >= 0) return this.frames.splice(i, 1)[0]!
      if (Date.now() > end) throw new Error(`no such frame in ${ms} ms; have ${JSON.stringify(this.frames)}`)
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 50) })
    }
  }
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

test('hub - messages refused while the receiver was away cannot be overtaken by later ones', async () => {
  const c = await Cluster.create(['a', 'd'])
  try {
    await c.startHub()
    const a = new Raw(c.port)
    a.send({ t: 'hello', node: 'a', token: c.node('a').token, version: 'test', apiVersion: 1 })
    await a.next((f) => f.t === 'welcome')
    a.send({ t: 'msg', id: 'm1', to: 'd', b: bytes('one') })
    assert.equal(await a.next((f) => f.t === 'nack'), { t: 'nack', id: 'm1', to: 'd', reason: 'offline' })

    const d = new Raw(c.port)
    d.send({ t: 'hello', node: 'd', token: c.node('d').token, version: 'test', apiVersion: 1 })
    await d.next((f) => f.t === 'welcome')
    await a.next((f) => f.t === 'online' && f.node === 'd')

    // m2 left a before it heard d was back: refused, or it would arrive before m1.
    a.send({ t: 'msg', id: 'm2', to: 'd', b: bytes('two') })
    assert.equal(await a.next((f) => f.t === 'nack'), { t: 'nack', id: 'm2', to: 'd', reason: 'offline' })
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(d.frames.filter((f) => f.t === 'msg'), [], 'nothing reached d out of order')

    // a echoes online and resends from its oldest: both go through, in order.
    a.send({ t: 'online', node: 'd' })
    a.send({ t: 'msg', id: 'm1', to: 'd', b: bytes('one') })
    a.send({ t: 'msg', id: 'm2', to: 'd', b: bytes('two') })
    const first = await d.next((f) => f.t === 'msg')
    const second = await d.next((f) => f.t === 'msg')
    assert.equal([first.t === 'msg' && first.id, second.t === 'msg' && second.id], ['m1', 'm2'])
    assert.is(first.t === 'msg' && first.from, 'a', 'the hub says who sent it')
    a.sock.destroy()
    d.sock.destroy()
  } finally {
    await c.destroy()
  }
})

test.run()
