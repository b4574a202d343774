/**
 * `outpost tunnel NODE -R REMOTEPORT:HOST:PORT` end to end over the hub: ship1 listens on its
 * loopback and each connection made there is carried back to central, where the CLI connects to
 * an HTTP server of this test. 20 requests at once, made on ship1's side, each get their own
 * answer (bodies past the flow-control window both ways); the port is closed once the CLI
 * exited, with --once too; a port tunnels.listen does not list is refused
 * (tunnel_listen_denied, exit 3) and nothing listens on it; the hub down past sessions.grace
 * ends the CLI (session_lost) and closes the port on ship1.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, Proc, editYaml, freePort, section } from '../fixtures/cluster'
import { hashingServer, request } from '../fixtures/http-target'
import { eventually, readOr } from '../helpers'

/** 'open' when something accepts a connection on 127.0.0.1:port, else the error code. */
function probe(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    s.once('connect', () => { s.destroy(); resolve('open') })
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
}

test('tunnel -R - 20 parallel requests made on ship1 reach a server here, each answered; the port closes with the CLI; a port not listed is refused', async () => {
  const { server, port: target } = await hashingServer(1536 * 1024)
  const remote = await freePort()
  const denied = await freePort()
  const c = await Cluster.create(['ship1'])
  const procs: Proc[] = []
  try {
    await c.startHub()
    await c.start('central')
    editYaml(c.node('ship1').config, (doc) => { section(doc, 'tunnels').listen = [remote] })
    await c.start('ship1')
    const t = new Proc(['tunnel', 'ship1', '-R', `${remote}:127.0.0.1:${target}`, '--json', '--config', c.node('central').config])
    procs.push(t)
    await t.waitFor(/"listening"/)

    // Made on ship1's side of the tunnel (its loopback port), answered by the server here.
    const upload = Buffer.alloc(1536 * 1024, 'upload')
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => request(remote, `/r${i}-`, i % 4 === 0 ? upload : undefined)))
    for (const [i, r] of results.entries()) {
      assert.is(r.status, 200)
      assert.ok(r.body.equals(Buffer.alloc(1536 * 1024, `/r${i}-`)), `request ${i} got its own body`)
      assert.is(r.sha, createHash('sha256').update(i % 4 === 0 ? upload : Buffer.alloc(0)).digest('hex'), `request ${i}'s body arrived whole`)
    }

    // Ctrl-C: the CLI has ship1 close the port before it exits.
    await t.stop('SIGINT')
    assert.is(await t.exited, 0)
    assert.is(await probe(remote), 'ECONNREFUSED')
    // ship1's audit log: the listening session and one line per connection carried back.
    const audit = await eventually('the audit lines of the reverse tunnel', () => {
      const lines = readOr(`${c.node('ship1').dataDir}/audit.log`).split('\n').filter((l) => l.includes('"event":"session"') && l.includes('"method":"tunnel.listen"')).map((l) => JSON.parse(l) as { what: string; fromNode: string; bytesIn: number; bytesOut: number })
      // The listening session's line, and one for each of the 20 connections (the last may be written after it).
      const done = lines.some((l) => l.what === `listen 127.0.0.1:${remote}`) && lines.filter((l) => l.what.startsWith(`127.0.0.1:${remote} from 127.0.0.1:`)).length >= 20
      return done ? lines : undefined
    })
    const carried = audit.filter((l) => l.what.startsWith(`127.0.0.1:${remote} from 127.0.0.1:`))
    assert.is(carried.length, 20)
    assert.ok(carried.every((l) => l.fromNode === 'central' && l.bytesIn >= 1536 * 1024))

    // --once: one connection carried, then the CLI exits by itself, and the port with it.
    const o = new Proc(['tunnel', 'ship1', '-R', `${remote}:127.0.0.1:${target}`, '--once', '--config', c.node('central').config])
    procs.push(o)
    await o.waitFor(/tunnel listening on ship1's 127\.0\.0\.1:\d+/)
    const one = await request(remote, '/once')
    assert.ok(one.body.equals(Buffer.alloc(1536 * 1024, '/once')))
    assert.is(await o.exited, 0)
    assert.is(await probe(remote), 'ECONNREFUSED')

    // Not in tunnels.listen: refused on ship1 with its code, exit 3, and nothing listens there.
    const d = new Proc(['tunnel', 'ship1', '-R', `${denied}:127.0.0.1:${target}`, '--config', c.node('central').config])
    procs.push(d)
    await d.waitFor(/tunnel_listen_denied|listening/)
    assert.match(d.output, /tunnel_listen_denied/)
    assert.is(await d.exited, 3)
    assert.match(d.output, new RegExp(`may not listen on port ${denied}: tunnels.listen lists ${remote}`))
    assert.is(await probe(denied), 'ECONNREFUSED')
  } finally {
    for (const p of procs) await p.stop('SIGKILL')
    await c.destroy()
    server.close()
  }
})

