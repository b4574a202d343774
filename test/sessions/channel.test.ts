/**
 * The live channel between two Live registries, joined by a link that can go down (frames
 * published while it is down are lost, as on a transport without a connection): order and
 * completeness across an outage, the window bounding what a sender keeps while its reader
 * does not read, the grace ending both ends, frames from the wrong node ignored.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Live, type SessionSettings } from '../../src/sessions/live'
import type { Channel, SeqFrame } from '../../src/sessions/channel'
import { MAX_FRAME_DATA, WINDOW } from '../../src/sessions/channel'
import { decode } from '../../src/wire/envelope'

interface Link { up: boolean; sent: number; lost: number }

function pair(settings: Partial<SessionSettings> = {}): { a: Live; b: Live; link: Link; intruder: Live } {
  const s: SessionSettings = { grace: 30, idleTimeout: 0, maxDuration: 3600, record: false, ...settings }
  const link: Link = { up: true, sent: 0, lost: 0 }
  const lives = new Map<string, Live>()
  const make = (self: string): Live => new Live({
    self, settings: () => s, log: () => {},
    publish: async (to, _id, bytes) => {
      link.sent++
      if (!link.up) { link.lost++; throw new Error('not connected') }
      // Delivered a moment later, in order, as a transport would (the sender as the hub vouches).
      setImmediate(() => lives.get(to)?.receive(decode(bytes)))
    },
  })
  for (const n of ['a', 'b', 'x']) lives.set(n, make(n))
  return { a: lives.get('a')!, b: lives.get('b')!, intruder: lives.get('x')!, link }
}

function collect(ch: Channel, consume = true): { bytes: Buffer[]; frames: SeqFrame[]; ended: Promise<unknown> } {
  const out = { bytes: [] as Buffer[], frames: [] as SeqFrame[], ended: undefined as unknown as Promise<unknown> }
  out.ended = new Promise((resolve) => {
    ch.handler = {
      frame: (f) => { out.frames.push(f); if (f.data) { out.bytes.push(Buffer.from(f.data)); if (consume) ch.consumed(f.data.length) } },
      drain: () => {},
      end: (e) => resolve(e ?? 'closed'),
    }
  })
  return out
}

const until = async (what: string, fn: () => boolean, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

test('channel - bytes written during an outage arrive once the link is back, in order, none twice', async () => {
  const { a, b, link } = pair()
  const ca = a.open('sessionid-0123456789', 'b', { waitPeer: true, idle: false })
  const cb = b.open('sessionid-0123456789.r', 'a', { waitPeer: false, idle: true })
  const got = collect(ca)
  collect(cb)
  cb.write('ready')
  const expected: Buffer[] = []
  for (let i = 0; i < 50; i++) {
    if (i === 10) link.up = false
    if (i === 40) { link.up = true; b.kick() }
    const chunk = Buffer.from(`line ${i}\n`)
    expected.push(chunk)
    cb.write('data', chunk)
    await new Promise((r) => setTimeout(r, 5))
  }
  await until('all 50 lines', () => Buffer.concat(got.bytes).length === Buffer.concat(expected).length)
  assert.ok(link.lost > 0, 'frames were lost while the link was down')
  assert.is(Buffer.concat(got.bytes).toString(), Buffer.concat(expected).toString())
  ca.end()
  await until('both ends closed', () => a.size === 0 && b.size === 0)
})

test('channel - a reader that does not consume holds the writer to the window; consuming lets the rest through', async () => {
  const { a, b } = pair()
  const ca = a.open('sessionid-window-00001', 'b', { waitPeer: true, idle: false })
  const cb = b.open('sessionid-window-00001.r', 'a', { waitPeer: false, idle: true })
  const got = collect(ca, false)
  collect(cb)
  cb.write('ready')
  const chunk = Buffer.alloc(16 * 1024, 7)
  let accepted = 0
  let refusedAt = -1
  for (let i = 0; i < 400; i++) {
    if (!cb.write('data', chunk)) { refusedAt = i; break }
    accepted += chunk.length
  }
  assert.ok(refusedAt > 0, 'write() says false once the window is full')
  assert.ok(accepted <= WINDOW, `${accepted} bytes accepted within a window of ${WINDOW}`)
  await until('the window delivered', () => Buffer.concat(got.bytes).length === accepted + chunk.length)
  await new Promise((r) => setTimeout(r, 100))
  assert.not.ok(cb.room, 'no credit while nothing was consumed')
  ca.consumed(Buffer.concat(got.bytes).length)
  await until('credit back', () => cb.room)
  assert.ok(MAX_FRAME_DATA >= chunk.length)
  ca.end()
})

test('channel - past the grace without a frame both ends end with session_lost; a frame from another node is ignored', async () => {
  const { a, b, link, intruder } = pair({ grace: 1 })
  const ca = a.open('sessionid-grace-000001', 'b', { waitPeer: true, idle: false })
  const cb = b.open('sessionid-grace-000001.r', 'a', { waitPeer: false, idle: true })
  const ga = collect(ca)
  const gb = collect(cb)
  cb.write('ready')
  await until('a heard b', () => ga.frames.length === 1)
  // Node x knows the session id but is not its peer: its data never reaches a's reader.
  const xs = intruder.open('sessionid-grace-000001.r', 'a', { waitPeer: false, idle: false })
  xs.write('data', Buffer.from('forged'))
  await new Promise((r) => setTimeout(r, 50))
  assert.is(ga.bytes.length, 0)
  xs.end()
  link.up = false
  // Live's timer does not hold the process open (a node has its own handles); this test does.
  const hold = setInterval(() => {}, 1000)
  const [ea, eb] = await Promise.all([ga.ended, gb.ended]).finally(() => clearInterval(hold)) as [{ code: string }, { code: string }]
  assert.is(ea.code, 'session_lost')
  assert.is(eb.code, 'session_lost')
  assert.is(a.size + b.size, 0)
})

test.run()
