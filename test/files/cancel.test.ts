/**
 * outpost cp --cancel: a transfer cancelled mid-way, at the sending end (a push, with the CLI),
 * at the receiving end (a pull), and over the HTTP API, ends `cancelled` at both ends with no
 * partial file and no target at the receiver. Real hub and agents; transfers slowed by --rate.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, freePort } from '../fixtures/cluster'
import { cp, errorCode, lastTransfer, partials, randomFile, until } from './helpers'

let c: Cluster
let port: number
const TOKEN = 'files-cancel-token-0123456789'
let src: string

test.before(async () => {
  c = await Cluster.create(['ship1'])
  port = await freePort()
  fs.appendFileSync(c.node('central').config, `api:\n  http: 127.0.0.1:${port}\n  token: ${TOKEN}\n`)
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
  src = path.join(c.dir, 'fw.bin')
  randomFile(src, 4 * 1024 * 1024)
})

test.after(async () => {
  await c.destroy()
})

const filesOf = (n: string): string => path.join(c.node(n).dataDir, 'files')
const cancelCli = (on: string, id: string) => spawnSync(process.execPath, [BIN, 'cp', '--config', c.node(on).config, '--cancel', id], { encoding: 'utf8' })
/** Some bytes are across (held at the receiver), far from all of them. */
const midway = (id: string) => (t: { id: string; state: string; bytes: number; size: number }): boolean => t.id === id && t.state === 'receiving' && t.bytes > 0 && t.bytes < t.size / 2

/** The id of a cp started with --no-wait. */
async function started(args: string[], on = 'central'): Promise<string> {
  const r = await cp(c, on, ['--no-wait', '--rate', '128k', ...args])
  assert.is(r.code, 0, r.stderr + JSON.stringify(r.lines))
  return lastTransfer(r).id
}

test('files cancel - a push cancelled at the sender (outpost cp --cancel) leaves no partial file and no target; both ends say cancelled', async () => {
  const target = path.join(filesOf('ship1'), 'push.bin')
  const id = await started([src, `ship1:${target}`])
  await until(c.node('ship1').socket, midway(id))
  assert.is(partials(filesOf('ship1')).filter((n) => n.includes('push.bin')).length, 1, 'the partial file exists while it runs')
  const r = cancelCli('central', id)
  assert.is(r.status, 0, r.stderr)
  assert.match(r.stdout, `transfer ${id} cancelled`)
  await until(c.node('central').socket, (t) => t.id === id && t.state === 'cancelled', 10_000)
  await until(c.node('ship1').socket, (t) => t.id === id && t.state === 'cancelled', 30_000)
  assert.equal(partials(filesOf('ship1')).filter((n) => n.includes('push.bin')), [])
  assert.not.ok(fs.existsSync(target))
  // Cancelled stays cancelled: chunks still on their way make no file again.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  assert.equal(partials(filesOf('ship1')).filter((n) => n.includes('push.bin')), [])
  assert.not.ok(fs.existsSync(target))
  // Twice: it has ended (exit 1), and an unknown id is refused.
  const again = cancelCli('central', id)
  assert.is(again.status, 1, again.stderr)
  assert.match(again.stderr, /\[file_transfer_ended\]/)
  const unknown = cancelCli('central', '01ARYZ6S41TSV4RRFFQ69G5FAV')
  assert.match(unknown.stderr, /\[file_transfer_unknown\]/)
})

test('files cancel - a cp waiting on a transfer ends with cancelled when it is cancelled', async () => {
  const target = path.join(filesOf('ship1'), 'waited.bin')
  const run = cp(c, 'central', ['--rate', '128k', src, `ship1:${target}`])
  let id = ''
  await until(c.node('ship1').socket, (t) => { if (t.state === 'receiving' && t.bytes > 0 && t.bytes < t.size / 2) id = t.id; return id !== '' })
  assert.is(cancelCli('central', id).status, 0)
  const r = await run
  assert.is(errorCode(r), 'cancelled', JSON.stringify(r.lines))
  assert.is(lastTransfer(r).state, 'cancelled')
  assert.is(r.code, 1)
  await until(c.node('ship1').socket, (t) => t.id === id && t.state === 'cancelled', 30_000)
  assert.not.ok(fs.existsSync(target))
})

test('files cancel - a pull cancelled at the receiving end stops the source; no partial file and no target here', async () => {
  const remote = path.join(filesOf('ship1'), 'pull-src.bin')
  fs.mkdirSync(filesOf('ship1'), { recursive: true })
  fs.copyFileSync(src, remote)
  const local = path.join(c.dir, 'pulled.bin')
  const id = await started([`ship1:${remote}`, local])
  await until(c.node('central').socket, midway(id))
  assert.is(partials(c.dir).length, 1)
  const r = cancelCli('central', id)
  assert.is(r.status, 0, r.stderr)
  await until(c.node('central').socket, (t) => t.id === id && t.state === 'cancelled', 10_000)
  await until(c.node('ship1').socket, (t) => t.id === id && t.direction === 'out' && t.state === 'cancelled', 30_000)
  assert.equal(partials(c.dir), [])
  assert.not.ok(fs.existsSync(local))
})

test('files cancel - a push cancelled at the receiving end stops the sender, whose methods.allow (the default) does not let the receiver call file.*', async () => {
  // central keeps the default rules: ship1 may not call file.commit there, but the receiver of
  // a transfer central sends may always stop it (its abort-send names that transfer).
  const target = path.join(filesOf('ship1'), 'stopped-by-receiver.bin')
  const r0 = await cp(c, 'central', ['--no-wait', '--rate', '64k', src, `ship1:${target}`])
  assert.is(r0.code, 0, r0.stderr)
  const id = lastTransfer(r0).id
  await until(c.node('ship1').socket, midway(id))
  const r = cancelCli('ship1', id)
  assert.is(r.status, 0, r.stderr)
  // At 64 KiB/s the 4 MiB would take a minute to go: central stops long before.
  await until(c.node('central').socket, (t) => t.id === id && t.direction === 'out' && t.state === 'cancelled', 20_000)
  assert.equal(partials(filesOf('ship1')).filter((n) => n.includes('stopped-by-receiver')), [])
  assert.not.ok(fs.existsSync(target))
  const audit = fs.readFileSync(path.join(c.node('central').dataDir, 'audit.log'), 'utf8')
  assert.not.match(audit, /"event":"denied"[^\n]*"method":"file.commit"/)
})

test('files cancel - POST /v1/transfers/ID/cancel cancels at both ends; an unknown id is 404, an ended one 409', async () => {
  const target = path.join(filesOf('ship1'), 'http.bin')
  const id = await started([src, `ship1:${target}`])
  await until(c.node('ship1').socket, midway(id))
  const post = (tid: string) => fetch(`http://127.0.0.1:${port}/v1/transfers/${tid}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  const res = await post(id)
  assert.is(res.status, 200)
  assert.is(((await res.json()) as { transfer: { state: string } }).transfer.state, 'cancelled')
  await until(c.node('ship1').socket, (t) => t.id === id && t.state === 'cancelled', 30_000)
  assert.equal(partials(filesOf('ship1')).filter((n) => n.includes('http.bin')), [])
  assert.not.ok(fs.existsSync(target))
  assert.is((await post(id)).status, 409)
  assert.is((await post('01ARYZ6S41TSV4RRFFQ69G5FAV')).status, 404)
  const get = await fetch(`http://127.0.0.1:${port}/v1/transfers/${id}/cancel`, { headers: { authorization: `Bearer ${TOKEN}` } })
  assert.is(get.status, 405)
})

test.run()
