/**
 * Flow control end to end: a remote program that does not read its input (a raw terminal,
 * `sleep`) while a client pours 24 MiB into the session. The sender is held to the window: the
 * memory of neither agent grows by the bytes sent, and the client's own socket backs up. When
 * the client leaves, the session ends (its program is gone) and the node is idle: it spun in
 * libuv's retry of a write the full terminal refused (30–95% of a core for good), and the
 * session stayed, since a connection held back is not read and its end was not seen.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, sendVia } from '../fixtures/cluster'
import { Lines } from '../../src/lib/lines'

/** CPU seconds (user + system) a process has used. */
const cpuS = (pid: number): number => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100 }
const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

let c: Cluster

test.before(async () => {
  c = await Cluster.create(['ship1'], { log: { level: 'info' } })
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
})

test.after(async () => {
  await c.destroy()
})

/** A session on ship1 running a raw terminal that reads nothing, open and printing. */
async function rawSleeper(mark: string): Promise<net.Socket> {
  const sock = net.connect(c.node('central').socket)
  const lines = new Lines()
  let ready!: () => void
  const isReady = new Promise<void>((r) => { ready = r })
  sock.setEncoding('utf8')
  sock.on('data', (d: string) => { for (const l of lines.push(d)) if (l.includes('"out"') && Buffer.from((JSON.parse(l) as { out: string }).out, 'base64').toString().includes('raw-now')) ready() })
  sock.write(JSON.stringify({ op: 'session', toNode: 'ship1', method: 'session.open', methodArgs: ['--', `stty raw -echo; echo raw-now; sleep 1000 # ${mark}`] }) + '\n')
  await isReady
  return sock
}

/** Whether ship1 still runs the session's program (not a zombie). */
function running(mark: string): boolean {
  const ship1 = String(c.node('ship1').proc!.child.pid!)
  return execFileSync('ps', ['-eo', 'ppid=,stat=,args='], { encoding: 'utf8' }).split('\n')
    .some((l) => { const [ppid, stat] = l.trim().split(/\s+/); return ppid === ship1 && !stat!.startsWith('Z') && l.includes(mark) })
}

/** Waits (up to 15 s) for the program to be gone; false if it is still there. */
async function gone(mark: string): Promise<boolean> {
  for (let i = 0; i < 60 && running(mark); i++) await sleep(250)
  return !running(mark)
}

test('flow - a client that leaves ends the session: its program is gone', async () => {
  const sock = await rawSleeper('flow-leave')
  assert.ok(running('flow-leave'))
  sock.destroy()
  assert.ok(await gone('flow-leave'), 'the program still runs on ship1 15 s after its client left')
})

test('flow - input a remote program does not read holds the sender back; neither agent buffers it; the node stays idle', async () => {
  let sock: net.Socket | undefined
  try {
    sock = await rawSleeper('flow-pour')
    const pids = { central: c.node('central').proc!.child.pid!, ship1: c.node('ship1').proc!.child.pid! }
    const before = { central: rssMb(pids.central), ship1: rssMb(pids.ship1) }
    const cpuBefore = cpuS(pids.ship1)
    const chunk = JSON.stringify({ in: Buffer.alloc(48 * 1024, 'k').toString('base64') }) + '\n'
    for (let sent = 0; sent < 24 * 1024 * 1024; sent += 48 * 1024) sock.write(chunk)
    await sleep(4000)
    const after = { central: rssMb(pids.central), ship1: rssMb(pids.ship1) }
    // Holding input back costs ship1 nothing (it spun on the full terminal while input waited).
    const pouring = cpuS(pids.ship1) - cpuBefore
    assert.ok(pouring < 1.5, `ship1 used ${pouring.toFixed(2)} s of CPU in 4 s holding input back`)
    // What the agents did not take waits in this process's socket.
    assert.ok(sock.writableLength > 16 * 1024 * 1024, `${sock.writableLength} bytes still waiting here`)
    assert.ok(after.ship1 - before.ship1 < 12, `ship1 grew ${after.ship1 - before.ship1} MB`)
    // central read a few hundred KiB of it; what its RSS shows is garbage that levels off (measured +13–20 MB).
    assert.ok(after.central - before.central < 32, `central grew ${after.central - before.central} MB`)

    // The client goes away with its input still unread: the session ends all the same, and
    // ship1 is idle and answers.
    sock.destroy()
    assert.ok(await gone('flow-pour'), 'the program still runs on ship1 15 s after its client left')
    const cpu0 = cpuS(pids.ship1)
    const t0 = Date.now()
    await sleep(3000)
    const spent = cpuS(pids.ship1) - cpu0
    const share = spent / ((Date.now() - t0) / 1000)
    assert.ok(share < 0.3, `ship1 used ${spent.toFixed(2)} s of CPU in 3 s with nothing to do`)
    const ping = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping', replyMethod: 'node.pong' }], { ms: 20_000 })
    assert.is(ping.replies[0]?.error, undefined, JSON.stringify(ping.replies))
  } finally {
    sock?.destroy()
  }
})

test.run()
