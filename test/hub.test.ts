/**
 * The built-in hub against bad peers (SPEC §3): every kind of bad input gets an `error` frame
 * and a closed connection for that peer only, while the hub and the other nodes carry on.
 * Real processes on loopback (test/fixtures/cluster.ts), plus raw sockets that speak the
 * framing by hand.
 */
import { encode } from '@msgpack/msgpack'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { encodeFrame, FrameDecoder, type Frame } from '../src/wire/framing'
import { API_VERSION } from '../src/version'
import { Cluster, Proc, sendVia } from './fixtures/cluster'
import { PROTO_NAMES } from './chaos/fuzz'
import { eventually, readOr } from './helpers'

/** A socket to the hub that decodes what comes back. */
interface Raw {
  sock: net.Socket
  frames: Frame[]
  /** Resolves with the first frame (received so far or later) that matches. */
  next(pred: (f: Frame) => boolean, ms?: number): Promise<Frame>
  /** Resolves when the hub has closed the connection. */
  closed(ms?: number): Promise<void>
}

function connectRaw(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    const decoder = new FrameDecoder()
    const frames: Frame[] = []
    let watchers: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = []
    let isClosed = false
    const onClose: (() => void)[] = []
    sock.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) {
        frames.push(f)
        watchers = watchers.filter((w) => {
          if (!w.pred(f)) return true
          w.resolve(f)
          return false
        })
      }
    })
    // Writes racing the hub's close may fail with EPIPE / ECONNRESET: the close is what we test.
    sock.on('error', () => {})
    sock.on('close', () => { isClosed = true; for (const f of onClose) f() })
    sock.once('connect', () => {
      sock.off('error', reject)
      resolve({
        sock,
        frames,
        next: (pred, ms = 5000) => {
          const seen = frames.find(pred)
          if (seen) return Promise.resolve(seen)
          return new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(frames)}`)), ms)
            watchers.push({ pred, resolve: (f) => { clearTimeout(t); res(f) } })
          })
        },
        closed: (ms = 5000) => {
          if (isClosed) return Promise.resolve()
          return new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error(`the hub did not close the connection within ${ms} ms`)), ms)
            onClose.push(() => { clearTimeout(t); res() })
          })
        },
      })
    })
    sock.once('error', reject)
  })
}

/** A frame with a hand-made body: the 2-byte big-endian length, then the bytes as given. */
function rawFrame(body: Uint8Array): Buffer {
  const out = Buffer.alloc(2 + body.length)
  out.writeUInt16BE(body.length, 0)
  out.set(body, 2)
  return out
}

const isError = (f: Frame): f is Extract<Frame, { t: 'error' }> => f.t === 'error'

/** Send `bytes` on a fresh connection; expect an error frame with `code`, then a close. */
async function expectRefused(port: number, bytes: Uint8Array, code: string): Promise<string> {
  const raw = await connectRaw(port)
  try {
    raw.sock.write(bytes)
    // A refused hello past the first few from one address is answered after up to 5 s (hub-guard.ts).
    const f = await raw.next(isError, 8000)
    assert.ok(isError(f))
    assert.is(f.code, code, f.message)
    await raw.closed()
    return f.message
  } finally {
    raw.sock.destroy()
  }
}

/** central → ship1 → central: node.ping gets ship1's answer. */
async function roundTrip(c: Cluster): Promise<void> {
  const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }], { ms: 20_000 })
  assert.is(r.accepted.length, 1)
  assert.is(r.replies.length, 1, `one reply to node.ping, got ${JSON.stringify(r.replies)}`)
  const reply = r.replies[0]!
  assert.is(reply.fromNode, 'ship1')
  assert.is(reply.error, undefined, JSON.stringify(reply.error))
  assert.match(String(reply.data), /^pong ship1 /)
}

function alive(p: Proc | undefined): boolean {
  return p !== undefined && p.child.exitCode === null && p.child.signalCode === null
}

/** Every file (not folder) under dir, as paths relative to it; [] when dir does not exist. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return []
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort()
}

async function started(names: string[], extra: Record<string, unknown> = {}): Promise<Cluster> {
  const c = await Cluster.create(names, extra)
  await c.startHub()
  return c
}

test('hub - a wrong token is refused and the node named in it is untouched', async () => {
  const c = await started(['ship1'])
  let impostor: Proc | undefined
  try {
    await c.start('central')
    const ship1 = await c.start('ship1')
    await roundTrip(c)
    const hub = c.hub!
    const hubFrom = hub.output.length
    const shipFrom = ship1.output.length

    const dataDir = path.join(c.dir, 'impostor')
    const config = path.join(c.dir, 'impostor.yaml')
    fs.writeFileSync(config, YAML.stringify({
      node: { name: 'ship1', central: 'central' }, dataDir,
      transport: { kind: 'tcp', servers: [`tcp://127.0.0.1:${c.port}`], token: 'not-the-token-of-ship1' },
      hello: { interval: 1 }, log: { level: 'debug' },
    }))
    impostor = new Proc(['agent', '--config', config])
    await impostor.waitFor(/refused this node[^\n]*token is wrong/)
    assert.not.match(impostor.output, /connected to tcp:/)
    await hub.waitFor(/refused "ship1" from [^\n]*wrong token/, 10_000, hubFrom)
    await hub.waitFor(/closing [^\n]*auth_failed/, 10_000, hubFrom)

    // ship1's own connection carries on.
    await roundTrip(c)
    assert.not.match(hub.output.slice(hubFrom), /ship1 disconnected|replaced by a newer connection/)
    assert.not.match(ship1.output.slice(shipFrom), /disconnected from/)

    // A name the hub has no token for is refused the same way.
    const hello = encodeFrame({ t: 'hello', node: 'stranger', token: 'whatever', version: '0.0.0', apiVersion: API_VERSION })
    await expectRefused(c.port, hello, 'auth_failed')
    await hub.waitFor(/refused "stranger" from [^\n]*unknown node/, 10_000, hubFrom)
    await roundTrip(c)
    assert.ok(alive(hub))
    assert.ok(alive(impostor), 'a refused agent keeps running and retries; it does not crash')
    // Operators look errors up by code (docs/errors.md): the refusal names it.
    assert.match(impostor.output, /auth_failed/, `the impostor's output names the code auth_failed:\n${impostor.output}`)
  } finally {
    await impostor?.stop('SIGKILL')
    await c.destroy()
  }
})

