/**
 * The store format against real older binaries: an upgrade across a format change (body files,
 * format 2; the dedup set in runs, 3; waiting messages as records, 4) must not leave a data
 * directory the binary it may roll back to cannot read. The older outposts are built from this
 * repository's history (the last commit of each format).
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Outbox } from '../../src/store/outbox'
import { snapshotRows } from '../fixtures/snapshot-rows'
import { readPending, writePending } from '../../src/upgrade/watchdog'
import { VERSION } from '../../src/version'
import { Cluster, status, sendVia } from '../fixtures/cluster'
import { oldBuild } from '../fixtures/old-build'

/** The last commit whose outbox keeps bodies inside sql.js (store format 1). */
const FORMAT_1_COMMIT = '45265d625e7c95489a13e7555201bd74ec6e164d'

/** The last commit whose dedup set is a sql.js row per id (store format 2). */
const FORMAT_2_COMMIT = '3503960904f34307fbe605df299eac28debbc22b'

/** The last commit whose waiting messages are sql.js rows (store format 3). */
const FORMAT_3_COMMIT = '8514664b8a869241cda1d3b3c11360d7a39f875e'

/** bin/outpost.cjs of the format-1 outpost. */
const formatOneBinary = (): string => oldBuild(FORMAT_1_COMMIT)

/** ship1 has not connected when these are sent (no hub yet): central has not heard of it, hence allowUnknown. */
const pings = (n: number, tag: string): unknown[] => Array.from({ length: n }, (_, i) => ({ toNode: 'ship1', method: 'node.ping', data: `${tag}-${i}-${'x'.repeat(i % 97)}` }))

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** An upgrade to `to` waiting for its confirmation. */
const pending = (dataDir: string, to: string): void => writePending(dataDir, { from: '0.0.9', to, binary: '/nonexistent/outpost', previous: '/nonexistent/outpost.previous', installedAt: Date.now(), rollbackAfter: 60 })
const bodyFiles = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.startsWith('bodies-'))

