/**
 * The reliability harness: commands and events from central to ship1 over one transport while
 * a fault repeats (SIGKILL of the receiver, of the hub or broker, or of the sender), then a
 * check that every accepted command ended in exactly one outcome at its sender and ran at most
 * once, and what docs/operations.md promises for events.
 *
 *   test ─ socket API ─▶ central ══ hub / broker ══▶ ship1
 *   command: http.get http://127.0.0.1:PORT/<id> ─▶ the test's HTTP server counts runs per id
 *            reply ─▶ central's default reply.file.append ─▶ central/replies/ship1/<id>.log
 *   event:   reply.file.append (ackTimeout 0) ─▶ ship1/events/central/e.log, one id per line
 *
 * Counts come from the environment so a longer local run is one variable away:
 * CHAOS_COMMANDS, CHAOS_EVENTS, CHAOS_FAULTS, CHAOS_SEED.
 */
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import * as assert from 'uvu/assert'
import { ulid } from '../../src/wire/ulid'
import { Cluster, status, type Kind } from '../fixtures/cluster'

export type Fault = 'receiver' | 'server' | 'sender'

const num = (name: string, dflt: number): number => {
  const v = process.env[name]
  return v === undefined || v === '' ? dflt : Number(v)
}

export const COUNTS = {
  commands: num('CHAOS_COMMANDS', 5000),
  events: num('CHAOS_EVENTS', 5000),
  faults: num('CHAOS_FAULTS', 5),
  /** Events sent once the faults are over: all of these must arrive exactly once. */
  calmEvents: num('CHAOS_CALM_EVENTS', 200),
}

/** A small seeded PRNG (mulberry32), so a failing run can be replayed with CHAOS_SEED. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Submit through the socket without waiting for replies. Resolves with the accepted ids, or
 * with undefined when the connection died before "accepted" came (the node was killed): then
 * nobody knows whether the batch was accepted.
 */
export function submit(socket: string, messages: unknown[]): Promise<string[] | undefined> {
  // [] means refused before connecting (nothing accepted).
  return new Promise((resolve, reject) => {
    const sock = net.connect(socket)
    let buf = ''
    let done = false
    let connected = false
    const finish = (v: string[] | undefined): void => { if (!done) { done = true; sock.destroy(); resolve(v) } }
    sock.setEncoding('utf8')
    // allowUnknown: these tests are about delivery, not names. ship1 may not have connected yet
    // (disk-full keeps it away), and a central killed within a second of first hearing of it (a
    // sender fault) restarts with no saved node list.
    sock.on('connect', () => { connected = true; sock.write(JSON.stringify({ op: 'send', messages, wait: false, allowUnknown: true }) + '\n') })
    sock.on('data', (d: string) => {
      buf += d
      // A notice (this node is not connected yet) may come before the accepted line.
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const obj = JSON.parse(buf.slice(0, nl)) as { accepted?: { id: string }[]; error?: { code: string; message: string } }
        buf = buf.slice(nl + 1)
        if (obj.error) { done = true; sock.destroy(); reject(new Error(`submit refused: ${JSON.stringify(obj.error)}`)); return }
        if (obj.accepted) { finish(obj.accepted.map((a) => a.id)); return }
      }
    })
    // Refused before connecting (the node is down): certainly not accepted.
    sock.on('error', () => finish(connected ? undefined : []))
    sock.on('close', () => finish(connected ? undefined : []))
  })
}

/** An HTTP server counting GETs per path: the side effect that shows how often a command ran. */
async function runCounter(): Promise<{ port: number; hits: Map<string, number>; close(): Promise<void> }> {
  const hits = new Map<string, number>()
  const server = http.createServer((req, res) => {
    const id = (req.url ?? '/').slice(1)
    hits.set(id, (hits.get(id) ?? 0) + 1)
    res.end(id)
  })
  server.keepAliveTimeout = 1000
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  return { port, hits, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()) }) }
}

type Outcome = { type: 'reply'; body: string } | { type: 'error'; code: string; text: string } | { type: 'bad'; text: string }

/** What central's reply file for `id` says, or undefined while there is none. */
function outcomeOf(file: string): Outcome | undefined {
  let text: string
  try { text = fs.readFileSync(file, 'utf8') } catch { return undefined }
  if (text === '') return undefined
  const err = /^\[error ([a-z_]+)\] [^\n]*\n$/.exec(text)
  if (err) return { type: 'error', code: err[1]!, text }
  try {
    const r = JSON.parse(text) as { status?: number; body?: string }
    if (r.status === 200 && typeof r.body === 'string') return { type: 'reply', body: r.body }
  } catch { /* two replies appended, or a torn one */ }
  return { type: 'bad', text }
}