test('hub - a hello naming an Object.prototype member (constructor, __proto__, toString, …) is an unknown node: refused, and the hub serves on', async () => {
  // hub.tokens also lists a node named constructor: a name like any other.
  const c = await started(['ship1', 'constructor'])
  try {
    await c.start('central')
    await c.start('ship1')
    const hub = c.hub!
    const hubFrom = hub.output.length
    for (const node of PROTO_NAMES) {
      if (node === 'constructor') continue
      const hello = encodeFrame({ t: 'hello', node, token: 'guess', version: '0.0.0', apiVersion: API_VERSION })
      const message = await expectRefused(c.port, hello, 'auth_failed')
      assert.match(message, 'is unknown here or its token is wrong')
      assert.ok(alive(hub), `the hub is still running after a hello as ${node}`)
    }
    // The configured node constructor: a wrong token is refused, its own lets it in.
    await expectRefused(c.port, encodeFrame({ t: 'hello', node: 'constructor', token: 'guess', version: '0.0.0', apiVersion: API_VERSION }), 'auth_failed')
    // Refusals past the first few from one address are logged in totals (hub-guard.ts), not one by one.
    assert.not.match(hub.output.slice(hubFrom), /TypeError|at Hub\./, 'no stack trace in the hub\'s output')
    assert.ok(alive(hub))
    // Still serving: the legitimate nodes exchange messages, and the node named constructor gets in and answers.
    await roundTrip(c)
    await c.start('constructor')
    const r = await sendVia(c.node('central').socket, [{ toNode: 'constructor', method: 'node.ping' }], { ms: 20_000 })
    assert.is(r.replies.length, 1, JSON.stringify(r.replies))
    assert.match(String(r.replies[0]!.data), /^pong constructor /)
  } finally {
    await c.destroy()
  }
})

