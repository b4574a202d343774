/**
 * Text a peer chose reaches a node's text log escaped, in the message and in its key=value fields
 * alike: a terminal escape (ESC, a C1 control such as CSI or NEL) or a line separator in a method
 * name must not reach whoever reads the log in a terminal. Real hub and agent; mallory, a raw
 * authenticated client, sends ship1 requests it is not allowed to make (refused, and logged).
 */
import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from './fixtures/cluster'
import { encode, type Envelope } from '../src/wire/envelope'
import { encodeFrame, FrameDecoder } from '../src/wire/framing'

/** Authenticates as `node` and sends `to` one request a method name. */
function sendRaw(port: number, node: string, token: string, to: string, methods: string[]): Promise<net.Socket> {
  const sock = net.connect(port, '127.0.0.1')
  const dec = new FrameDecoder()
  sock.on('error', () => {})
  return new Promise((resolve) => {
    sock.on('data', (chunk: Buffer) => {
      if (!dec.push(chunk).some((f) => f.t === 'welcome')) return
      for (const [i, method] of methods.entries()) {
        const id = `01ESC${String(i).padStart(21, '0')}`
        const env: Envelope = { id, toNode: to, fromNode: node, method, createdAt: Date.now(), ackTimeout: 30, retries: 0 }
        sock.write(encodeFrame({ t: 'msg', id, to, b: encode(env) }))
      }
      resolve(sock)
    })
    sock.write(encodeFrame({ t: 'hello', node, token, version: '0.0.0', apiVersion: 1 }))
  })
}

test('log - a method name with terminal escapes, C1 controls or a line separator is escaped in the refusal\'s fields too', async () => {
  const c = await Cluster.create(['ship1', 'mallory'], { log: { level: 'info' } })
  let s: net.Socket | undefined
  try {
    await c.startHub()
    const ship1 = await c.start('ship1')
    s = await sendRaw(c.port, 'mallory', c.node('mallory').token, 'ship1', ['x\u001b]0;pwned\u0007', 'y\u009b2J', 'z\u0085w\u2028v'])
    await ship1.waitFor(/dispatch: refused z.*w.*v from mallory/, 20_000)
    const lines = ship1.output.split('\n').filter((l) => l.includes('from mallory'))
    assert.is(lines.length, 3, ship1.output.slice(-2000))
    for (const l of lines) assert.not.match(l, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/, `raw control character in ${JSON.stringify(l)}`)
    assert.ok(lines.some((l) => l.includes('method=x\\u001b]0;pwned\\u0007')), JSON.stringify(lines))
  } finally {
    s?.destroy()
    await c.destroy()
  }
})

test.run()