const digest = (dir: string): Record<string, string> => Object.fromEntries(fs.readdirSync(dir).filter((f) => /^(snapshot-|bodies-)/.test(f)).sort()
  .map((f) => [f, crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex')]))

test('during an upgrade\'s probation the store stays readable by the previous outpost: a rollback delivers every queued message', async () => {
  const c = await Cluster.create(['ship1'], { log: { level: 'info' }, delivery: { ttl: 3600 } })
  try {
    const central = c.node('central')
    // What `outpost upgrade` leaves while the watchdog waits for the new binary to connect.
    pending(central.dataDir, 'the-new-one')
    // The new binary never connects (no hub): a clean stop with 200 queued, then 100 more and SIGKILL.
    let p = await c.start('central', false)
    assert.is((await sendVia(central.socket, pings(200, 'a'), { wait: false, allowUnknown: true })).accepted.length, 200)
    await p.stop('SIGTERM')
    p = await c.start('central', false)
    assert.is((await sendVia(central.socket, pings(100, 'b'), { wait: false, allowUnknown: true })).accepted.length, 100)
    await p.stop('SIGKILL')
    const outbox = path.join(central.dataDir, 'outbox')
    assert.equal(bodyFiles(outbox), [], 'no body files while the upgrade may roll back')

    // The rollback: the previous binary takes the directory over, connects, and delivers all of it.
    const old = await c.start('central', false, {}, formatOneBinary())
    assert.is((await status(central.socket)).outbox.count, 300)
    await c.startHub()
    await c.start('ship1')
    await until('the previous binary to deliver all 300', async () => (await status(central.socket)).outbox.count === 0)
    assert.not.match(old.output, /outbox_corrupt|no such column/)
  } finally {
    await c.destroy()
  }
})

test('once the upgrade is confirmed (connected), the next snapshot moves the store to body files', async () => {
  const c = await Cluster.create(['ship1'], { log: { level: 'info' }, delivery: { ttl: 3600 } })
  try {
    const central = c.node('central')
    pending(central.dataDir, VERSION)
    let p = await c.start('central', false)
    assert.is((await sendVia(central.socket, pings(100, 'd'), { wait: false, allowUnknown: true })).accepted.length, 100)
    await p.stop('SIGTERM')
    const outbox = path.join(central.dataDir, 'outbox')
    assert.equal(bodyFiles(outbox), [])
    await c.startHub()
    p = await c.start('central')
    await until('the upgrade to be confirmed', async () => readPending(central.dataDir) === undefined)
    await sendVia(central.socket, pings(1, 'e'), { wait: false, allowUnknown: true })
    await p.stop('SIGTERM')
    assert.ok(bodyFiles(outbox).length > 0, 'body files after the confirmation')
    // What the agent left, read back by this outpost's store: every message, each with its own body.
    const ob = await Outbox.open({ dir: outbox, maxBytes: 1 << 30 })
    try {
      assert.is(ob.format, 4)
      const mine = ob.all().map((e) => Buffer.from(e.body).toString('latin1')).filter((b) => /node\.ping.*[de]-\d+-/.test(b))
      assert.is(mine.length, 101)
      for (let i = 0; i < 100; i++) assert.ok(mine.some((b) => b.includes(`d-${i}-${'x'.repeat(i % 97)}`)), `d-${i}`)
      assert.ok(mine.some((b) => b.includes('e-0-')))
    } finally {
      await ob.close()
    }
  } finally {
    await c.destroy()
  }
})

test('a store in format 2 is refused by the previous outpost and left as it is; this one goes on with it', async () => {
  const c = await Cluster.create(['ship1'], { log: { level: 'info' }, delivery: { ttl: 3600 } })
  try {
    const central = c.node('central')
    const p = await c.start('central', false)
    assert.is((await sendVia(central.socket, pings(200, 'c'), { wait: false, allowUnknown: true })).accepted.length, 200)
    await p.stop('SIGTERM')
    const outbox = path.join(central.dataDir, 'outbox')
    assert.ok(bodyFiles(outbox).length > 0, 'the new binary, with no upgrade pending, writes body files')
    const before = digest(outbox)

    const old = await c.start('central', false, {}, formatOneBinary()).then(() => undefined, (err: Error) => err)
    assert.ok(old instanceof Error, 'the format-1 outpost does not come up on a format-2 store')
    assert.match(old.message, /body/)
    assert.equal(digest(outbox), before, 'and it changed nothing')

    await c.start('central', false)
    assert.is((await status(central.socket)).outbox.count, 200)
  } finally {
    await c.destroy()
  }
})

test('a store of format 2 (a sql.js row per seen id and request record) moves to format 3 at the first start of this outpost; every id is still recognised', async () => {
  const c = await Cluster.create(['ship1'], { log: { level: 'info' }, delivery: { ttl: 3600 } })
  try {
    const central = c.node('central')
    const ship1 = c.node('ship1')
    const formatTwo = oldBuild(FORMAT_2_COMMIT)
    await c.startHub()
    const oldCentral = await c.start('central', true, {}, formatTwo)
    const oldShip = await c.start('ship1', true, {}, formatTwo)
    const sent = await sendVia(central.socket, pings(40, 'm'))
    assert.is(sent.replies.length, 40)
    await oldShip.stop('SIGTERM')
    await oldCentral.stop('SIGTERM')
    const shipDir = path.join(ship1.dataDir, 'outbox')
    const centralDir = path.join(central.dataDir, 'outbox')
    assert.equal(await snapshotRows(shipDir, 'PRAGMA user_version'), [[2]], 'written by the format-2 outpost')
    const rows = { ship: Number((await snapshotRows(shipDir, 'SELECT count(*) FROM seen'))[0]![0]), central: Number((await snapshotRows(centralDir, "SELECT count(*) FROM seen WHERE id LIKE '!%'"))[0]![0]) }
    assert.ok(rows.ship >= 40 && rows.central >= 40, JSON.stringify(rows))

    // This outpost starts on both, then stops: the move to runs is written at the stop.
    await c.start('central', true)
    const ship = await c.start('ship1', true)
    assert.is((await sendVia(central.socket, pings(5, 'n'))).replies.length, 5, 'requests and their replies go on')
    await ship.stop('SIGTERM')
    await c.node('central').proc!.stop('SIGTERM')
    for (const dir of [shipDir, centralDir]) {
      assert.equal(await snapshotRows(dir, 'PRAGMA user_version'), [[4]])
      assert.equal(await snapshotRows(dir, "SELECT name FROM sqlite_master WHERE name = 'seen'"), [])
    }
    const ob = await Outbox.open({ dir: shipDir, maxBytes: 1 << 30 })
    try {
      assert.is(ob.format, 4)
      for (const { id } of sent.accepted) assert.ok(ob.hasSeen(id), `${id}, received by the format-2 outpost, is a duplicate still`)
      assert.ok(ob.stats().seen >= rows.ship + 5)
    } finally {
      await ob.close()
    }
    const oc = await Outbox.open({ dir: centralDir, maxBytes: 1 << 30 })
    try {
      assert.ok(oc.stats().seen >= rows.central + 5, 'the request records and receipts of both')
    } finally {
      await oc.close()
    }
    // And the format-2 outpost, should it be started on it again, refuses it rather than forget them.
    const back = await c.start('ship1', false, {}, formatTwo).then(() => undefined, (err: Error) => err)
    assert.ok(back instanceof Error)
    assert.match(back.message, /format 4/)
  } finally {
    await c.destroy()
  }
})

test('a store of format 3 (a sql.js row per waiting message) moves to format 4 at the first start of this outpost; the format-3 outpost then refuses it, and every message is delivered', async () => {
  const c = await Cluster.create(['ship1'], { log: { level: 'info' }, delivery: { ttl: 3600 } })
  try {
    const central = c.node('central')
    const formatThree = oldBuild(FORMAT_3_COMMIT)
    // ship1 absent: 150 wait at central, a clean stop, 50 more and SIGKILL (those in the journal).
    let p = await c.start('central', false, {}, formatThree)
    assert.is((await sendVia(central.socket, pings(150, 'f'), { wait: false, allowUnknown: true })).accepted.length, 150)
    await p.stop('SIGTERM')
    p = await c.start('central', false, {}, formatThree)
    assert.is((await sendVia(central.socket, pings(50, 'g'), { wait: false, allowUnknown: true })).accepted.length, 50)
    await p.stop('SIGKILL')
    const outbox = path.join(central.dataDir, 'outbox')
    assert.equal(await snapshotRows(outbox, 'PRAGMA user_version'), [[3]], 'written by the format-3 outpost')
    assert.ok(Number((await snapshotRows(outbox, 'SELECT count(*) FROM outbox'))[0]![0]) >= 150)

    p = await c.start('central', false)
    assert.is((await status(central.socket)).outbox.count, 200)
    await p.stop('SIGTERM')
    assert.equal(await snapshotRows(outbox, 'PRAGMA user_version'), [[4]])
    assert.equal(await snapshotRows(outbox, 'SELECT count(*) FROM outbox'), [[0]], 'the rows moved out')
    const back = await c.start('central', false, {}, formatThree).then(() => undefined, (err: Error) => err)
    assert.ok(back instanceof Error, 'the format-3 outpost does not come up on a format-4 store')
    assert.match(back.message, /format 4/)

    await c.start('central', false)
    assert.is((await status(central.socket)).outbox.count, 200)
    await c.startHub()
    await c.start('ship1')
    await until('all 200 to be delivered', async () => (await status(central.socket)).outbox.count === 0)
  } finally {
    await c.destroy()
  }
})

test('during an upgrade\'s probation a format-3 store stays in format 3: a rollback to the format-3 outpost delivers every queued message', async () => {
  const c = await Cluster.create(['ship1'], { log: { level: 'info' }, delivery: { ttl: 3600 } })
  try {
    const central = c.node('central')
    const formatThree = oldBuild(FORMAT_3_COMMIT)
    let p = await c.start('central', false, {}, formatThree)
    assert.is((await sendVia(central.socket, pings(100, 'h'), { wait: false, allowUnknown: true })).accepted.length, 100)
    await p.stop('SIGTERM')
    // The upgrade to this outpost, not yet confirmed (no hub): a clean stop, 100 more and SIGKILL.
    pending(central.dataDir, 'the-new-one')
    p = await c.start('central', false)
    assert.is((await sendVia(central.socket, pings(100, 'i'), { wait: false, allowUnknown: true })).accepted.length, 100)
    await p.stop('SIGTERM')
    p = await c.start('central', false)
    assert.is((await sendVia(central.socket, pings(100, 'j'), { wait: false, allowUnknown: true })).accepted.length, 100)
    await p.stop('SIGKILL')
    const outbox = path.join(central.dataDir, 'outbox')
    assert.equal(await snapshotRows(outbox, 'PRAGMA user_version'), [[3]], 'still format 3 while the upgrade may roll back')

    const old = await c.start('central', false, {}, formatThree)
    assert.is((await status(central.socket)).outbox.count, 300)
    await c.startHub()
    await c.start('ship1')
    await until('the format-3 outpost to deliver all 300', async () => (await status(central.socket)).outbox.count === 0)
    assert.not.match(old.output, /outbox_corrupt|outbox_format/)
  } finally {
    await c.destroy()
  }
})

test.run()
