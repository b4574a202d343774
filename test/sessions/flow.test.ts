/**
 * Flow control end to end: a remote program that does not read its input (a raw terminal,
 * `sleep`) while a client pours 24 MiB into the session. The sender is held to the window: the
 * memory of neither agent grows by the bytes sent, and the client's own socket backs up. When
 * the client leaves, the node is idle and answers (it spun in libuv's retry of a write the full
 * terminal refused, answering nothing: 30–95% of a core for good).
 */
import fs from 'node:fs'
import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, sendVia } from '../fixtures/cluster'
import { Lines } from '../../src/lib/lines'

/** CPU seconds (user + system) a process has used. */
const cpuS = (pid: number): number => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100 }
const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024

test('flow - input a remote program does not read holds the sender back; neither agent buffers it', async () => {
  const c = await Cluster.create(['ship1'], { log: { level: 'info' } })
  let sock: net.Socket | undefined
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    sock = net.connect(c.node('central').socket)
    const lines = new Lines()
    let ready!: () => void
    const isReady = new Promise<void>((r) => { ready = r })
    sock.setEncoding('utf8')
    sock.on('data', (d: string) => { for (const l of lines.push(d)) if (l.includes('"out"') && Buffer.from((JSON.parse(l) as { out: string }).out, 'base64').toString().includes('raw-now')) ready() })
    sock.write(JSON.stringify({ op: 'session', toNode: 'ship1', method: 'session.open', methodArgs: ['--', 'stty raw -echo; echo raw-now; sleep 1000'] }) + '\n')
    await isReady
    const pids = { central: c.node('central').proc!.child.pid!, ship1: c.node('ship1').proc!.child.pid! }
    const before = { central: rssMb(pids.central), ship1: rssMb(pids.ship1) }
    const cpuBefore = cpuS(pids.ship1)
    const chunk = JSON.stringify({ in: Buffer.alloc(48 * 1024, 'k').toString('base64') }) + '\n'
    for (let sent = 0; sent < 24 * 1024 * 1024; sent += 48 * 1024) sock.write(chunk)
    await new Promise((r) => setTimeout(r, 4000))
    const after = { central: rssMb(pids.central), ship1: rssMb(pids.ship1) }
    // Holding input back costs ship1 nothing (it spun on the full terminal while input waited).
    const pouring = cpuS(pids.ship1) - cpuBefore
    assert.ok(pouring < 1.5, `ship1 used ${pouring.toFixed(2)} s of CPU in 4 s holding input back`)
    // What the agents did not take waits in this process's socket.
    assert.ok(sock.writableLength > 16 * 1024 * 1024, `${sock.writableLength} bytes still waiting here`)
    assert.ok(after.ship1 - before.ship1 < 12, `ship1 grew ${after.ship1 - before.ship1} MB`)
    // central read a few hundred KiB of it; what its RSS shows is garbage that levels off (measured +13–20 MB).
    assert.ok(after.central - before.central < 32, `central grew ${after.central - before.central} MB`)

    // The client goes away with its input still unread: ship1 stays idle and answers. (central
    // notices the client left only once it reads its socket again, which the full window stops:
    // the session itself ends at sessions.idleTimeout, see docs/sessions.md.)
    sock.destroy()
    await new Promise((r) => setTimeout(r, 1500))
    const cpu0 = cpuS(pids.ship1)
    const t0 = Date.now()
    await new Promise((r) => setTimeout(r, 3000))
    const spent = cpuS(pids.ship1) - cpu0
    const share = spent / ((Date.now() - t0) / 1000)
    console.log(`ship1 CPU after the client left: ${(share * 100).toFixed(0)}%`)
    assert.ok(share < 0.3, `ship1 used ${spent.toFixed(2)} s of CPU in 3 s with nothing to do`)
    const ping = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping', replyMethod: 'node.pong' }], { ms: 20_000 })
    assert.is(ping.replies[0]?.error, undefined, JSON.stringify(ping.replies))
  } finally {
    sock?.destroy()
    await c.destroy()
  }
})

test.run()
