/**
 * Hostile input, generated: frames for the hub (random bytes, hellos with wrong tokens, bad and
 * huge lengths, truncated frames, random and deeply nested MessagePack, huge declared sizes,
 * mutated valid frames) and NDJSON requests for the local socket API (random JSON, mutated
 * sends, random bytes, long and deeply nested lines). Seeded: FUZZ_SEED replays a run.
 */
import { encode as mpEncode } from '@msgpack/msgpack'
import fs from 'node:fs'
import net from 'node:net'
import { encodeFrame, type Frame } from '../../src/wire/framing'
import { prng } from './harness'

export type Rnd = () => number

/**
 * Every name a plain object answers without holding it (`constructor`, `toString`, `__proto__`,
 * `hasOwnProperty`, …): fuzzed wherever a name from the wire indexes a table (hello nodes,
 * to/from, method and reply method names, HTTP API names, config keys).
 */
export const PROTO_NAMES: readonly string[] = [...new Set([...Object.getOwnPropertyNames(Object.prototype), '__proto__'])]

export const int = (rnd: Rnd, n: number): number => Math.floor(rnd() * n)
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[int(rnd, xs.length)]!

function bytes(rnd: Rnd, n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = int(rnd, 256)
  return b
}

/** A random JSON-ish value, nested a few levels. */
export function randomValue(rnd: Rnd, depth = 0): unknown {
  const k = int(rnd, depth > 3 ? 6 : 9)
  switch (k) {
    case 0: return null
    case 1: return rnd() < 0.5
    case 2: return int(rnd, 2 ** 31) * (rnd() < 0.5 ? -1 : 1)
    case 3: return rnd() * 1e6
    case 4: return rnd() < 0.3 ? pick(rnd, PROTO_NAMES) : pick(rnd, ['', 'ship1', 'central', 'hello', 'msg', 'part', 'x'.repeat(int(rnd, 300)), '\u0000', '💥'])
    case 5: return Buffer.from(bytes(rnd, int(rnd, 64))).toString('latin1')
    case 6: return Array.from({ length: int(rnd, 5) }, () => randomValue(rnd, depth + 1))
    default: {
      const o: Record<string, unknown> = {}
      for (let i = int(rnd, 6); i > 0; i--) {
        const key = rnd() < 0.1 ? pick(rnd, PROTO_NAMES) : pick(rnd, ['t', 'id', 'to', 'from', 'i', 'n', 'b', 'node', 'token', 'op', 'messages', 'method', 'toNode', 'data', 'wait', String(int(rnd, 100))])
        // An own key, __proto__ too (an assignment would set the prototype and send nothing).
        Object.defineProperty(o, key, { value: randomValue(rnd, depth + 1), enumerable: true, writable: true, configurable: true })
      }
      return o
    }
  }
}

/** A 2-byte length and a body (the length may lie). */
function framed(body: Uint8Array, length = body.length): Uint8Array {
  const out = new Uint8Array(2 + body.length)
  out[0] = (length >> 8) & 0xff
  out[1] = length & 0xff
  out.set(body, 2)
  return out
}

function mutate(rnd: Rnd, b: Uint8Array): Uint8Array {
  const out = Uint8Array.from(b)
  for (let i = 1 + int(rnd, 4); i > 0; i--) {
    const at = int(rnd, out.length)
    const how = int(rnd, 3)
    if (how === 0) out[at] = int(rnd, 256)
    else if (how === 1) out[at] = out[at]! ^ (1 << int(rnd, 8))
    else return out.subarray(0, at) // truncated
  }
  return out
}

const deep = (n: number, open: number): Uint8Array => { const b = new Uint8Array(n).fill(open); b[n - 1] = 0xc0; return b }

/** One hostile byte string for the hub; `kind` names the family (for the report). */
export function hubCase(rnd: Rnd, node: string): { kind: string; bytes: Uint8Array } {
  const hello: Frame = { t: 'hello', node, token: `guess-${int(rnd, 1e9)}`, version: '0.1.0', apiVersion: 1 }
  const to = rnd() < 0.2 ? pick(rnd, PROTO_NAMES) : 'ship1'
  const msg: Frame = { t: 'msg', id: '01ARYZ6S41TSV4RRFFQ69G5FAV', to, from: 'central', b: mpEncode({ method: 'reply.file.append', toNode: to, fromNode: 'central', data: 'spoof' }) }
  switch (int(rnd, 10)) {
    case 0: return { kind: 'random bytes', bytes: bytes(rnd, int(rnd, 400)) }
    case 1: return { kind: 'hello, wrong token, then a msg', bytes: Buffer.concat([encodeFrame(hello), encodeFrame(msg)]) }
    case 2: return { kind: 'bad length', bytes: framed(bytes(rnd, int(rnd, 100)), pick(rnd, [0, 8191, 0xffff, int(rnd, 0x10000)])) }
    case 3: { const f = encodeFrame(pick(rnd, [hello, msg])); return { kind: 'truncated', bytes: f.subarray(0, int(rnd, f.length)) } }
    case 4: return { kind: 'random MessagePack', bytes: framed(mpEncode(randomValue(rnd))) }
    case 5: return { kind: 'deeply nested MessagePack', bytes: framed(deep(1000 + int(rnd, 7000), pick(rnd, [0x91, 0x81]))) }
    case 6: {
      // A header declaring a huge string, binary, array or map, with little after it.
      const head = pick(rnd, [[0xdb, 0xff, 0xff, 0xff, 0xff], [0xc6, 0x7f, 0xff, 0xff, 0xff], [0xdd, 0xff, 0xff, 0xff, 0xff], [0xdf, 0x7f, 0xff, 0xff, 0xff]])
      return { kind: 'huge declared size', bytes: framed(Uint8Array.from([...head, ...bytes(rnd, int(rnd, 50))])) }
    }
    case 7: return { kind: 'mutated hello', bytes: mutate(rnd, encodeFrame(hello)) }
    case 8: return { kind: 'msg before hello', bytes: encodeFrame(msg) }
    default: return { kind: 'mutated msg after a hello', bytes: Buffer.concat([encodeFrame(hello), mutate(rnd, encodeFrame(msg))]) }
  }
}

