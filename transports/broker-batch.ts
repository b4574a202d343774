/**
 * Batched payloads on the brokers (MQTT, NATS; api version 2, see docs/transports.md): the
 * envelopes one node publishes to one receiver in the same tick go out in as few broker
 * messages as fit in BATCH_BYTES, to a receiver known to take them.
 *
 *   payload   an envelope (a MessagePack map), a part (chunks.ts, [0, id, i, n, bytes]) or a
 *             batch: the MessagePack array [1, [bytes, bytes, …]], first byte 0x92
 *   publish   the first message of a tick to a receiver goes at once (a lone command is not
 *             delayed); the rest of the tick's to that receiver at its end, packed here
 *   versions  what each peer announced (PeerVersions): batches go only to api version 2 or later
 *
 *   [e1 e2 e3 BIG e4] ─▶ batch(e1 e2 e3) ─ BIG (alone, as parts if it must) ─ e4 (alone)
 */
import { OutpostError } from '../src/errors'
import { binHeader, putBin } from '../src/wire/msgpack-write'

/** The api version from which a node takes batched payloads and ACKs naming many ids. */
export const BROKER_BATCH_API = 2
/** A batch's payload stays under this (the largest broker message is far larger; this keeps latency and memory per publish small). */
export const BATCH_BYTES = 64 * 1024
const BATCH_MARK = 0x92

export interface Queued { id: string; bytes: Uint8Array }

/** A publish: one envelope as it is, or several as one batch payload; `at`: the index of its first in the items packed. */
export interface Payload { ids: string[]; bytes: Uint8Array; at: number }

const arrHead = (n: number): number => (n < 16 ? 1 : n < 0x10000 ? 3 : 5)

/** `items` (in order) as the payloads that carry them: batches of up to `max` bytes; one envelope alone as itself. */
export function packPayloads(items: readonly Queued[], max = BATCH_BYTES): Payload[] {
  const out: Payload[] = []
  let run: Queued[] = []
  let size = 0
  let at = 0
  const flush = (): void => {
    if (run.length === 1) out.push({ ids: [run[0]!.id], bytes: run[0]!.bytes, at })
    else if (run.length > 1) out.push({ ids: run.map((q) => q.id), bytes: encodeBatch(run.map((q) => q.bytes)), at })
    at += run.length
    run = []
    size = 0
  }
  for (const q of items) {
    const n = binHeader(q.bytes.length) + q.bytes.length
    if (size + n + 8 > max) flush()
    run.push(q)
    size += n
  }
  flush()
  return out
}

/** [1, [b…]] in MessagePack. */
export function encodeBatch(bs: readonly Uint8Array[]): Uint8Array {
  let size = 2 + arrHead(bs.length)
  for (const b of bs) size += binHeader(b.length) + b.length
  const out = Buffer.allocUnsafe(size)
  out[0] = BATCH_MARK
  out[1] = 0x01
  let at = 2
  const n = bs.length
  if (n < 16) out[at++] = 0x90 | n
  else if (n < 0x10000) { out[at++] = 0xdc; out.writeUInt16BE(n, at); at += 2 }
  else { out[at++] = 0xdd; out.writeUInt32BE(n, at); at += 4 }
  for (const b of bs) at = putBin(out, at, b)
  return out
}

/** True when `bytes` is a batch payload ([1, …]; [2, …] is a compressed one, broker-payload.ts). */
export function isBatch(bytes: Uint8Array): boolean {
  return bytes[0] === BATCH_MARK && bytes[1] === 0x01
}

/** The envelopes of a batch payload (views into `bytes`); throws frame_invalid on anything else. */
export function decodeBatch(bytes: Uint8Array): Uint8Array[] {
  const bad = (why: string): never => { throw new OutpostError('frame_invalid', `a batched payload ${why}`) }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view[0] !== BATCH_MARK || view[1] !== 0x01) bad('is not [1, [bytes…]]')
  let at = 2
  const need = (k: number): void => { if (at + k > view.length) bad('is cut short') }
  need(1)
  const h = view[at++]!
  let n: number
  if ((h & 0xf0) === 0x90) n = h & 0x0f
  else if (h === 0xdc) { need(2); n = view.readUInt16BE(at); at += 2 }
  else if (h === 0xdd) { need(4); n = view.readUInt32BE(at); at += 4 }
  else return bad('has no array of envelopes')
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    need(1)
    const t = view[at++]!
    let len: number
    if (t === 0xc4) { need(1); len = view[at]!; at += 1 }
    else if (t === 0xc5) { need(2); len = view.readUInt16BE(at); at += 2 }
    else if (t === 0xc6) { need(4); len = view.readUInt32BE(at); at += 4 }
    else return bad('holds something other than bytes')
    need(len)
    out.push(bytes.subarray(at, at + len))
    at += len
  }
  if (at !== view.length) bad('has bytes after its envelopes')
  return out
}

