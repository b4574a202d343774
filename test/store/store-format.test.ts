/**
 * The store format against real older binaries: an upgrade across the change to body files
 * (format 2) must not leave a data directory the binary it may roll back to cannot read.
 * The older outpost is built from this repository's history (the last commit before body files).
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Outbox } from '../../src/store/outbox'
import { readPending, writePending } from '../../src/upgrade/watchdog'
import { VERSION } from '../../src/version'
import { Cluster, status, sendVia } from '../fixtures/cluster'
import { oldBuild } from '../fixtures/old-build'

/** The last commit whose outbox keeps bodies inside sql.js (store format 1). */
const FORMAT_1_COMMIT = '45265d625e7c95489a13e7555201bd74ec6e164d'

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
      assert.is(ob.format, 2)
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

test.run()
