/**
 * A full disk under central's data directory (a small tmpfs; needs root and mount, else
 * skipped with a note):
 * - `send` fails with a clear error and a code, nothing already accepted is lost, and once space
 *   is freed the node carries on;
 * - with the disk full to the last byte, deliveries and replies are still recorded (from the
 *   outbox's reserve), audit.log and reply files stop with one log line, new messages are refused,
 *   and once space is freed everything resumes (one line again) and the reserve is made anew.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, editYaml, sendVia, status, type SendResult } from '../fixtures/cluster'
import { submit } from './harness'
import { ulid } from '../../src/wire/ulid'

const MIB = 1024 * 1024
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Send one batch; resolves with the accepted ids or the error the API answered. */
function trySend(socket: string, messages: unknown[]): Promise<{ ids?: string[]; error?: { code: string; message: string } }> {
  return submit(socket, messages).then((ids) => ({ ids: ids ?? [] }), (err: Error) => ({ error: JSON.parse(err.message.replace(/^submit refused: /, '')) as { code: string; message: string } }))
}

/** What the status API says of the outbox, with the reserve. */
interface OutboxState { count: number; diskFull: boolean; reserveBytes: number }
async function outboxOf(socket: string): Promise<OutboxState> {
  return (await status(socket)).outbox as unknown as OutboxState
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(200)
  }
}