export interface ChaosResult {
  kind: Kind; fault: Fault; seconds: number
  commands: { accepted: number; unknown: number; replied: number; interrupted: number; ranBeforeInterrupt: number }
  events: { accepted: number; delivered: number; duplicated: number; calm: number }
  faults: number
}

/** One scenario: a fresh cluster, the load, `COUNTS.faults` faults, then the checks. */
export async function chaos(kind: Kind, fault: Fault, seed = num('CHAOS_SEED', Date.now() % 1e9)): Promise<ChaosResult> {
  const started = Date.now()
  const rnd = prng(seed)
  const counter = await runCounter()
  // Many retries and a long ttl: under these faults nothing may run out of attempts.
  const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 3, retries: 100, ttl: 900 }, log: { level: 'info' } }, kind)
  const central = c.node('central')
  const ship1 = c.node('ship1')
  const label = `${kind}/${fault} (seed ${seed})`
  try {
    let server = await c.startServer()
    await c.start('central')
    await c.start('ship1')

    const accepted = { commands: new Set<string>(), events: new Set<string>() }
    const unknown = { commands: new Set<string>(), events: new Set<string>() }
    const command = (id: string): unknown => ({ id, toNode: 'ship1', method: 'http.get', methodArgs: [`http://127.0.0.1:${counter.port}/${id}`], methodTimeout: 20 })
    const event = (id: string): unknown => ({ id, toNode: 'ship1', method: 'reply.file.append', ackTimeout: 0, directory: 'events', fileName: 'e.log', data: `${id}\n` })

    /** Submit `n` messages of one kind in batches; retries batches the sender was not there for. */
    const produce = async (n: number, what: 'commands' | 'events', batch: number): Promise<void> => {
      let sent = 0
      while (sent < n) {
        const ids = Array.from({ length: Math.min(batch, n - sent) }, () => ulid())
        const got = await submit(central.socket, ids.map(what === 'commands' ? command : event))
        if (got === undefined || got.length === 0) {
          if (got === undefined) for (const id of ids) unknown[what].add(id)
          await sleep(100)
          continue
        }
        assert.equal(got, ids, 'the node keeps the ids it was given')
        for (const id of ids) accepted[what].add(id)
        sent += ids.length
        await sleep(Math.floor(rnd() * 40))
      }
    }

    let producing = true
    const production = Promise.all([produce(COUNTS.commands, 'commands', 50), produce(COUNTS.events, 'events', 50)])
      .finally(() => { producing = false })

    const repliesDir = path.join(central.dataDir, 'replies', 'ship1')
    const outcomes = (): Map<string, Outcome> => {
      const m = new Map<string, Outcome>()
      for (const id of [...accepted.commands, ...unknown.commands]) {
        const o = outcomeOf(path.join(repliesDir, `${id}.log`))
        if (o) m.set(id, o)
      }
      return m
    }

    // The faults: each at a random moment while messages are being produced or are in flight.
    let faults = 0
    for (; faults < COUNTS.faults; faults++) {
      await sleep(300 + Math.floor(rnd() * 1500))
      if (!producing && outcomes().size >= accepted.commands.size) break
      if (fault === 'receiver') {
        await ship1.proc!.stop('SIGKILL')
        await sleep(Math.floor(rnd() * 1000))
        await c.start('ship1')
      } else if (fault === 'sender') {
        await central.proc!.stop('SIGKILL')
        await sleep(Math.floor(rnd() * 1000))
        await c.start('central')
      } else {
        await server.stop('SIGKILL')
        await sleep(200 + Math.floor(rnd() * 1000))
        server = await c.startServer()
      }
    }
    await production

    // Settle: every accepted command has an outcome and both outboxes are empty.
    const settleMs = 240_000
    const end = Date.now() + settleMs
    let got = outcomes()
    for (;;) {
      const missing = [...accepted.commands].filter((id) => !got.has(id))
      const [sc, ss] = await Promise.all([status(central.socket), status(ship1.socket)])
      if (missing.length === 0 && sc.outbox.count === 0 && ss.outbox.count === 0) break
      if (Date.now() > end) {
        throw new Error(`${label}: after ${settleMs / 1000} s, ${missing.length} accepted commands have no outcome (e.g. ${missing.slice(0, 3).join(' ')}); outboxes central ${sc.outbox.count}, ship1 ${ss.outbox.count}`)
      }
      await sleep(500)
      got = outcomes()
    }
    // Late duplicates would show up here: give them a moment to arrive.
    await sleep(1000)
    got = outcomes()

    // Commands: exactly one outcome each, the reply or `interrupted`, and at most one run.
    let replied = 0
    let interrupted = 0
    let ranBeforeInterrupt = 0
    for (const id of accepted.commands) {
      const o = got.get(id)!
      const runs = counter.hits.get(id) ?? 0
      if (o.type === 'bad') {
        assert.unreachable(`${label}: ${id} has not exactly one outcome: ${JSON.stringify(o.text.slice(0, 400))}`)
      } else if (o.type === 'error') {
        assert.is(o.code, 'interrupted', `${label}: ${id} failed: ${o.text}`)
        assert.ok(runs <= 1, `${label}: interrupted ${id} ran ${runs} times`)
        interrupted++
        ranBeforeInterrupt += runs
      } else {
        assert.is(o.body, id, `${label}: ${id} got the reply of another command`)
        assert.is(runs, 1, `${label}: ${id} replied and ran ${runs} times`)
        replied++
      }
    }
    // Commands whose batch the killed sender may or may not have accepted: at most one of everything.
    for (const id of unknown.commands) {
      const o = got.get(id)
      const runs = counter.hits.get(id) ?? 0
      assert.ok(runs <= 1, `${label}: ${id} ran ${runs} times`)
      if (o?.type === 'bad') assert.unreachable(`${label}: ${id} has two outcomes: ${o.text.slice(0, 400)}`)
      if (runs === 1 && o === undefined) assert.unreachable(`${label}: ${id} ran but has no outcome`)
    }
    for (const id of counter.hits.keys()) assert.ok(accepted.commands.has(id) || unknown.commands.has(id), `${label}: ${id} ran but was never submitted`)

    // Events: a calm phase with every link up, where each must arrive exactly once.
    const calm = Array.from({ length: COUNTS.calmEvents }, () => ulid())
    for (let i = 0; i < calm.length; i += 50) {
      const ids = calm.slice(i, i + 50)
      assert.equal(await submit(central.socket, ids.map(event)), ids)
    }
    const eventsFile = path.join(ship1.dataDir, 'events', 'central', 'e.log')
    const eventLines = (): Map<string, number> => {
      const m = new Map<string, number>()
      const text = fs.existsSync(eventsFile) ? fs.readFileSync(eventsFile, 'utf8') : ''
      for (const l of text.split('\n').filter(Boolean)) m.set(l, (m.get(l) ?? 0) + 1)
      return m
    }
    const calmEnd = Date.now() + 60_000
    let lines = eventLines()
    while (calm.some((id) => !lines.has(id)) || (await status(central.socket)).outbox.count > 0) {
      if (Date.now() > calmEnd) throw new Error(`${label}: ${calm.filter((id) => !lines.has(id)).length} of ${calm.length} events sent with every link up did not arrive`)
      await sleep(300)
      lines = eventLines()
    }
    await sleep(500)
    lines = eventLines()
    for (const id of calm) assert.is(lines.get(id), 1, `${label}: calm event ${id} arrived ${lines.get(id)} times`)
    let delivered = 0
    let duplicated = 0
    for (const [id, n] of lines) {
      assert.ok(accepted.events.has(id) || unknown.events.has(id) || calm.includes(id), `${label}: event ${JSON.stringify(id)} was never sent`)
      if (accepted.events.has(id)) delivered++
      if (n > 1) duplicated++
    }
    // docs/operations.md: an event may arrive twice only when its sender was killed between sending
    // it and recording that it was sent (it goes again after the restart), or — over MQTT —
    // when the broker restarts and the client resends its unacknowledged QoS 1 publishes.
    if (fault === 'receiver') assert.is(duplicated, 0, `${label}: ${duplicated} events arrived twice`)
    if (fault === 'server' && kind !== 'mqtt') assert.is(duplicated, 0, `${label}: ${duplicated} events arrived twice`)

    const result: ChaosResult = {
      kind, fault, seconds: Math.round((Date.now() - started) / 100) / 10, faults,
      commands: { accepted: accepted.commands.size, unknown: unknown.commands.size, replied, interrupted, ranBeforeInterrupt },
      events: { accepted: accepted.events.size, delivered, duplicated, calm: calm.length },
    }
    console.log(`  ${JSON.stringify(result)}`)
    return result
  } finally {
    await c.destroy()
    await counter.close()
  }
}
