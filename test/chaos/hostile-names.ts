/**
 * Names a plain object answers without holding them (PROTO_NAMES: every Object.prototype member,
 * and __proto__), sent wherever a name from the wire, a client or the config is looked up:
 * hello nodes and frame targets at the hub, envelopes from another node, toNode / method /
 * replyMethod through the socket and HTTP APIs, HTTP routes, config keys and methods.commands
 * names (remotely and with the CLI). Each gets a coded refusal or its ordinary outcome, and the
 * hub, central and ship1 keep running and serving. Registered by hostile.ts on its cluster, so
 * it runs quick in `npm test` (every name once) and in the chaos run, where `rounds` random
 * mixes of the names follow.
 *
 *   name ─▶ hub (hello, msg/part to, online, from) ─▶ envelopes to ship1 and central ─▶ socket and
 *        HTTP APIs ─▶ config.get/config.set/cli.named on ship1 ─▶ the CLI (chaos run) ─▶ all alive
 */
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encode as mpEncode } from '@msgpack/msgpack'
import { ERROR_CODES } from '../../src/errors'
import { decode, encode, makeAck } from '../../src/wire/envelope'
import { encodeFrame, FrameDecoder, type Frame } from '../../src/wire/framing'
import { ulid } from '../../src/wire/ulid'
import { sendVia, status, tmpDir } from '../fixtures/cluster'
import { runCli } from '../fixtures/run-cli'
import { PROTO_NAMES, carriesOn, hitHub, hitSocket, int, pool, type Rnd } from './fuzz'
import type { HttpTarget } from './hostile-http'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[int(rnd, xs.length)]!
const coded = (code: unknown): boolean => typeof code === 'string' && Object.hasOwn(ERROR_CODES, code)

/** An authenticated connection to the hub that ACKs what it is sent and keeps the replies. */
interface Peer {
  frames: Frame[]
  replies: { id: string; method: string; inReplyTo?: string; error?: { code: string } }[]
  send(f: Frame): void
  next(pred: (f: Frame) => boolean, ms?: number): Promise<Frame>
  closed(): boolean
  close(): void
}

async function peer(port: number, node: string, token: string): Promise<Peer> {
  const sock = net.connect(port, '127.0.0.1')
  const dec = new FrameDecoder()
  const frames: Frame[] = []
  const replies: Peer['replies'] = []
  let watchers: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = []
  let closed = false
  const send = (f: Frame): void => { if (!sock.destroyed) sock.write(encodeFrame(f)) }
  sock.on('data', (d: Buffer) => {
    for (const f of dec.push(d)) {
      frames.push(f)
      if (f.t === 'msg') {
        const env = decode(f.b)
        if (env.method !== 'ack') {
          replies.push(env as Peer['replies'][number])
          send({ t: 'msg', id: ulid(), to: env.fromNode, b: encode(makeAck(env, ulid(), Date.now())) })
        }
      }
      watchers = watchers.filter((w) => { if (!w.pred(f)) return true; w.resolve(f); return false })
    }
  })
  sock.on('close', () => { closed = true })
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve())
    sock.once('error', (err) => reject(new Error(`cannot reach the hub as ${node}: ${err.message}`)))
  })
  sock.on('error', () => {})
  send({ t: 'hello', node, token, version: '0.1.0', apiVersion: 1 })
  const p: Peer = {
    frames, replies, send, closed: () => closed, close: () => sock.destroy(),
    next: (pred, ms = 10_000) => {
      const seen = frames.find(pred)
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(frames.map((f) => f.t))}`)), ms)
        watchers.push({ pred, resolve: (f) => { clearTimeout(t); resolve(f) } })
      })
    },
  }
  const welcome = await p.next((f) => f.t === 'welcome' || f.t === 'error')
  assert.is(welcome.t, 'welcome', `${node} is let in: ${JSON.stringify(welcome)}`)
  return p
}

/** The one frame the hub answers an unauthenticated peer with, which it then closes. */
async function refusal(port: number, bytes: Uint8Array): Promise<Frame[]> {
  const r = await hitHub(port, bytes, 10_000)
  assert.ok(r.closedByHub, 'the hub closed the connection')
  return new FrameDecoder().push(r.got)
}

/** What became of one message sent through central's socket: refused at once, or its final reply. */
async function outcome(socket: string, message: Record<string, unknown>): Promise<{ code: string; at: 'request' | 'reply'; reply?: Record<string, unknown> }> {
  let r
  try {
    r = await sendVia(socket, [message], { ms: 30_000 })
  } catch (err) {
    const e = JSON.parse((err as Error).message) as { code: string }
    return { code: e.code, at: 'request' }
  }
  const reply = r.replies.find((x) => x.final === true || x.error !== undefined)
  assert.ok(reply, `a final reply to ${JSON.stringify(message)}; got ${JSON.stringify(r.replies)}`)
  return { code: (reply.error as { code?: string } | undefined)?.code ?? 'ok', at: 'reply', reply }
}

/** POST one message over HTTP and wait for its replies: status and body. */
async function postHttp(t: HttpTarget, message: Record<string, unknown>): Promise<{ status: number; body: { error?: { code: string }; done?: boolean; replies?: { error?: { code: string } }[] } }> {
  const r = await fetch(`http://127.0.0.1:${t.port}/v1/messages?wait=1&timeout=30`, { method: 'POST', headers: { authorization: `Bearer ${t.token}` }, body: JSON.stringify(message) })
  return { status: r.status, body: (await r.json()) as never }
}

