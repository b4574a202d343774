/**
 * The hostile-input scenarios, shared by the quick run in `npm test` (test/hostile.test.ts,
 * a few hundred cases) and the chaos run (test/chaos/fuzz.test.ts, FUZZ_CASES, 100k default,
 * and FUZZ_HTTP_CASES, 50k). A healthy pair (central → ship1) keeps exchanging commands
 * throughout; memory of the hub and of the fuzzed node is sampled before and after. central
 * also serves the HTTP API, attacked by the scenarios of hostile-http.ts.
 */
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encode as mpEncode } from '@msgpack/msgpack'
import { encode, stamp, parseMessage } from '../../src/wire/envelope'
import { encodeFrame, FrameDecoder, type Frame } from '../../src/wire/framing'
import { ulid } from '../../src/wire/ulid'
import { Cluster, editYaml, freePort, section, sendVia } from '../fixtures/cluster'
import { configure } from '../fixtures/configure'
import { eventually } from '../helpers'
import { PROTO_NAMES, carriesOn, hitHub, hitSocket, hubCase, pool, prng, rssMb, socketCase } from './fuzz'
import { hostileHttp } from './hostile-http'
import { hostileNames } from './hostile-names'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A connection speaking the hub's framing, authenticated as `node` when the token is right. */
async function peer(port: number, node: string, token: string): Promise<{ sock: net.Socket; frames: Frame[]; closed: () => boolean; send(f: Frame): void }> {
  const sock = net.connect(port, '127.0.0.1')
  const frames: Frame[] = []
  const dec = new FrameDecoder()
  let closed = false
  sock.on('data', (d: Buffer) => { try { frames.push(...dec.push(d)) } catch { /* the test looks at frames */ } })
  sock.on('close', () => { closed = true })
  sock.on('error', () => {})
  await new Promise((r) => sock.once('connect', r))
  sock.write(encodeFrame({ t: 'hello', node, token, version: '0.1.0', apiVersion: 1 }))
  await sleep(200)
  return { sock, frames, closed: () => closed, send: (f) => sock.write(encodeFrame(f)) }
}

/** An envelope claiming to be from `fromNode`, as MessagePack. */
function spoofed(fromNode: string, data: string): { id: string; b: Uint8Array } {
  const env = stamp(parseMessage({ toNode: 'ship1', method: 'reply.file.append', directory: 'spoof', fileName: 's.log', data }, 'm'), { fromNode })[0]!
  return { id: env.id, b: encode(env) }
}