test('hub - an oversized frame closes only that connection', async () => {
  const c = await started(['ship1'])
  try {
    await c.start('central')
    await c.start('ship1')
    const hubFrom = c.hub!.output.length
    const message = await expectRefused(c.port, Buffer.from([0xff, 0xff]), 'frame_too_large')
    assert.match(message, /65535/)
    await c.hub!.waitFor(/closing [^\n]*frame_too_large/, 5000, hubFrom)
    assert.ok(alive(c.hub), 'the hub is still running')
    await roundTrip(c)
  } finally {
    await c.destroy()
  }
})

test('hub - a body that is not MessagePack closes only that connection', async () => {
  const c = await started(['ship1'])
  try {
    await c.start('central')
    await c.start('ship1')
    const hubFrom = c.hub!.output.length
    // 0xc1 is the one byte MessagePack never uses.
    await expectRefused(c.port, Buffer.from([0x00, 0x01, 0xc1]), 'frame_invalid')
    assert.match(await expectRefused(c.port, rawFrame(encode({ t: 'bogus' })), 'frame_invalid'), /bogus/)
    // Anything but hello first, even a well-formed msg frame.
    const msg = encodeFrame({ t: 'msg', id: '01J0000000000000000000000', to: 'ship1', b: new Uint8Array([0x80]) })
    assert.match(await expectRefused(c.port, msg, 'frame_invalid'), /hello/)
    await c.hub!.waitFor(/closing [^\n]*frame_invalid[^\n]*bogus/, 5000, hubFrom)
    assert.ok(alive(c.hub), 'the hub is still running')
    await roundTrip(c)
  } finally {
    await c.destroy()
  }
})

test("hub - a bare-string frame after hello is a log line for the hub's sink", async () => {
  const c = await started(['ship1', 'ship2'])
  const raw = await connectRaw(c.port)
  try {
    raw.sock.write(encodeFrame({ t: 'hello', node: 'ship2', token: c.node('ship2').token, version: '0.0.0', apiVersion: API_VERSION }))
    const welcome = await raw.next((f) => f.t === 'welcome' || f.t === 'error')
    assert.is(welcome.t, 'welcome', JSON.stringify(welcome))
    const line = '2020-06-10 16:23:50 -06:00|stderr|warn|this is very very serious'
    const frame = encodeFrame({ t: 'log', line })
    assert.equal([...frame.subarray(0, 2)], [0x00, 0x42], 'the SPEC example frame')
    raw.sock.write(frame)
    const file = path.join(c.dir, 'hub', 'nodes.log')
    const text = await eventually('the line in nodes.log', () => {
      const t = readOr(file)
      return t.includes(line) ? t : undefined
    }, 5000)
    assert.ok(text.split('\n').includes(`ship2|${line}`), `nodes.log: ${JSON.stringify(text)}`)
    // The log frame did not end the connection: a ping still gets its pong.
    raw.sock.write(encodeFrame({ t: 'ping' }))
    await raw.next((f) => f.t === 'pong')
  } finally {
    raw.sock.destroy()
    await c.destroy()
  }
})

test("hub - a node's newlines and escapes stay inside its own line, in nodes.log and in the hub's log", async () => {
  const c = await started(['ship1', 'ship2'])
  const raw = await connectRaw(c.port)
  try {
    raw.sock.write(encodeFrame({ t: 'hello', node: 'ship2', token: c.node('ship2').token, version: '0.0.0\n2026-12-06T00:00:00.000Z info  hub: forged-version', apiVersion: API_VERSION }))
    const welcome = await raw.next((f) => f.t === 'welcome' || f.t === 'error')
    assert.is(welcome.t, 'welcome', JSON.stringify(welcome))
    raw.sock.write(encodeFrame({ t: 'log', line: 'now|stdout|info|mine\nship1|now|stderr|error|forged-line\u001b[31m' }))
    raw.sock.write(encodeFrame({ t: 'error', code: 'x', message: 'bye\r\n2026-12-06T00:00:00.000Z error hub: forged-error' }))
    await raw.closed()
    const file = path.join(c.dir, 'hub', 'nodes.log')
    const text = await eventually('the line in nodes.log', () => {
      const t = readOr(file)
      return t.includes('forged-line') ? t : undefined
    }, 5000)
    assert.equal(text.split('\n').filter(Boolean), ['ship2|now|stdout|info|mine\\nship1|now|stderr|error|forged-line\\u001b[31m'])
    await c.hub!.waitFor(/forged-error/)
    for (const forged of ['forged-version', 'forged-error']) {
      const line = c.hub!.output.split('\n').find((l) => l.includes(forged))
      assert.ok(line !== undefined && /^\S+Z (info|warn) +hub: /.test(line), `the hub's own line, not a forged one: ${JSON.stringify(line)}`)
    }
  } finally {
    raw.sock.destroy()
    await c.destroy()
  }
})

