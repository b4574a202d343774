/**
 * A peer that never reads must not stall the rest of the fleet. Real hub and agents, central over
 * tcp (not inside the hub's process); mallory, a raw authenticated client, writes node.ping
 * requests to central and never reads a byte: central's `denied` replies pile up at the hub for
 * mallory. The hub stops reading mallory (its own queue is full), but central, which only
 * answers, must still be read: its traffic with ship1 goes on.
 */
import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, sendVia } from './fixtures/cluster'
import { decode, encode, makeAck } from '../src/wire/envelope'
import { writePings } from './fixtures/flooder'
import { encodeFrame, FrameDecoder } from '../src/wire/framing'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const COUNT = 60_000

interface Reader { sent(): number; replied: Set<string>; readAgain(): void; close(): void }

/** Authenticates as `node`, writes `count` pings to `to` as its socket takes them, reads nothing after the welcome until readAgain (then ACKs each reply). */
function stopsReading(port: number, node: string, token: string, to: string, count: number): Promise<Reader> {
  const sock = net.connect(port, '127.0.0.1')
  const dec = new FrameDecoder()
  sock.on('error', () => {})
  return new Promise((resolve, reject) => {
    sock.once('close', () => reject(new Error(`${node}: the hub closed the connection before its welcome`)))
    const onData = (chunk: Buffer): void => {
      if (!dec.push(chunk).some((f) => f.t === 'welcome')) return
      sock.off('data', onData)
      sock.pause() // never reads again: what the hub sends it stays in the hub
      sock.removeAllListeners('close')
      const sent = writePings(sock, node, to, count, 60)
      const replied = new Set<string>()
      let acks = 0
      const readAgain = (): void => {
        sock.on('data', (more: Buffer) => {
          for (const f of dec.push(more)) {
            if (f.t !== 'msg') continue
            const env = decode(f.b)
            if (env.inReplyTo === undefined || env.method === 'ack') continue
            replied.add(env.inReplyTo)
            const ack = makeAck(env, `01ACK${String(acks++).padStart(21, '0')}`, Date.now())
            sock.write(encodeFrame({ t: 'msg', id: ack.id, to: ack.toNode, b: encode(ack) }))
          }
        })
        sock.resume()
      }
      resolve({ sent, replied, readAgain, close: () => sock.destroy() })
    }
    sock.on('data', onData)
    sock.write(encodeFrame({ t: 'hello', node, token, version: '0.0.0', apiVersion: 1 }))
  })
}

test('hub - a node that stops reading its replies does not stall the node answering it: central and ship1 go on; once it reads again it gets every reply', async () => {
  const c = await Cluster.create(['ship1', 'mallory'], { log: { level: 'info' } })
  let m: Reader | undefined
  try {
    const hub = await c.startHub()
    await Promise.all([c.start('central'), c.start('ship1')])
    m = await stopsReading(c.port, 'mallory', c.node('mallory').token, 'central', COUNT)
    // Until the hub stops reading mallory: its writes then wait in its own socket.
    for (let last = -1; m.sent() !== last; await sleep(1000)) last = m.sent()
    // Central's replies to mallory now fill the hub's queue to mallory; central keeps answering ship1.
    for (let i = 0; i < 3; i++) {
      const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }], { ms: 30_000 })
      assert.is(r.replies.length, 1, `ping ${i + 1} from central to ship1 got no reply in 30 s (mallory wrote ${m.sent()})`)
      assert.is(r.replies[0]!.error, undefined)
    }
    // Its replies were refused (busy) at central, which kept them: once mallory reads, it is told mallory is back and sends them.
    await hub.waitFor(/mallory has taken nothing of what waits for it for a while/, 60_000)
    m.readAgain()
    await hub.waitFor(/mallory has room again/, 60_000)
    for (const end = Date.now() + 120_000; m.replied.size < COUNT; await sleep(250)) assert.ok(Date.now() < end, `mallory got replies to ${m.replied.size} of its ${COUNT} pings`)
  } finally {
    m?.close()
    await c.destroy()
  }
})

test.run()