/** `names`: random mixes of Object.prototype names after every name on every surface (hostile-names.ts), and whether the CLI is tried with each. */
export function hostile(cases: number, httpCases = cases, seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9), names = { rounds: 0, cli: false }): void {
  const rnd = prng(seed)
  let c: Cluster
  let traffic: { ok: number; failed: string[]; stop: boolean; done: Promise<void> }
  // central also answers HTTP (api.http), the third surface under attack.
  const token = `fuzz-${seed.toString(36)}-0123456789abcdef`
  let httpPort = 0

  test.before(async () => {
    console.log(`  hostile: FUZZ_SEED=${seed}`)
    c = await Cluster.create(['ship1', 'mallory'], { log: { level: 'info' } }, 'tcp')
    httpPort = await freePort()
    configure(c, 'central', { api: { http: `127.0.0.1:${httpPort}`, token } })
    // The fuzz comes from one address and is meant to reach the parser, not the cap on
    // connections waiting for their hello (test/hub-hello.test.ts covers that).
    editYaml(path.join(c.dir, 'hub.yaml'), (doc) => { section(doc, 'hub').maxPendingPerAddress = 1_000_000 })
    await c.startServer()
    await c.start('central')
    await c.start('ship1')
    // The healthy pair: a command and its reply, again and again, while the fuzz runs.
    traffic = { ok: 0, failed: [], stop: false, done: Promise.resolve() }
    traffic.done = (async () => {
      while (!traffic.stop) {
        try {
          const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }], { ms: 20_000 })
          if (r.replies.length === 1 && r.replies[0]!.error === undefined) traffic.ok++
          else traffic.failed.push(JSON.stringify(r.replies))
        } catch (err) {
          traffic.failed.push((err as Error).message)
        }
        await sleep(100)
      }
    })()
  })

  test.after(async () => {
    traffic.stop = true
    await traffic.done
    await c.destroy()
  })

  test(`hostile - ${cases} random and mutated frames to the hub: no crash, no hang, memory bounded, the healthy pair carries on`, async () => {
    const hubPid = c.hub!.child.pid!
    const before = rssMb(hubPid)
    const okBefore = traffic.ok
    const kinds = new Map<string, number>()
    let silent = 0
    const started = Date.now()
    let mid = 0
    await pool(cases, 64, async (i) => {
      if (i === Math.floor(cases / 2)) mid = rssMb(hubPid)
      const k = hubCase(rnd, rnd() < 0.4 ? 'ship1' : rnd() < 0.5 ? 'nobody' : PROTO_NAMES[Math.floor(rnd() * PROTO_NAMES.length)]!)
      kinds.set(k.kind, (kinds.get(k.kind) ?? 0) + 1)
      const r = await hitHub(c.port, k.bytes, 100)
      // A peer that said nothing complete may be left waiting (a truncated frame): that is fine;
      // what it must never get is a message.
      if (!r.closedByHub) silent++
      const frames = (() => { try { return new FrameDecoder().push(r.got) } catch { return [] } })()
      for (const f of frames) assert.ok(f.t === 'error', `an unauthenticated peer got a ${f.t} frame (${k.kind})`)
    })
    const after = rssMb(hubPid)
    assert.is(c.hub!.child.exitCode, null, 'the hub is still running')
    assert.ok(await carriesOn(traffic, okBefore), 'the healthy pair exchanges messages during and after the fuzz')
    assert.equal(traffic.failed, [], 'no healthy exchange failed')
    // Bounded: the second half of the cases does not keep growing it (V8 keeps what it grew).
    assert.ok(after - mid < 60 && after - before < 150, `hub RSS ${before.toFixed(0)} → ${mid.toFixed(0)} (half way) → ${after.toFixed(0)} MB`)
    // Nothing spoofed reached ship1.
    assert.not.ok(fs.existsSync(path.join(c.node('ship1').dataDir, 'replies')), 'no fuzzed frame ran a method on ship1')
    console.log(`  hub: ${cases} cases in ${((Date.now() - started) / 1000).toFixed(1)} s (${silent} left open until the client gave up), RSS ${before.toFixed(0)} → ${mid.toFixed(0)} (half way) → ${after.toFixed(0)} MB, healthy round trips ${traffic.ok - okBefore}; ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`)
  })

  test(`hostile - ${cases} random and mutated requests to the socket API: no crash, every bad line answered with an error, memory bounded`, async () => {
    const pid = c.node('central').proc!.child.pid!
    const before = rssMb(pid)
    const okBefore = traffic.ok
    const started = Date.now()
    const perConn = 50
    let errors = 0
    let accepted = 0
    let half = 0
    await pool(Math.ceil(cases / perConn), 8, async (i) => {
      if (i === Math.floor(cases / perConn / 2)) half = rssMb(pid)
      const lines = Array.from({ length: perConn }, () => socketCase(rnd))
      const out = await hitSocket(c.node('central').socket, lines, 300)
      for (const l of out.split('\n').filter(Boolean)) {
        const o = JSON.parse(l) as { error?: unknown; accepted?: unknown }
        if (o.error) errors++
        if (o.accepted) accepted++
      }
    })
    const mid = rssMb(pid)
    // A request that never ends is cut off, not buffered without end.
    const endless = await new Promise<string>((resolve) => {
      const s = net.connect(c.node('central').socket)
      let got = ''
      s.setEncoding('utf8')
      s.on('data', (d: string) => { got += d })
      s.on('close', () => resolve(got))
      s.on('error', () => resolve(got))
      const chunk = 'x'.repeat(1 << 20)
      let sent = 0
      const pump = (): void => { while (sent < 80 && !s.destroyed) { sent++; if (!s.write(chunk)) { s.once('drain', pump); return } } }
      s.on('connect', pump)
    })
    assert.match(endless, /api_bad_request[^\n]*longer than/)
    const after = rssMb(pid)
    assert.is(c.node('central').proc!.child.exitCode, null, 'central is still running')
    assert.ok(await carriesOn(traffic, okBefore), 'the healthy pair exchanges messages during and after the fuzz')
    assert.equal(traffic.failed, [], 'no healthy exchange failed')
    // What the second half adds is the bound that matters; the total (131–152 MB measured on the
    // 2-core CI machine, with ~15k messages accepted and queued) only guards against a blow-up.
    assert.ok(mid - half < 60 && mid - before < 200 && after - before < 250, `central RSS ${before.toFixed(0)} → ${half.toFixed(0)} (half way) → ${mid.toFixed(0)} → ${after.toFixed(0)} MB`)
    console.log(`  socket API: ${cases} lines in ${((Date.now() - started) / 1000).toFixed(1)} s, ${errors} error answers, ${accepted} accepted, RSS ${before.toFixed(0)} → ${half.toFixed(0)} (half way) → ${mid.toFixed(0)} MB, ${after.toFixed(0)} MB after an 80 MB line without end`)
  })

  test('hostile - an unauthenticated peer can neither send nor receive', async () => {
    // Wrong token for ship1: refused; the real ship1 stays connected and keeps its messages.
    const fake = await peer(c.port, 'ship1', 'wrong')
    // After the fuzz's wrong hellos from this address the refusal is held back (up to 5 s).
    await eventually('the close after the wrong token', () => (fake.closed() ? true : undefined), 10_000)
    assert.equal(fake.frames.map((f) => f.t), ['error'])
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }], { ms: 10_000 })
    assert.is(r.replies.length, 1)
    // No hello at all: a msg is refused, nothing reaches ship1.
    const anon = net.connect(c.port, '127.0.0.1')
    await new Promise((res) => anon.once('connect', res))
    const { id, b } = spoofed('central', 'anonymous\n')
    anon.write(encodeFrame({ t: 'msg', id, to: 'ship1', b }))
    await sleep(500)
    anon.destroy()
    assert.not.ok(fs.existsSync(path.join(c.node('ship1').dataDir, 'spoof')), 'nothing from an unauthenticated peer ran')
  })

  test('hostile - a node cannot send as another node; oversized and deeply nested bodies are refused early', async () => {
    const mallory = await peer(c.port, 'mallory', c.node('mallory').token)
    assert.equal(mallory.frames.map((f) => f.t), ['welcome'])
    // Claims central in the frame and in the envelope: the hub stamps from = mallory, ship1 drops it.
    const { id, b } = spoofed('central', 'spoofed\n')
    mallory.send({ t: 'msg', id, to: 'ship1', from: 'central', b })
    // Parts declaring a 4 GB envelope: refused on the first part.
    mallory.send({ t: 'part', id: ulid(), to: 'ship1', i: 0, n: 500_000, b: new Uint8Array(8000) })
    // A deeply nested envelope body in one frame.
    const deep = new Uint8Array(7000).fill(0x91)
    mallory.send({ t: 'msg', id: ulid(), to: 'ship1', b: deep })
    // Random MessagePack as an envelope.
    mallory.send({ t: 'msg', id: ulid(), to: 'ship1', b: mpEncode({ hello: [1, 2, { x: 3 }] }) })
    const ship1 = c.node('ship1').proc!
    await ship1.waitFor(/claims to come from central but the hub says mallory/, 5000)
    await ship1.waitFor(/message_too_large|more than the \d+ allowed/, 5000)
    await ship1.waitFor(/nested deeper/, 5000)
    await sleep(300)
    assert.not.ok(fs.existsSync(path.join(c.node('ship1').dataDir, 'spoof')), 'the spoofed message did not run')
    assert.is(ship1.child.exitCode, null)
    mallory.sock.destroy()
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }], { ms: 10_000 })
    assert.is(r.replies.length, 1, 'ship1 still answers')
  })

  hostileHttp(() => ({ c, port: httpPort, token, traffic }), httpCases, rnd)
  hostileNames(() => ({ c, port: httpPort, token, traffic }), names.rounds, rnd, names.cli)
}