/** One hostile request line (or several) for the socket API. */
export function socketCase(rnd: Rnd): string {
  // Sends that pass go to the node itself (node.ping, answered by node.pong), so the outbox drains.
  const base = { op: 'send', messages: [{ toNode: 'central', method: 'node.ping', replyMethod: 'node.pong', ttl: 60 }], wait: false }
  switch (int(rnd, 8)) {
    case 0: return Buffer.from(bytes(rnd, int(rnd, 200))).toString('latin1').replace(/\n/g, ' ') + '\n'
    case 1: return JSON.stringify(randomValue(rnd)) + '\n'
    case 2: {
      // A send with one field replaced by a random value.
      const m: Record<string, unknown> = { ...base.messages[0] }
      m[pick(rnd, ['toNode', 'method', 'ttl', 'data', 'id', 'methodArgs', 'toNodes', 'ackTimeout', 'fromNode', 'directory', 'fileName', '__proto__'])] = randomValue(rnd)
      return JSON.stringify({ ...base, messages: [m] }) + '\n'
    }
    case 3: { const s = JSON.stringify(base); const at = int(rnd, s.length); return s.slice(0, at) + String.fromCharCode(32 + int(rnd, 95)) + s.slice(at + 1) + '\n' }
    case 4: return '['.repeat(1000 + int(rnd, 50_000)) + '\n'
    case 5: return JSON.stringify({ op: pick(rnd, ['status', 'nodes', 'send', 'nope', '', null, 7]) }) + '\n'
    case 6: return JSON.stringify({ ...base, messages: Array.from({ length: int(rnd, 3) }, () => randomValue(rnd)) }) + '\n'
    default: return JSON.stringify({ op: 'send', messages: [{ toNode: 'central', method: 'node.ping', replyMethod: 'node.pong', data: 'x'.repeat(int(rnd, 10_000)) }], wait: false }) + '\n'
  }
}

/** Write bytes to the hub and wait until it closes the connection, or `idleMs` passes. */
export function hitHub(port: number, data: Uint8Array, idleMs = 300): Promise<{ closedByHub: boolean; got: Buffer }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    const got: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    const done = (closedByHub: boolean): void => { clearTimeout(timer); sock.destroy(); resolve({ closedByHub, got: Buffer.concat(got) }) }
    sock.on('connect', () => { sock.write(data); timer = setTimeout(() => done(false), idleMs) })
    sock.on('data', (d: Buffer) => got.push(d))
    sock.on('error', () => done(true))
    sock.on('close', () => done(true))
  })
}

/** Send lines on one socket API connection, then close; resolves with what came back. */
export function hitSocket(path: string, lines: string[], idleMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect(path)
    let got = ''
    let timer: NodeJS.Timeout | undefined
    const done = (): void => { clearTimeout(timer); sock.destroy(); resolve(got) }
    sock.setEncoding('utf8')
    sock.on('connect', () => { sock.end(lines.join('')); timer = setTimeout(done, idleMs) })
    sock.on('data', (d: string) => { got += d })
    sock.on('error', done)
    sock.on('close', done)
  })
}

/** Resident memory of a process, MB (Linux). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

/** Run `n` cases through `worker` with `concurrency` at a time. */
export async function pool(n: number, concurrency: number, worker: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await worker(next++)
  }))
}

/**
 * Whether the healthy pair completes a round trip more than the `okBefore` it had, waiting up to
 * 30 s: a quick fuzz can be over before a slow disk lets one finish, so this is asked after it.
 */
export async function carriesOn(traffic: { ok: number }, okBefore: number): Promise<boolean> {
  for (let i = 0; i < 300 && traffic.ok <= okBefore; i++) await new Promise((r) => setTimeout(r, 100))
  return traffic.ok > okBefore
}

export { prng }