async function getHttp(t: HttpTarget, route: string): Promise<{ status: number; code: string | undefined }> {
  const r = await fetch(`http://127.0.0.1:${t.port}${route}`, { headers: { authorization: `Bearer ${t.token}` } })
  const body = (await r.json()) as { error?: { code: string } }
  return { status: r.status, code: body.error?.code }
}

/** The CLI as a user runs it. */
const cli = runCli

/** Where each process's output stands now: stillServing looks at what came after. */
function outputs(t: HttpTarget): number[] {
  return [t.c.hub!.output.length, t.c.node('central').proc!.output.length, t.c.node('ship1').proc!.output.length]
}

/** Hub, central and ship1 still run, the healthy pair still exchanges messages, and central answers. */
async function stillServing(t: HttpTarget, okBefore: number, from: number[]): Promise<void> {
  assert.is(t.c.hub!.child.exitCode, null, 'the hub is still running')
  for (const n of ['central', 'ship1']) assert.is(t.c.node(n).proc!.child.exitCode, null, `${n} is still running`)
  assert.ok(await carriesOn(t.traffic, okBefore), 'the healthy pair exchanges messages during and after')
  assert.equal(t.traffic.failed, [], 'no healthy exchange failed')
  assert.is((await status(t.c.node('central').socket)).node, 'central')
  assert.is((await getHttp(t, '/v1/nodes')).status, 200)
  for (const [i, out] of [t.c.hub!.output, t.c.node('central').proc!.output, t.c.node('ship1').proc!.output].entries()) {
    assert.not.match(out.slice(from[i]), /TypeError|ReferenceError|unexpected error/, 'no stack trace in any output')
  }
}

