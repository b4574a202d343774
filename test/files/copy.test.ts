/**
 * The other ways of copying: node to node (the receiver lets the source call file.*),
 * `--no-wait` followed by `outpost transfers`, `--owner`, and file.get sent as a message in
 * steward's REQCopySrc form through the socket API. Real hub and agents; the tests run as root.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, freePort, sendVia } from '../fixtures/cluster'
import { runCli } from '../fixtures/run-cli'
import { cp, errorCode, lastTransfer, partials, randomFile, sha256Of, transfersOf, until } from './helpers'

let c: Cluster
let port: number
const TOKEN = 'files-test-token-0123456789'
let src: string
let sum: string

test.before(async () => {
  c = await Cluster.create(['ship1', 'ship2'])
  // ship2 lets ship1 send it files (node to node), besides the default rules.
  fs.appendFileSync(c.node('ship2').config, `methods:\n  allow:\n    - from: [$central, $self]\n    - from: [ship1]\n      methods: ["file.*"]\n    - from: ["*"]\n      methods: ["reply.*", "error.log", "node.hello", "node.pong"]\n`)
  port = await freePort()
  fs.appendFileSync(c.node('central').config, `api:\n  http: 127.0.0.1:${port}\n  token: ${TOKEN}\n`)
  await c.startHub()
  for (const n of ['central', 'ship1', 'ship2']) await c.start(n)
  src = path.join(c.dir, 'fw.bin')
  sum = randomFile(src, 1_500_000)
})

test.after(async () => {
  await c.destroy()
})

const filesOf = (n: string): string => path.join(c.node(n).dataDir, 'files')

test('files - a copy from one node to another goes from the source to the receiver', async () => {
  const push = await cp(c, 'central', [src, `ship1:${filesOf('ship1')}/fw.bin`])
  assert.is(push.code, 0, push.stderr)
  // --json gives each state once: no line repeats the one before it.
  const repeats = push.lines.map((l) => JSON.stringify(l)).filter((l, i, all) => i > 0 && l === all[i - 1])
  assert.equal(repeats, [])
  const r = await cp(c, 'central', [`ship1:${filesOf('ship1')}/fw.bin`, `ship2:${filesOf('ship2')}/`])
  assert.is(r.code, 0, r.stderr + JSON.stringify(r.lines))
  await until(c.node('ship2').socket, (t) => t.state === 'done')
  assert.is(sha256Of(path.join(filesOf('ship2'), 'fw.bin')), sum)
})

test('files - a copy to a node that does not let the source call file.* ends in denied for the one who asked', async () => {
  const push = await cp(c, 'central', [src, `ship2:${filesOf('ship2')}/back.bin`])
  assert.is(push.code, 0, push.stderr)
  // ship1 keeps the default rules: only central and itself may call file.* there.
  const r = await cp(c, 'central', [`ship2:${filesOf('ship2')}/back.bin`, `ship1:${filesOf('ship1')}/from-ship2.bin`])
  assert.is(errorCode(r), 'denied', JSON.stringify(r.lines))
  assert.is(r.code, 3)
  assert.not.ok(fs.existsSync(path.join(filesOf('ship1'), 'from-ship2.bin')))
})

test('files - chunks the receiver refuses (op.stop file.chunk) end the transfer with that code, and its temp file goes', async () => {
  const stop = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'op.stop', methodArgs: ['file.chunk'] }])
  assert.is((stop.replies[0] as { error?: unknown }).error, undefined, JSON.stringify(stop.replies))
  try {
    const r = await cp(c, 'central', [src, `ship1:${filesOf('ship1')}/stopped.bin`], 30_000)
    assert.is(errorCode(r), 'method_disabled', JSON.stringify(r.lines.slice(-2)))
    assert.is(r.code, 3)
    const end = Date.now() + 10_000
    while (partials(filesOf('ship1')).length > 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(partials(filesOf('ship1')), [])
    assert.not.ok(fs.existsSync(path.join(filesOf('ship1'), 'stopped.bin')))
  } finally {
    await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'op.start', methodArgs: ['file.chunk'] }])
  }
})

test('files - cp --no-wait returns at once and outpost transfers shows the transfer until it is done', async () => {
  const r = await cp(c, 'central', ['--no-wait', '--rate', '500k', src, `ship1:${filesOf('ship1')}/slow.bin`])
  assert.is(r.code, 0, r.stderr)
  assert.not.equal(lastTransfer(r).state, 'done')
  const list = spawnSync(process.execPath, [BIN, 'transfers', '--config', c.node('central').config], { encoding: 'utf8' })
  assert.is(list.status, 0, list.stderr)
  assert.match(list.stdout, lastTransfer(r).id)
  assert.match(list.stdout, /out\s+ship1/)
  const id = lastTransfer(r).id
  await until(c.node('central').socket, (t) => t.id === id && t.state === 'done' && t.bytes === t.size, 30_000)
  assert.is(sha256Of(path.join(filesOf('ship1'), 'slow.bin')), sum)
  const after = spawnSync(process.execPath, [BIN, 'transfers', '--config', c.node('central').config], { encoding: 'utf8' })
  assert.not.match(after.stdout, lastTransfer(r).id)
})

test('files - cp --owner makes the target belong to that user and group', async () => {
  const dest = path.join(filesOf('ship1'), 'owned.bin')
  const r = await cp(c, 'central', ['--owner', '65534:65534', src, `ship1:${dest}`])
  assert.is(r.code, 0, r.stderr)
  const st = fs.statSync(dest)
  assert.is(st.uid, 65534)
  assert.is(st.gid, 65534)
})

test('files - cp --rate holds the transfer to that many bytes a second', async () => {
  const file = path.join(c.dir, 'paced.bin')
  randomFile(file, 600_000)
  const t0 = Date.now()
  const r = await cp(c, 'central', ['--rate', '200k', file, `ship1:${filesOf('ship1')}/paced.bin`])
  assert.is(r.code, 0, r.stderr)
  // Five chunks of 128 KiB at 200 KiB/s: the last one leaves 2.5 s after the first.
  assert.ok(Date.now() - t0 >= 2400, `took ${Date.now() - t0} ms`)
})

test('files - a mode with setuid or setgid bits lands without them', async () => {
  const dest = path.join(filesOf('ship1'), 'suid.bin')
  const r = await cp(c, 'central', ['--mode', '6755', src, `ship1:${dest}`])
  assert.is(r.code, 0, r.stderr)
  assert.is(fs.statSync(dest).mode & 0o7777, 0o755)
})

test("files - file.get in steward's REQCopySrc form, sent through the socket API, copies the file", async () => {
  const dest = path.join(filesOf('ship2'), 'steward.bin')
  const res = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'REQCopySrc', methodArgs: [path.join(filesOf('ship1'), 'fw.bin'), 'ship2', dest] }])
  const reply = res.replies[0] as { error?: unknown; data?: string }
  assert.is(reply.error, undefined, JSON.stringify(reply))
  assert.match(String(reply.data), /"started":true/)
  const end = Date.now() + 30_000
  while (!fs.existsSync(dest) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.is(sha256Of(dest), sum)
})

test('files - POST /v1/transfers starts a copy and GET /v1/transfers follows it to done', async () => {
  const dest = path.join(filesOf('ship1'), 'http.bin')
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
  const res = await fetch(`http://127.0.0.1:${port}/v1/transfers`, { method: 'POST', headers, body: JSON.stringify({ src, dst: `ship1:${dest}`, mode: 0o640 }) })
  assert.is(res.status, 202)
  const { transfer } = await res.json() as { transfer: { id: string } }
  const end = Date.now() + 30_000
  let state = ''
  while (state !== 'done' && Date.now() < end) {
    const list = await (await fetch(`http://127.0.0.1:${port}/v1/transfers`, { headers })).json() as { transfers: { id: string; state: string }[] }
    state = list.transfers.find((t) => t.id === transfer.id)?.state ?? ''
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.is(state, 'done')
  assert.is(sha256Of(dest), sum)
  assert.is(fs.statSync(dest).mode & 0o777, 0o640)
})

test("files - on central, cp ship1:/p central:/q names central's own side: a pull, let in without a methods.allow rule for ship1", async () => {
  const push = await cp(c, 'central', [src, `ship1:${filesOf('ship1')}/own.bin`])
  assert.is(push.code, 0, push.stderr)
  fs.mkdirSync(filesOf('central'), { recursive: true })
  const dest = path.join(filesOf('central'), 'own-pulled.bin')
  const r = await cp(c, 'central', [`ship1:${filesOf('ship1')}/own.bin`, `central:${dest}`])
  assert.is(r.code, 0, r.stderr + JSON.stringify(r.lines))
  assert.is(sha256Of(dest), sum)
})

test('files - a pull into a directory that does not exist here ends at once (file_not_found, exit 1), and leaves no transfer waiting', async () => {
  // From the node itself (NODE:/path naming this node), as from another.
  fs.mkdirSync(filesOf('central'), { recursive: true })
  fs.copyFileSync(src, path.join(filesOf('central'), 'nodir.bin'))
  const r = await cp(c, 'central', [`central:${filesOf('central')}/nodir.bin`, path.join(c.dir, 'no-such-dir', 'nodir.bin')], 30_000)
  assert.is(r.code, 1, r.stderr + JSON.stringify(r.lines))
  assert.is(errorCode(r), 'file_not_found', r.stderr + JSON.stringify(r.lines))
  assert.not.ok(fs.existsSync(path.join(c.dir, 'no-such-dir')))
  const waiting = (await transfersOf(c.node('central').socket)).filter((t) => t.state === 'expected')
  assert.equal(waiting, [])
})

test('files - a copy to or from a node central has never heard of is refused at once (node_unknown, exit 2), by the CLI and POST /v1/transfers; --allow-unknown lets it wait', async () => {
  const pull = await cp(c, 'central', ['nowhere:/tmp/x', path.join(c.dir, 'x')], 20_000)
  assert.is(pull.code, 2, pull.stderr)
  assert.is(errorCode(pull), 'node_unknown', pull.stderr + JSON.stringify(pull.lines))
  const push = await cp(c, 'central', [src, 'nowhere:/tmp/x'], 20_000)
  assert.is(push.code, 2, push.stderr)
  assert.is(errorCode(push), 'node_unknown', push.stderr + JSON.stringify(push.lines))
  const waits = await cp(c, 'central', ['--allow-unknown', '--no-wait', src, 'nowhere:/tmp/x'], 20_000)
  assert.is(waits.code, 0, waits.stderr)
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
  const res = await fetch(`http://127.0.0.1:${port}/v1/transfers`, { method: 'POST', headers, body: JSON.stringify({ src, dst: 'nowhere:/tmp/x' }) })
  assert.is(res.status, 400)
  assert.is((await res.json() as { error: { code: string } }).error.code, 'node_unknown')
})

test('files - a push to a directory (DST ends in /) says where the file landed: the directory and the source\'s name', async () => {
  const r = await runCli(['cp', '--config', c.node('central').config, src, `ship1:${filesOf('ship1')}/`], c.dir)
  assert.is(r.code, 0, r.stderr)
  assert.is(r.stdout, `ship1:${filesOf('ship1')}/fw.bin: 1500000 bytes, sha256 ${sum}\n`)
})

test.run()