const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024

test('tunnel -R - a reader on ship1 that does not read holds the server here back: no process on the path buffers what it sent', async () => {
  // The server here pours 48 MiB into each connection; the client on ship1 connects and reads nothing.
  const SIZE = 48 * 1024 * 1024
  const held: net.Socket[] = []
  const server = net.createServer((s) => { held.push(s); s.on('error', () => {}); s.end(Buffer.alloc(SIZE, 'p')) })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const target = (server.address() as net.AddressInfo).port
  const remote = await freePort()
  const c = await Cluster.create(['ship1'], { log: { level: 'info' } })
  let t: Proc | undefined
  let client: net.Socket | undefined
  try {
    await c.startHub()
    await c.start('central')
    editYaml(c.node('ship1').config, (doc) => { section(doc, 'tunnels').listen = [remote] })
    await c.start('ship1')
    t = new Proc(['tunnel', 'ship1', '-R', `${remote}:127.0.0.1:${target}`, '--config', c.node('central').config])
    await t.waitFor(/tunnel listening on/)
    const pids = { cli: t.child.pid!, central: c.node('central').proc!.child.pid!, hub: c.hub!.child.pid!, ship1: c.node('ship1').proc!.child.pid! }
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, rssMb(pid)]))
    client = net.connect({ host: '127.0.0.1', port: remote })
    client.pause()
    // Wait until the server here has written what it can (its socket stops draining).
    let last = -1
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000))
      const pending = held[0]?.writableLength ?? -1
      if (pending >= 0 && pending === last) break
      last = pending
    }
    // Most of it still waits in the server's socket: the tunnel took a few windows' worth.
    assert.ok(held[0]!.writableLength > 32 * 1024 * 1024, `only ${held[0]!.writableLength} bytes wait at the server`)
    for (const [k, pid] of Object.entries(pids)) {
      const grew = rssMb(pid) - before[k]!
      assert.ok(grew < 32, `${k} grew ${grew.toFixed(1)} MB holding a connection nobody reads`)
    }
    // The reader starts: every byte arrives.
    let n = 0
    await new Promise<void>((resolve, reject) => { client!.on('data', (d: Buffer) => { n += d.length }); client!.on('end', resolve); client!.on('error', reject); client!.resume() })
    assert.is(n, SIZE)
  } finally {
    client?.destroy()
    await t?.stop('SIGKILL')
    await c.destroy()
    server.close()
  }
})

test('tunnel -R - a target here that refuses closes the connection on ship1; the hub down past sessions.grace: the port on ship1 is closed and the CLI ends with session_lost', async () => {
  const remote = await freePort()
  const c = await Cluster.create(['ship1'], { sessions: { grace: 3 } })
  let t: Proc | undefined
  try {
    await c.startHub()
    await c.start('central')
    editYaml(c.node('ship1').config, (doc) => { section(doc, 'tunnels').listen = [remote] })
    await c.start('ship1')
    t = new Proc(['tunnel', 'ship1', '-R', `${remote}:127.0.0.1:1`, '--config', c.node('central').config])
    await t.waitFor(/tunnel listening on/)
    // Nothing listens on port 1 here: the connection made on ship1 is closed, the error said.
    const gone = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: remote })
      s.on('data', () => {})
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
      s.on('close', () => resolve('closed'))
    })
    assert.ok(gone === 'closed' || gone === 'ECONNRESET', gone)
    await t.waitFor(/the local connection failed: ECONNREFUSED/)
    await c.hub!.stop('SIGKILL')
    assert.is(await t.exited, 1)
    assert.match(t.output, /session_lost/)
    // ship1 heard nothing for its own grace too: it closed the port.
    const until = Date.now() + 20_000
    while ((await probe(remote)) !== 'ECONNREFUSED' && Date.now() < until) await new Promise((r) => setTimeout(r, 200))
    assert.is(await probe(remote), 'ECONNREFUSED')
  } finally {
    await t?.stop('SIGKILL')
    await c.destroy()
  }
})

test.run()
