/**
 * The sender's chunk buffers used again after their ACK (src/files/chunk-pool.ts), on a real
 * Sender, file and transfer record, its submit captured instead of an outbox and the ACKs given
 * as delivery's events: over tcp, a chunk sent once and acknowledged lends its buffer to a
 * later chunk (a window's worth of buffers for the whole file); a chunk sent twice does not (an
 * ACK may answer one send while the other is still queued on a socket), so the bytes of its
 * sends stay what they were; over other transports (MQTT.js's store, NATS's buffer) and to the
 * node itself, no buffer is used again.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { defaultConfig, type Config } from '../../src/config'
import type { MethodContext } from '../../src/method'
import { decode, encode, stamp, type Envelope, type MessageDraft } from '../../src/wire/envelope'
import { Sender } from '../../src/files/sender'
import { randomFile } from './helpers'

const CHUNK = 65536
const CHUNKS = 8

interface Push { dir: string; file: Buffer; sender: Sender; sent: Envelope[]; close: () => Promise<void> }

async function push(o: { tcp: boolean; to?: string; restart?: boolean }): Promise<Push> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-chunkpool-'))
  const src = path.join(dir, 'fw.bin')
  randomFile(src, CHUNKS * CHUNK)
  const config: Config = defaultConfig()
  config.files.chunkBytes = CHUNK
  config.files.window = 2
  const sent: Envelope[] = []
  const sender = new Sender({
    self: 'central', dataDir: dir, config, log: () => {}, now: Date.now, notify: () => {}, reuseChunkBuffers: o.tcp,
    submit: (drafts: MessageDraft[]) => {
      const envs = drafts.flatMap((d) => stamp(d, { fromNode: 'central' }))
      sent.push(...envs)
      return Promise.resolve(envs)
    },
  })
  const to = o.to ?? 'ship1'
  const rec = await sender.start({ id: 'T1', src, to, dest: '/x/fw.bin', name: 'fw.bin' })
  const put = sent.find((e) => e.method === 'file.put')!
  const env = { id: 'R1', toNode: 'central', fromNode: to, method: 'file.reply', inReplyTo: put.id, data: JSON.stringify({ id: rec.id, have: '', upTo: true }), createdAt: Date.now() } as Envelope
  await sender.reply({ env, args: [] } as unknown as MethodContext)
  return { dir, file: fs.readFileSync(src), sender, sent, close: async () => { await sender.close(); fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 }) } }
}

/** The chunk messages queued so far, once the window is full again (the sender reads and stores asynchronously). */
async function queued(p: Push, n: number): Promise<Envelope[]> {
  for (let k = 0; k < 200 && p.sent.filter((e) => e.method === 'file.chunk').length < n; k++) await new Promise((r) => setTimeout(r, 5))
  const chunks = p.sent.filter((e) => e.method === 'file.chunk')
  assert.is(chunks.length, n, `${n} chunks queued`)
  return chunks
}

/** Send chunk message `e` as delivery would (expand), `times` times; the bytes handed out each time. */
function send(p: Push, e: Envelope, times = 1): Uint8Array[] {
  return Array.from({ length: times }, () => p.sender.expand(encode(e))!)
}

const ack = (p: Push, e: Envelope): void => p.sender.onEvent({ type: 'delivered', id: e.id } as never)

/** Send every chunk once, ACK it, until all are out; the distinct buffers the chunks went out in. */
async function sendAll(p: Push, times: (i: number) => number = () => 1): Promise<{ buffers: Set<ArrayBuffer>; outs: Map<number, Uint8Array[]> }> {
  const buffers = new Set<ArrayBuffer>()
  const outs = new Map<number, Uint8Array[]>()
  for (let i = 0; i < CHUNKS; i++) {
    const e = (await queued(p, Math.min(CHUNKS, i + 2)))[i]!
    const o = send(p, e, times(i))
    for (const b of o) {
      buffers.add(b.buffer as ArrayBuffer)
      // Each send as it goes out: chunk i, whole.
      const env = decode(b)
      assert.is(env.methodArgs![1], String(i))
      assert.ok(Buffer.from(env.data as Uint8Array).equals(p.file.subarray(i * CHUNK, (i + 1) * CHUNK)), `chunk ${i}'s bytes as they go out`)
    }
    outs.set(i, o)
    ack(p, e)
  }
  return { buffers, outs }
}

test('files chunk pool - over tcp, a chunk sent once and ACKed lends its buffer to a later chunk; every chunk goes out whole', async () => {
  const p = await push({ tcp: true })
  try {
    const { buffers } = await sendAll(p)
    assert.ok(buffers.size <= 3, `the file went out in ${buffers.size} buffers (a window of 2, and one read ahead)`)
  } finally { await p.close() }
})

test('files chunk pool - a chunk sent twice keeps its buffer: the bytes of both sends stay what they were after its ACK', async () => {
  const p = await push({ tcp: true })
  try {
    // Every chunk sent twice (a timeout, a reconnect); the first send's bytes kept as a socket would queue them.
    const { buffers, outs } = await sendAll(p, () => 2)
    assert.is(buffers.size, CHUNKS, 'no buffer used again')
    for (const [i, sends] of outs) {
      for (const o of sends) {
        const env = decode(o)
        assert.is(env.methodArgs![1], String(i), `chunk ${i}, after the later chunks were read`)
        assert.ok(Buffer.from(env.data as Uint8Array).equals(p.file.subarray(i * CHUNK, (i + 1) * CHUNK)), `chunk ${i}'s bytes unchanged`)
      }
    }
  } finally { await p.close() }
})

test('files chunk pool - not over MQTT or NATS, nor to the node itself, nor a chunk read again for a message stored before a restart', async () => {
  for (const o of [{ tcp: false }, { tcp: true, to: 'central' }, { tcp: true, restart: true }]) {
    const p = await push(o)
    try {
      // After a restart the chunks read before it are gone: each is read again as it is sent
      // (a previous run may have sent it too, and its ACK may answer that send).
      const fresh = (p.sender as unknown as { fresh: Map<string, Buffer> }).fresh
      if (o.restart === true) p.sender.expand = ((orig) => (body: Uint8Array) => { fresh.clear(); return orig(body) })(p.sender.expand.bind(p.sender))
      const { buffers, outs } = await sendAll(p)
      assert.is(buffers.size, CHUNKS, JSON.stringify(o))
      // No buffer was read into again: what each send handed out is still its chunk.
      for (const [i, [out]] of outs) {
        const env = decode(out!)
        assert.is(env.methodArgs![1], String(i), JSON.stringify(o))
        assert.ok(Buffer.from(env.data as Uint8Array).equals(p.file.subarray(i * CHUNK, (i + 1) * CHUNK)), `${JSON.stringify(o)}: chunk ${i}'s bytes unchanged`)
      }
      assert.is(p.sender.pool.sizes.free, 0, 'nothing free for reuse')
    } finally { await p.close() }
  }
})

test.run()
