/**
 * A full disk under the sender's data directory (a small tmpfs; needs root and mount, else
 * skipped with a note): `send` fails with a clear error and a code, nothing already accepted is
 * lost, and once space is freed the node carries on.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, editYaml, status } from '../fixtures/cluster'
import { submit } from './harness'
import { ulid } from '../../src/wire/ulid'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Send one batch; resolves with the accepted ids or the error the API answered. */
function trySend(socket: string, messages: unknown[]): Promise<{ ids?: string[]; error?: { code: string; message: string } }> {
  return submit(socket, messages).then((ids) => ({ ids: ids ?? [] }), (err: Error) => ({ error: JSON.parse(err.message.replace(/^submit refused: /, '')) as { code: string; message: string } }))
}

test('disk full - send fails with a clear error and code, nothing accepted is lost, and the node recovers when space is freed', async () => {
  const mnt = fs.mkdtempSync('/tmp/outpost-full-')
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt], { encoding: 'utf8' })
  if (m.status !== 0) {
    console.log(`  skipped: cannot mount a tmpfs here (${m.stderr.trim()}); run as root with mount permission`)
    fs.rmdirSync(mnt)
    return
  }
  const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 5, retries: 50, ttl: 900 }, log: { level: 'info' } }, 'tcp')
  try {
    const dataDir = path.join(mnt, 'central')
    editYaml(c.node('central').config, (doc) => { doc.dataDir = dataDir })
    c.node('central').dataDir = dataDir
    c.node('central').socket = path.join(dataDir, 'outpost.sock')
    await c.startServer()
    await c.start('central')
    // ship1 stays away: everything accepted waits in central's outbox, on the small disk.
    const filler = path.join(mnt, 'filler')
    fs.writeFileSync(filler, Buffer.alloc(12 * 1024 * 1024))
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
    // More of the same with the disk still full: what fits is accepted (a failed write is cut
    // off the journal, which may leave room for a smaller batch), the rest is refused the same
    // way, and nothing hangs.
    let refusedAgain = 0
    for (let i = 0; i < 20; i++) {
      const ids = Array.from({ length: 20 }, () => ulid())
      const r = await trySend(c.node('central').socket, ids.map((id) => ({ id, toNode: 'ship1', method: 'reply.file.append', directory: 'disk', fileName: 'd.log', data: `${id} ${data}\n` })))
      if (r.error) { assert.is(r.error.code, 'disk_full', JSON.stringify(r.error)); refusedAgain++ } else accepted.push(...r.ids!)
    }
    assert.ok(refusedAgain > 0, 'still refused while the disk is full')
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
    // And sending works again.
    const after = await trySend(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }])
    assert.is(after.ids?.length, 1, JSON.stringify(after))
  } finally {
    await c.destroy()
    spawnSync('umount', ['-l', mnt])
    fs.rmSync(mnt, { recursive: true, force: true })
  }
})

test.run()