/** The api version each peer announced on the broker (presence, or its answer to a probe). */
export class PeerVersions {
  private readonly known = new Map<string, number>()

  set(node: string, version: number): void {
    this.known.set(node, version)
  }

  get(node: string): number | undefined {
    return this.known.get(node)
  }

  /** A batched payload (or an ACK naming many ids) may go to `node`. */
  takesBatches(node: string): boolean {
    return (this.known.get(node) ?? 1) >= BROKER_BATCH_API
  }

  /** A compressed payload may go to `node` (it announced api version 4 or later: DEFLATE_API, broker-payload.ts). */
  takesDeflate(node: string): boolean {
    return (this.known.get(node) ?? 1) >= 4
  }

  /** What we knew of `node` is in doubt: act as for version 1 until it says again. */
  doubt(node: string): void {
    this.known.delete(node)
  }

  /** Our link dropped: a peer may have been replaced meanwhile (an older version rolled back to); ask again. */
  forget(): void {
    this.known.clear()
  }
}

/**
 * The tick's messages to batching receivers: `add` holds a message and resolves when the end
 * of the tick sent it; `first` says whether a message to `to` is the first of its tick (it
 * goes at once, and the tick's flush is set up).
 */
export class TickQueue<T extends Queued> {
  private readonly opened = new Set<string>()
  /** Per receiver, its messages and the one promise they all settle with (they go out together). */
  private queued = new Map<string, { items: T[]; done: Promise<void>; ok: () => void; fail: (err: Error) => void }>()
  private readonly send: (to: string, items: T[]) => Promise<void>

  /** `send`: what the end of the tick does with each receiver's messages, in order. */
  constructor(send: (to: string, items: T[]) => Promise<void>) {
    this.send = send
  }

  /** True for the first message to `to` in this tick (send it now); later ones are add()ed. */
  first(to: string): boolean {
    if (this.opened.has(to)) return false
    if (this.opened.size === 0) process.nextTick(() => this.flush())
    this.opened.add(to)
    return true
  }

  /**
   * Hold `item` for the end of the tick. The messages to one receiver in one tick share one
   * promise (they are sent, or fail, together): no promise or closure is made per message.
   */
  add(to: string, item: T): Promise<void> {
    const list = this.queued.get(to)
    if (list !== undefined) {
      list.items.push(item)
      return list.done
    }
    let ok!: () => void
    let fail!: (err: Error) => void
    const done = new Promise<void>((resolve, reject) => { ok = resolve; fail = reject })
    this.queued.set(to, { items: [item], done, ok, fail })
    return done
  }

  /**
   * Send what the tick holds now, not at its end (publishAll: what publish queued earlier in the
   * tick goes before what comes after it, per receiver). Safe to call more than once.
   */
  flush(): void {
    if (this.opened.size === 0 && this.queued.size === 0) return
    this.opened.clear()
    const queued = this.queued
    this.queued = new Map()
    for (const [to, { items, ok, fail }] of queued) this.send(to, items).then(ok, fail)
  }
}

/** The messages of a publishAll to one receiver, in order; `at`: each one's index in the call (undefined: the call's own, all to this receiver). */
export interface Group<T> { to: string; items: readonly T[]; at: readonly number[] | undefined }

/** `msgs` per receiver, in order of first appearance; one receiver (the usual pump) costs no copy. */
export function perReceiver<T extends { to: string }>(msgs: readonly T[]): Group<T>[] {
  const to = msgs[0]?.to
  let one = true
  for (const m of msgs) if (m.to !== to) { one = false; break }
  if (one) return to === undefined ? [] : [{ to, items: msgs, at: undefined }]
  const by = new Map<string, { to: string; items: T[]; at: number[] }>()
  msgs.forEach((m, i) => {
    const g = by.get(m.to)
    if (g === undefined) by.set(m.to, { to: m.to, items: [m], at: [i] })
    else { g.items.push(m); g.at.push(i) }
  })
  return [...by.values()]
}

/** What publishAll resolves to: undefined while every message was taken, else one entry per message (its error, or undefined). */
export class Outcomes {
  failed: (Error | undefined)[] | undefined
  private readonly n: number

  constructor(n: number) {
    this.n = n
  }

  /** `count` messages of `g` from its `from`-th were not taken: `err`. */
  fail(g: Group<unknown>, from: number, count: number, err: Error): void {
    const failed = (this.failed ??= new Array<Error | undefined>(this.n).fill(undefined))
    for (let k = from; k < from + count; k++) failed[g.at === undefined ? k : g.at[k]!] = err
  }

  /** The messages of `msgs` that were taken (all of them, the same array, when none failed). */
  taken<T>(msgs: readonly T[]): readonly T[] {
    const failed = this.failed
    return failed === undefined ? msgs : msgs.filter((_, i) => failed[i] === undefined)
  }
}