export function hostileNames(target: () => HttpTarget, rounds: number, rnd: Rnd, withCli: boolean): void {
  test(`hostile - every Object.prototype name (${PROTO_NAMES.length}) as a hello node, a frame's to, an online node and a claimed sender at the hub: refused with a code, the hub serves on`, async () => {
    const t = target()
    const okBefore = t.traffic.ok
    const from = outputs(t)
    const mallory = await peer(t.c.port, 'mallory', t.c.node('mallory').token)
    for (const name of PROTO_NAMES) {
      // Unauthenticated: a hello as the name, and frames before any hello that name it.
      const hello = encodeFrame({ t: 'hello', node: name, token: `guess-${name}`, version: '0.1.0', apiVersion: 1 })
      for (const bytes of [hello, encodeFrame({ t: 'online', node: name }), encodeFrame({ t: 'msg', id: ulid(), to: name, b: new Uint8Array([0x80]) })]) {
        const frames = await refusal(t.c.port, bytes)
        assert.is(frames.length, 1, `one frame for ${name}: ${JSON.stringify(frames)}`)
        const f = frames[0]!
        assert.ok(f.t === 'error' && coded(f.code), `a coded error frame for ${name}, got ${JSON.stringify(f)}`)
      }
      // Authenticated: a message and a first part to the name are refused as offline; online names it.
      const id = ulid()
      mallory.send({ t: 'msg', id, to: name, b: mpEncode({ id, toNode: name, fromNode: 'mallory', method: 'node.ping' }) })
      const nack = await mallory.next((f) => f.t === 'nack' && f.id === id)
      assert.ok(nack.t === 'nack' && nack.to === name, JSON.stringify(nack))
      const part = ulid()
      mallory.send({ t: 'part', id: part, to: name, i: 0, n: 2, b: new Uint8Array(10) })
      await mallory.next((f) => f.t === 'nack' && f.id === part)
      mallory.send({ t: 'online', node: name })
    }
    mallory.send({ t: 'ping' })
    await mallory.next((f) => f.t === 'pong')
    assert.not.ok(mallory.closed(), 'mallory is still connected')
    assert.not.ok(mallory.frames.some((f) => f.t === 'error'), `mallory got no error frame: ${JSON.stringify(mallory.frames.filter((f) => f.t === 'error'))}`)
    mallory.close()
    await stillServing(t, okBefore, from)
  })

  test('hostile - every Object.prototype name in envelopes from another node (fromNode, toNode, method, replyMethod, inReplyTo): dropped or refused with a code, never run', async () => {
    const t = target()
    const okBefore = t.traffic.ok
    const from = outputs(t)
    const mallory = await peer(t.c.port, 'mallory', t.c.node('mallory').token)
    const ship1 = t.c.node('ship1').proc!
    const calls = new Map<string, string>()
    for (const name of PROTO_NAMES) {
      const env = (fields: Record<string, unknown>): { id: string; b: Uint8Array } => {
        const id = ulid()
        return { id, b: mpEncode({ id, toNode: 'ship1', fromNode: 'mallory', method: 'reply.file.append', directory: 'spoof', fileName: 'n.log', data: `${name}\n`, createdAt: Date.now(), ...fields }) }
      }
      // Claims another sender, or another receiver: dropped by ship1.
      for (const fields of [{ fromNode: name }, { toNode: name }]) {
        const e = env(fields)
        mallory.send({ t: 'msg', id: e.id, to: 'ship1', b: e.b })
      }
      // Calls the name, with the name as its reply method: ship1 answers mallory with a refusal.
      const call = env({ method: name, replyMethod: name, directory: undefined, fileName: undefined, data: undefined })
      calls.set(call.id, name)
      mallory.send({ t: 'msg', id: call.id, to: 'ship1', b: call.b })
      // A reply central never asked for, naming the name as its method or as the request.
      for (const fields of [{ method: name, inReplyTo: ulid() }, { inReplyTo: name }]) {
        const e = env({ toNode: 'central', ackTimeout: 0, ...fields })
        mallory.send({ t: 'msg', id: e.id, to: 'central', b: e.b })
      }
    }
    // Every call gets its refusal back, as a reply whose method is the name it asked for.
    const deadline = Date.now() + 30_000
    while (mallory.replies.filter((r) => calls.has(r.inReplyTo ?? '')).length < calls.size && Date.now() < deadline) await sleep(100)
    for (const [id, name] of calls) {
      const r = mallory.replies.find((x) => x.inReplyTo === id)
      assert.ok(r, `ship1 answered the call of ${name}`)
      assert.is(r.method, name, 'the reply runs the reply method the call named')
      assert.ok(r.error !== undefined && ['denied', 'method_unknown'].includes(r.error.code), `a refusal for ${name}: ${JSON.stringify(r)}`)
    }
    // ship1 logs the first few drops and refusals from mallory one by one and sums up the rest every 10 s (src/log-tally.ts).
    await ship1.waitFor(/it claims to come from constructor but the hub says mallory/, 10_000)
    await ship1.waitFor(/addressed to constructor, not ship1/, 10_000)
    await ship1.waitFor(/more like these from mallory in the last \d+ s[^\n]* \d+ misaddressed; \d+ forged fromNode/, 15_000)
    await t.c.node('central').proc!.waitFor(/refused reply [^\n]* from mallory to valueOf/, 10_000)
    assert.not.ok(fs.existsSync(path.join(t.c.node('ship1').dataDir, 'spoof')), 'nothing mallory sent ran on ship1')
    mallory.close()
    await stillServing(t, okBefore, from)
  })

  test('hostile - every Object.prototype name as toNode, method and replyMethod through the socket and HTTP APIs, and in HTTP routes: a coded outcome for each', async () => {
    const t = target()
    const okBefore = t.traffic.ok
    const from = outputs(t)
    const socket = t.c.node('central').socket
    await pool(PROTO_NAMES.length, 8, async (i) => {
      const name = PROTO_NAMES[i]!
      // Nobody has that name: refused, or given up after its ttl (never answered as a node).
      const to = await outcome(socket, { toNode: name, method: 'node.ping', ttl: 2 })
      assert.ok(coded(to.code), `toNode ${name}: ${JSON.stringify(to)}`)
      for (const toNode of ['central', 'ship1']) {
        const m = await outcome(socket, { toNode, method: name })
        assert.ok(['method_unknown', 'envelope_invalid'].includes(m.code), `method ${name} on ${toNode}: ${JSON.stringify(m)}`)
      }
      // ship1 runs node.ping and answers with the name as the method: central has no such method.
      const r = await outcome(socket, { toNode: 'ship1', method: 'node.ping', replyMethod: name })
      assert.ok(['method_unknown', 'envelope_invalid'].includes(r.code), `replyMethod ${name}: ${JSON.stringify(r)}`)
      // The socket API's op.
      const op = JSON.parse((await hitSocket(socket, [JSON.stringify({ op: name }) + '\n'])).split('\n')[0]!) as { error?: { code: string } }
      assert.is(op.error?.code, 'api_bad_request', `op ${name}`)
      // The HTTP API: the same messages, and the name in routes.
      for (const message of [{ toNode: 'ship1', method: name }, { toNode: 'ship1', method: 'node.ping', replyMethod: name }, { toNode: name, method: 'node.ping', ttl: 2 }]) {
        const h = await postHttp(t, message)
        const code = h.status === 200 ? h.body.replies?.find((x) => x.error !== undefined)?.error?.code : h.body.error?.code
        assert.ok(coded(code) && (h.status === 200 ? h.body.done === true : h.status >= 400 && h.status < 500), `POST ${JSON.stringify(message)}: ${h.status} ${JSON.stringify(h.body)}`)
      }
      assert.equal(await getHttp(t, `/v1/messages/${encodeURIComponent(name)}`), { status: 400, code: 'api_bad_request' })
      assert.equal(await getHttp(t, `/v1/${encodeURIComponent(name)}`), { status: 404, code: 'api_not_found' })
    })
    await stillServing(t, okBefore, from)
  })

  test('hostile - every Object.prototype name as a config key and a methods.commands name, set and read remotely: refused as no key, or kept and used by name', async () => {
    const t = target()
    const okBefore = t.traffic.ok
    const from = outputs(t)
    const socket = t.c.node('central').socket
    const on = (method: string, methodArgs: string[]): Promise<Awaited<ReturnType<typeof outcome>>> => outcome(socket, { toNode: 'ship1', method, methodArgs })
    for (const name of PROTO_NAMES) {
      assert.is((await on('config.get', [name])).code, 'config_key', `config.get ${name}`)
      assert.is((await on('config.get', [`methods.${name}`])).code, 'config_key', `config.get methods.${name}`)
      const absent = await on('config.get', [`hub.tokens.${name}`])
      assert.is(absent.reply?.data, 'null\n', `config.get hub.tokens.${name}: nothing there`)
      assert.is((await on('config.set', [`node.${name}`, 'x'])).code, 'config_key', `config.set node.${name}`)
      assert.is((await on('config.set', [`methods.commands.${name}`, `echo ran-${name}`])).code, 'ok', `config.set methods.commands.${name}`)
      const got = await on('config.get', [`methods.commands.${name}`])
      assert.is(got.reply?.data, `${JSON.stringify(`echo ran-${name}`)}\n`)
      const ran = await on('cli.named', [name])
      assert.is(ran.code, 'ok', `cli.named ${name}: ${JSON.stringify(ran.reply)}`)
      assert.is(ran.reply?.data, `ran-${name}\n`)
      assert.is((await on('op.stop', [name])).code, 'method_unknown', `op.stop ${name}`)
    }
    if (withCli) {
      // The CLI on a file of its own: commands, keys and map names.
      const dir = tmpDir('outpost-names-cli-')
      try {
        fs.writeFileSync(path.join(dir, 'outpost.yaml'), 'node:\n  name: cli\n')
        for (const name of PROTO_NAMES) {
          const cmd = await cli([name], dir)
          assert.is(cmd.code, 2, `outpost ${name}: ${cmd.stderr}`)
          assert.match(cmd.stderr, `unknown command '${name}'`)
          const key = await cli(['config', 'get', name], dir)
          assert.is(key.code, 2, key.stderr)
          assert.match(key.stderr, '[config_key]')
          assert.is((await cli(['config', 'get', `hub.tokens.${name}`, '--json'], dir)).stdout, 'null\n')
          const set = await cli(['config', 'set', `hub.tokens.${name}`, `sha256:${'a'.repeat(64)}`], dir)
          assert.is(set.code, 0, set.stderr)
        }
        const shown = JSON.parse((await cli(['config', 'show', '--json'], dir)).stdout) as { hub: { tokens: Record<string, string> } }
        assert.equal(Object.keys(shown.hub.tokens).sort(), [...PROTO_NAMES].sort(), 'every name is a key of hub.tokens')
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }
    await stillServing(t, okBefore, from)
  })

  if (rounds > 0) {
    test(`hostile - ${rounds} random mixes of Object.prototype names in one message and at the hub: coded outcomes, everything serves on`, async () => {
      const t = target()
      const okBefore = t.traffic.ok
      const from = outputs(t)
      const socket = t.c.node('central').socket
      const mallory = await peer(t.c.port, 'mallory', t.c.node('mallory').token)
      const kinds = new Map<string, number>()
      await pool(rounds, 8, async () => {
        const name = (): string => pick(rnd, PROTO_NAMES)
        const k = int(rnd, 4)
        kinds.set(String(k), (kinds.get(String(k)) ?? 0) + 1)
        if (k === 0) {
          const frames = await refusal(t.c.port, encodeFrame({ t: 'hello', node: name(), token: name(), version: name(), apiVersion: 1 }))
          assert.ok(frames.length === 1 && frames[0]!.t === 'error', JSON.stringify(frames))
        } else if (k === 1) {
          const id = ulid()
          const to = name()
          mallory.send({ t: 'msg', id, to, from: name(), b: mpEncode({ id, toNode: to, fromNode: name(), method: name(), replyMethod: name(), inReplyTo: name() }) })
          await mallory.next((f) => f.t === 'nack' && f.id === id)
        } else {
          const message: Record<string, unknown> = { toNode: rnd() < 0.5 ? 'ship1' : 'central', method: name(), replyMethod: name(), methodArgs: [name(), name()], directory: name(), fileName: name() }
          const o = k === 2 ? await outcome(socket, message) : await postHttp(t, message).then((h) => ({ code: h.status === 200 ? h.body.replies?.find((x) => x.error)?.error?.code : h.body.error?.code }))
          assert.ok(coded(o.code), `${JSON.stringify(message)}: ${JSON.stringify(o)}`)
        }
      })
      assert.not.ok(mallory.closed(), 'mallory is still connected')
      mallory.close()
      console.log(`  names: ${rounds} random mixes (${[...kinds].map(([k, n]) => `${['hello', 'hub frame', 'socket', 'HTTP'][Number(k)]} ${n}`).join(', ')})`)
      await stillServing(t, okBefore, from)
    })
  }
}
