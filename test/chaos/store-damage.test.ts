/**
 * Damage to the store on disk, with real processes: a flipped byte in the middle of central's
 * journal costs that one message (which gets an error reply and an error.log line) and never the
 * good records after it; a flipped byte in its newest snapshot is caught at start, and the
 * snapshot before it plus the journal bring every message back.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, sendVia, status } from '../fixtures/cluster'
import { listSegments, segmentName } from '../../src/store/journal'
import { eventually, readOr } from '../helpers'

const FILL = 'x'.repeat(400)
const pings = (n: number, tag: string): unknown[] => Array.from({ length: n }, (_, i) => ({ toNode: 'ship1', method: 'node.ping', data: `${tag}-${i}-${FILL}` }))

/** Send one message at a time (one journal batch each); the ids in order. ship1 has not connected yet: allowUnknown. */
async function sendEach(socket: string, msgs: unknown[]): Promise<string[]> {
  const ids: string[] = []
  for (const m of msgs) ids.push((await sendVia(socket, [m], { wait: false, allowUnknown: true })).accepted[0]!.id)
  return ids
}

/** Messages waiting in a node's outbox for ship1. */
async function waitingForShip1(socket: string): Promise<number> {
  const s = await status(socket) as unknown as { outbox: { destinations: { node: string; count: number }[] } }
  return s.outbox.destinations.find((d) => d.node === 'ship1')?.count ?? 0
}

/** The reply file a request's outcome went to on central (replies/<node>/<id>.log). */
const replyOf = (dataDir: string, id: string): string => readOr(path.join(dataDir, 'replies', 'ship1', `${id}.log`))

test('a flipped byte inside record 26 of 50 in central\'s journal: 49 delivered, the 26th gets an error reply and an error.log line naming the file and offset', async () => {
  const c = await Cluster.create(['ship1'], { delivery: { ttl: 3600 }, log: { level: 'info' } }, 'tcp')
  try {
    const central = c.node('central')
    await c.startServer()
    let p = await c.start('central')
    // ship1 stays away: all 50 wait in central's journal.
    const ids = await sendEach(central.socket, pings(50, 'j'))
    await p.stop('SIGKILL')
    const outbox = path.join(central.dataDir, 'outbox')
    let hit: { file: string; at: number } | undefined
    for (const n of listSegments(outbox)) {
      const file = path.join(outbox, segmentName(n))
      const bytes = fs.readFileSync(file)
      const at = bytes.indexOf(Buffer.from(`j-25-${FILL.slice(0, 20)}`))
      if (at < 0) continue
      // An x in the 26th message's data becomes a y: the record fails its CRC, the envelope still reads.
      bytes[at + 100]! ^= 0x01
      fs.writeFileSync(file, bytes)
      hit = { file, at }
      break
    }
    assert.ok(hit, 'the 26th message is in the journal')
    p = await c.start('central')
    assert.is(await waitingForShip1(central.socket), 49, 'the 49 good ones are back (25 of them after the damage)')
    assert.match(p.output, /damaged bytes at offset \d+ of .*journal-\d+\.log.*outbox_corrupt/)
    assert.not.match(p.output, /bytes of a torn write/, p.output)
    const lost = ids[25]!
    const reply = await eventually('the error reply of the 26th', () => replyOf(central.dataDir, lost) || undefined, 10_000)
    assert.match(reply, /\[error outbox_corrupt\]/)
    const errors = await eventually('central\'s error.log line', () => readOr(path.join(central.dataDir, 'errors.log')).split('\n').find((l) => l.includes('outbox_corrupt') && l.includes(lost)), 10_000)
    assert.match(errors, /offset \d+/)
    await c.start('ship1')
    await eventually('the 49 delivered', async () => (await waitingForShip1(central.socket)) === 0 || undefined, 30_000)
    for (const [i, id] of ids.entries()) {
      if (i === 25) continue
      const r = await eventually(`the reply to ${i}`, () => replyOf(central.dataDir, id) || undefined, 10_000)
      assert.not.match(r, /\[error/, `message ${i} ran on ship1`)
    }
    // A restart does not find the same damage again.
    await p.stop('SIGTERM')
    p = await c.start('central')
    assert.not.match(p.output, /outbox_corrupt/)
  } finally {
    await c.destroy()
  }
})

test('a flipped byte in central\'s newest snapshot: caught at start, the snapshot before it and the journal bring all back, and sends work', async () => {
  const c = await Cluster.create(['ship1'], { delivery: { ttl: 3600 }, log: { level: 'info' } }, 'tcp')
  try {
    const central = c.node('central')
    await c.startServer()
    // Two clean stops: two snapshots, the journal between them kept.
    let p = await c.start('central')
    const first = (await sendVia(central.socket, pings(30, 'a'), { wait: false, allowUnknown: true })).accepted.map((a) => a.id)
    await p.stop('SIGTERM')
    p = await c.start('central')
    const second = (await sendVia(central.socket, pings(30, 'b'), { wait: false, allowUnknown: true })).accepted.map((a) => a.id)
    await p.stop('SIGTERM')
    const outbox = path.join(central.dataDir, 'outbox')
    const snaps = fs.readdirSync(outbox).filter((f) => /^snapshot-\d+\.db$/.test(f)).sort()
    assert.is(snaps.length, 2, fs.readdirSync(outbox).join(' '))
    const newest = path.join(outbox, snaps[1]!)
    const bytes = fs.readFileSync(newest)
    bytes[Math.floor(bytes.length / 2)]! ^= 0x40
    fs.writeFileSync(newest, bytes)
    p = await c.start('central')
    assert.match(p.output, /snapshot .* is damaged .*outbox_corrupt/)
    assert.is(await waitingForShip1(central.socket), 60, 'nothing lost')
    // Sends work (no "database disk image is malformed").
    const third = (await sendVia(central.socket, pings(5, 'c'), { wait: false, allowUnknown: true })).accepted.map((a) => a.id)
    assert.is(third.length, 5)
    await c.start('ship1')
    await eventually('all 65 delivered', async () => (await waitingForShip1(central.socket)) === 0 || undefined, 30_000)
    for (const id of [...first, ...second, ...third]) {
      const r = await eventually(`the reply to ${id}`, () => replyOf(central.dataDir, id) || undefined, 10_000)
      assert.not.match(r, /\[error/)
    }
    await eventually('central reports the damage in its error.log', () => readOr(path.join(central.dataDir, 'errors.log')).split('\n').find((l) => l.includes('outbox_corrupt') && l.includes('snapshot')), 10_000)
  } finally {
    await c.destroy()
  }
})

test.run()