/** A tmpfs of `size` MiB; undefined (with a note) where this process may not mount one. */
function mountTmpfs(size: number): string | undefined {
  const mnt = fs.mkdtempSync('/tmp/outpost-full-')
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}m`, 'tmpfs', mnt], { encoding: 'utf8' })
  if (m.status === 0) return mnt
  console.log(`  skipped: cannot mount a tmpfs here (${m.stderr.trim()}); run as root with mount permission`)
  fs.rmdirSync(mnt)
  return undefined
}

function unmount(mnt: string): void {
  spawnSync('umount', ['-l', mnt])
  fs.rmSync(mnt, { recursive: true, force: true })
}

/** Write zeros to `file` until the disk has not a byte left. */
function fillUp(file: string): void {
  const fd = fs.openSync(file, 'a')
  try {
    for (const size of [MIB, 4096, 1]) {
      try { for (;;) fs.writeSync(fd, Buffer.alloc(size)) } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err }
    }
  } finally {
    fs.closeSync(fd)
  }
}

/** Central's data directory on the tmpfs at `mnt`, started once its reserve is ready (before anything fills the disk). */
async function centralOn(c: Cluster, mnt: string): Promise<string> {
  const dataDir = path.join(mnt, 'central')
  editYaml(c.node('central').config, (doc) => { doc.dataDir = dataDir })
  c.node('central').dataDir = dataDir
  c.node('central').socket = path.join(dataDir, 'outpost.sock')
  await c.startServer()
  await c.start('central')
  await until('central\'s reserve', async () => ((await outboxOf(c.node('central').socket)).reserveBytes === 4 * MIB ? true : undefined), 10_000)
  return dataDir
}

test('disk full - send fails with a clear error and code, nothing accepted is lost, and the node recovers when space is freed', async () => {
  const mnt = mountTmpfs(48)
  if (mnt === undefined) return
  const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 5, retries: 50, ttl: 900 }, log: { level: 'info' } }, 'tcp')
  try {
    await centralOn(c, mnt)
    // ship1 stays away: everything accepted waits in central's outbox, on the small disk.
    const filler = path.join(mnt, 'filler')
    fs.writeFileSync(filler, Buffer.alloc(28 * MIB))
    const accepted: string[] = []
    let error: { code: string; message: string } | undefined
    const data = 'd'.repeat(16 * 1024)
    for (let i = 0; i < 2000 && error === undefined; i++) {
      const ids = Array.from({ length: 20 }, () => ulid())
      const r = await trySend(c.node('central').socket, ids.map((id) => ({ id, toNode: 'ship1', method: 'reply.file.append', directory: 'disk', fileName: 'd.log', data: `${id} ${data}\n` })))
      if (r.error) error = r.error
      else accepted.push(...r.ids!)
    }
    assert.ok(error, 'a send failed once the disk was full')
    console.log(`  ${accepted.length} messages accepted, then: ${error!.code}: ${error!.message}`)
    assert.is(error!.code, 'disk_full')
    assert.match(error!.message, /ENOSPC.*free space/)
    assert.is(c.node('central').proc!.child.exitCode, null, 'central is still running')
    // More of the same with the disk still full: refused the same way until space is freed,
    // and nothing hangs.
    for (let i = 0; i < 20; i++) {
      const ids = Array.from({ length: 20 }, () => ulid())
      const r = await trySend(c.node('central').socket, ids.map((id) => ({ id, toNode: 'ship1', method: 'reply.file.append', directory: 'disk', fileName: 'd.log', data: `${id} ${data}\n` })))
      assert.is(r.error?.code, 'disk_full', JSON.stringify(r))
    }
    // Space comes back; ship1 comes up: every accepted message arrives, once.
    fs.rmSync(filler)
    await c.start('ship1')
    const file = path.join(c.node('ship1').dataDir, 'disk', 'central', 'd.log')
    const end = Date.now() + 120_000
    let lines: string[] = []
    for (;;) {
      lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[0]!) : []
      if (lines.length >= accepted.length && (await status(c.node('central').socket)).outbox.count === 0) break
      if (Date.now() > end) throw new Error(`${lines.length} of ${accepted.length} accepted messages arrived`)
      await sleep(300)
    }
    const seen = new Set(lines)
    for (const id of accepted) assert.ok(seen.has(id), `accepted ${id} was lost`)
    assert.is(lines.length, seen.size, 'none arrived twice')
    // And sending works again (once the node has seen the space and made its reserve anew).
    const after = await until('a send to be accepted again', async () => {
      const r = await trySend(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }])
      return r.ids?.length === 1 ? r : undefined
    }, 20_000)
    assert.is(after.ids?.length, 1, JSON.stringify(after))
  } finally {
    await c.destroy().finally(() => unmount(mnt))
  }
})

test('disk full - deliveries and replies are still recorded from the reserve, audit.log and reply files stop with one log line, and all resumes when space is freed', async () => {
  const mnt = mountTmpfs(48)
  if (mnt === undefined) return
  const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 5, retries: 50, ttl: 900 }, log: { level: 'info' } }, 'tcp')
  try {
    const dataDir = await centralOn(c, mnt)
    const central = c.node('central')
    const out = (): string => central.proc!.output
    const count = (re: RegExp, from = 0): number => out().slice(from).split('\n').filter((l) => re.test(l)).length
    const STOPPED = /disk: .* left on the disk of .*: audit\.log, reply files and errors\.log are not written until space is freed/
    const RESUMED = /disk: .* free again on the disk of .*: audit\.log, reply files and errors\.log are written again/
    const audit = (): number => fs.readdirSync(dataDir).filter((f) => f.startsWith('audit.log')).reduce((n, f) => n + fs.statSync(path.join(dataDir, f)).size, 0)
    const replyFiles = (): string[] => { try { return fs.readdirSync(path.join(dataDir, 'replies', 'ship1')) } catch { return [] } }
    // A client waiting for the reply to a request sent before the disk fills (ship1 is away).
    const waiting: Promise<SendResult> = sendVia(central.socket, [{ toNode: 'ship1', method: 'node.ping' }], { wait: true, ms: 90_000, allowUnknown: true })
    await until('the waiting request to be accepted', async () => ((await outboxOf(central.socket)).count === 1 ? true : undefined), 10_000)

    // Fill the disk with requests for ship1 (16 KiB each, small replies) until one is refused,
    // then take whatever is left, to the last byte.
    fs.writeFileSync(path.join(mnt, 'filler'), Buffer.alloc(28 * MIB))
    let accepted = 1
    let error: { code: string; message: string } | undefined
    const data = 'd'.repeat(16 * 1024)
    for (let i = 0; i < 2000 && error === undefined; i++) {
      const r = await trySend(central.socket, Array.from({ length: 20 }, () => ({ toNode: 'ship1', method: 'node.ping', data })))
      if (r.error) error = r.error
      else accepted += r.ids!.length
    }
    assert.is(error?.code, 'disk_full', JSON.stringify(error))
    fillUp(path.join(mnt, 'filler-2'))
    assert.is(fs.statfsSync(mnt).bavail, 0, 'not a block left')
    // audit.log stopped before the store ran out (one line), and stays stopped.
    await until('the line saying audit.log and reply files stop', async () => (count(STOPPED) === 1 ? true : undefined), 10_000)
    const auditBefore = audit()
    const outputBefore = out().length
    assert.is((await outboxOf(central.socket)).count, accepted)
    assert.is((await outboxOf(central.socket)).diskFull, true, 'the status says the disk is full')
    console.log(`  ${accepted} requests accepted, then: ${error!.message}`)

    // ship1 comes up: every request is delivered (the removals are recorded: central's outbox
    // empties) and answered (the receipts are recorded: ship1's outbox of replies empties).
    await c.start('ship1')
    await until('central\'s outbox to empty', async () => ((await outboxOf(central.socket)).count === 0 ? true : undefined), 120_000)
    await until('ship1\'s replies to be taken', async () => ((await outboxOf(c.node('ship1').socket)).count === 0 ? true : undefined), 120_000)
    // The waiting client got its reply, with the reason it is in no file.
    const got = await waiting
    assert.is(got.replies.length, 1, JSON.stringify(got))
    const reply = got.replies[0]! as { data?: string; error?: { code: string; message: string } }
    assert.is(reply.error?.code, 'disk_full', JSON.stringify(reply))
    assert.match(reply.error!.message, /reply file: .* not written/)
    assert.match(String(reply.data), /^pong ship1 /)
    // Nothing went to audit.log or reply files meanwhile, and one line said so (none since).
    assert.is(audit(), auditBefore, 'audit.log did not grow')
    assert.equal(replyFiles(), [], 'no reply file was written')
    assert.is(count(STOPPED), 1, 'one line said audit.log and reply files stopped')
    assert.is(count(RESUMED), 0)
    assert.is(count(/reply file: /, outputBefore), 0, 'no line per skipped reply')
    assert.is(count(/journal: the disk holding .* is full \(ENOSPC\)/), 1, 'one line said the disk is full')
    assert.is(count(/disk_full|is full/, outputBefore), 0, 'nothing more was said of it while ship1 was served')
    assert.is(central.proc!.child.exitCode, null, 'central is still running')
    // New messages are still refused: delivering the old ones freed no space.
    assert.is((await trySend(central.socket, [{ toNode: 'ship1', method: 'node.ping' }])).error?.code, 'disk_full')

    // Space comes back: the reserve is made again, new sends are accepted and their replies
    // written, audit.log grows again; one line each says so.
    const freedAt = out().length
    fs.rmSync(path.join(mnt, 'filler'))
    fs.rmSync(path.join(mnt, 'filler-2'))
    const again = await until('a send to be accepted again', async () => {
      const r = await sendVia(central.socket, [{ toNode: 'ship1', method: 'node.ping' }], { wait: true, ms: 30_000 }).catch(() => undefined)
      return r?.replies.length === 1 ? r : undefined
    }, 30_000)
    assert.is(again.replies[0]!.error, undefined, JSON.stringify(again.replies[0]))
    const state = await outboxOf(central.socket)
    assert.is(state.diskFull, false)
    assert.is(state.reserveBytes, 4 * MIB, 'the reserve is made again')
    assert.is(fs.statSync(path.join(dataDir, 'outbox', 'journal-reserve.dat')).size, 4 * MIB)
    await until('the reply file of the new send', async () => (replyFiles().includes(`${again.accepted[0]!.id}.log`) ? true : undefined), 10_000)
    assert.ok(audit() > auditBefore, 'audit.log grows again')
    assert.is(count(RESUMED, freedAt), 1, out().slice(freedAt))
    assert.is(count(/journal: space is free again .* new messages are accepted again/, freedAt), 1)
  } finally {
    await c.destroy().finally(() => unmount(mnt))
  }
})

test.run()
