/**
 * Chunks stored as references to their source (src/files/chunk-ref.ts), on a real file and a
 * real transfer record, with the sender's submit captured instead of an outbox: the outbox gets
 * no data; what is sent is the chunk with its data and without the reference, on the first send
 * and when it is sent again (read back and checked); a source changed in between fails the
 * transfer with file_source_changed and the chunk is withdrawn. A signing node keeps the data.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { defaultConfig } from '../../src/config'
import type { Config } from '../../src/config'
import type { MethodContext } from '../../src/method'
import { decode, encode, stamp, type Envelope, type MessageDraft } from '../../src/wire/envelope'
import { CHUNK_REF } from '../../src/files/chunk-ref'
import { Sender } from '../../src/files/sender'
import { randomFile } from './helpers'

const CHUNK = 65536

async function setup(signing = false, upTo = false): Promise<{ dir: string; src: string; sender: Sender; sent: Envelope[]; failed: { code: string }[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-chunkref-'))
  const src = path.join(dir, 'fw.bin')
  randomFile(src, 3 * CHUNK + 100)
  const config: Config = defaultConfig()
  config.files.chunkBytes = CHUNK
  config.files.window = 2
  if (signing) config.api.signingKey = '/nonexistent/key'
  else assert.is(config.api.signingKey, null)
  const sent: Envelope[] = []
  const failed: { code: string }[] = []
  const sender = new Sender({
    self: 'central', dataDir: dir, config, log: () => {}, now: Date.now, notify: (t) => { if (t.error) failed.push(t.error) },
    submit: (drafts: MessageDraft[]) => {
      const envs = drafts.flatMap((d) => stamp(d, { fromNode: 'central' }))
      sent.push(...envs)
      return Promise.resolve(envs)
    },
  })
  const rec = await sender.start({ id: 'T1', src, to: 'ship1', dest: '/x/fw.bin', name: 'fw.bin' })
  // ship1 answers the file.put: it holds nothing yet.
  const put = sent.find((e) => e.method === 'file.put')!
  const env = { id: 'R1', toNode: 'central', fromNode: 'ship1', method: 'file.reply', inReplyTo: put.id, data: JSON.stringify({ id: rec.id, have: '', ...(upTo ? { upTo: true } : {}) }), createdAt: Date.now() } as Envelope
  await sender.reply({ env, args: [] } as unknown as MethodContext)
  for (let i = 0; i < 50 && sent.filter((e) => e.method === 'file.chunk').length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  return { dir, src, sender, sent, failed }
}

const chunkNo = (sent: Envelope[], i: string): Envelope => sent.find((e) => e.method === 'file.chunk' && e.methodArgs![1] === i)!
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

test('files chunk-ref - the outbox gets no data; what goes out is the chunk with its data, on the first send and read back on a resend', async () => {
  const { dir, src, sender, sent } = await setup()
  try {
    const chunks = sent.filter((e) => e.method === 'file.chunk')
    assert.is(chunks.length, 2, 'the window: two chunks queued')
    const stored = chunkNo(sent, '0')
    assert.is(stored.data, undefined)
    assert.is(stored.methodArgs![3], CHUNK_REF)
    const file = fs.readFileSync(src)
    for (const i of [0, 1]) {
      const stored = chunkNo(sent, String(i))
      const want = file.subarray(i * CHUNK, (i + 1) * CHUNK)
      // Read in order: the sha256 of the file up to the chunk's end goes with it (upTo).
      const args = ['T1', String(i), sha(want), sha(file.subarray(0, (i + 1) * CHUNK))]
      for (const round of ['first send', 'resend']) {
        const out = sender.expand(encode(stored))
        assert.ok(out !== null, round)
        const env = decode(out!)
        assert.equal(env.methodArgs, args, round)
        assert.ok(Buffer.from(env.data as Uint8Array).equals(want), round)
        assert.is(env.id, stored.id)
        // Byte for byte what the envelope with its data encodes to (the head written before the data).
        const { data: _none, ...rest } = stored
        assert.ok(Buffer.from(out!).equals(Buffer.from(encode({ ...rest, methodArgs: args, data: want }))), round)
      }
    }
    // Anything else goes as it is.
    const other = encode(sent.find((e) => e.method === 'file.put')!)
    assert.is(sender.expand(other), other)
  } finally {
    await sender.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('files chunk-ref - a source changed before a chunk is sent again fails the transfer (file_source_changed) and withdraws the chunk', async () => {
  const { dir, src, sender, sent, failed } = await setup()
  try {
    const stored = chunkNo(sent, '1')
    assert.ok(sender.expand(encode(stored)) !== null, 'the first send, from the bytes read when it was queued')
    const fd = fs.openSync(src, 'r+')
    fs.writeSync(fd, Buffer.from('changed'), 0, 7, CHUNK + 10)
    fs.closeSync(fd)
    assert.is(sender.expand(encode(stored)), null)
    const aborted = (): boolean => sent.some((e) => e.method === 'file.commit' && e.methodArgs![1] === 'abort')
    for (let i = 0; i < 100 && !aborted(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    assert.is(sender.get('T1')!.state, 'failed')
    assert.is(sender.get('T1')!.error!.code, 'file_source_changed')
    assert.ok(failed.some((e) => e.code === 'file_source_changed'))
    // The receiver is told to delete its partial file.
    assert.ok(aborted())
    // A chunk of a transfer that has ended is withdrawn too.
    assert.is(sender.expand(encode(chunkNo(sent, '0'))), null)
  } finally {
    await sender.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('files chunk-ref - a node that signs what it sends keeps the data in the outbox', async () => {
  const { dir, sender, sent } = await setup(true)
  try {
    const stored = sent.filter((e) => e.method === 'file.chunk')[0]!
    assert.is(stored.methodArgs!.length, 4, 'id, index, sha256, upTo')
    assert.is((stored.data as Uint8Array).length, CHUNK)
    assert.is(stored.methodArgs![3], sha(stored.data as Uint8Array), 'chunk 0: the file up to its end is the chunk')
    const body = encode(stored)
    assert.is(sender.expand(body), body)
  } finally {
    await sender.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('files chunk-ref - to a receiver that checks by upTo alone, a chunk goes without its own sha256, its bytes kept until its ACK; read again after that, with the sha256 it has then', async () => {
  const { dir, src, sender, sent } = await setup(false, true)
  try {
    const file = fs.readFileSync(src)
    const stored = chunkNo(sent, '1')
    const want = file.subarray(CHUNK, 2 * CHUNK)
    const upTo = sha(file.subarray(0, 2 * CHUNK))
    assert.equal(stored.methodArgs, ['T1', '1', '', CHUNK_REF, upTo])
    for (const round of ['first send', 'resend']) {
      const env = decode(sender.expand(encode(stored))!)
      assert.equal(env.methodArgs, ['T1', '1', '', upTo], round)
      assert.ok(Buffer.from(env.data as Uint8Array).equals(want), round)
    }
    // Acknowledged: the bytes are let go; a later send (after a restart) reads them again.
    sender.onEvent({ type: 'delivered', id: stored.id } as Parameters<Sender['onEvent']>[0])
    const env = decode(sender.expand(encode(stored))!)
    assert.equal(env.methodArgs, ['T1', '1', sha(want), upTo])
    assert.ok(Buffer.from(env.data as Uint8Array).equals(want))
  } finally {
    await sender.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