test('hub - a reply file outside the data dir is refused', async () => {
  const c = await started(['ship1'])
  const parent = path.dirname(c.dir)
  const outside = [path.join(c.dir, 'escape'), path.join(parent, 'escape')]
  const before = outside.map(filesUnder)
  const central = c.node('central')
  try {
    const proc = await c.start('central')
    await c.start('ship1')
    const centralFrom = proc.output.length
    const r = await sendVia(central.socket, [
      { toNode: 'ship1', method: 'cli.run', methodArgs: ['echo secret'], directory: '../../escape' },
      { toNode: 'ship1', method: 'cli.run', methodArgs: ['echo secret'], fileName: '../x' },
    ], { ms: 20_000 })
    assert.is(r.accepted.length, 2)
    assert.is(r.replies.length, 2, `both waiting clients get their reply: ${JSON.stringify(r.replies)}`)
    for (const reply of r.replies) {
      assert.is(reply.fromNode, 'ship1')
      assert.is(reply.data, 'secret\n')
      assert.is(reply.exitCode, 0)
      // The sink refused it: the waiting client is told, not left believing it was written.
      assert.is((reply.error as { code?: string } | undefined)?.code, 'path_outside', JSON.stringify(reply))
    }
    await proc.waitFor(/path_outside[^\n]*directory "\.\.\/\.\.\/escape"/, 5000, centralFrom)
    await proc.waitFor(/path_outside[^\n]*fileName "\.\.\/x"/, 5000, centralFrom)
    assert.equal(outside.map(filesUnder), before, 'nothing written outside the data directory')
    // ../x from <dataDir>/replies/ship1 would land in <dataDir>/replies: refused as well.
    assert.not.ok(fs.existsSync(path.join(central.dataDir, 'replies', 'x')))
    assert.not.ok(fs.existsSync(path.join(central.dataDir, 'x')))
  } finally {
    await c.destroy()
  }
})

test('hub - a message to a node that never connected waits, then ttl gives the sender an error reply', async () => {
  const c = await started([])
  try {
    const proc = await c.start('central')
    const t0 = Date.now()
    // ghost never connects: central has not heard of it (allowUnknown).
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ghost', method: 'node.ping', ttl: 2 }], { wait: true, ms: 10_000, allowUnknown: true })
    const elapsed = Date.now() - t0
    assert.is(r.accepted.length, 1)
    const id = r.accepted[0]!.id
    assert.is(r.replies.length, 1, `an error reply within 10 s, got ${JSON.stringify(r.replies)}`)
    const reply = r.replies[0]!
    assert.is(reply.inReplyTo, id)
    assert.is((reply.error as { code?: string } | undefined)?.code, 'ttl_expired', JSON.stringify(reply))
    assert.ok(elapsed >= 1900, `it waited out its ttl of 2 s first (${elapsed} ms)`)
    const errors = path.join(c.node('central').dataDir, 'errors.log')
    const line = await eventually('the error.log line', () => readOr(errors).split('\n').find((l) => l.includes(id)), 5000)
    assert.match(line, /ttl_expired/)
    assert.match(line, /ghost/)
    assert.ok(alive(proc))
  } finally {
    await c.destroy()
  }
})

test.run()
