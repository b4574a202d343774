/**
 * File transfer over a bad day: the hub restarted three times during a push, the source node
 * SIGKILLed during a pull, the receiver and the sender SIGKILLed during a push. Each transfer
 * completes with the same sha256, and no temp file is left. Real hub and agents.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from '../fixtures/cluster'
import { cp, lastTransfer, partials, randomFile, sha256Of, transfersOf, until } from './helpers'

const MIB = 1024 * 1024
let c: Cluster

test.before.each(async () => {
  c = await Cluster.create(['ship1'])
  await c.startHub()
  await c.start('central')
  await c.start('ship1')
})

test.after.each(async () => {
  await c.destroy()
})

const running = (frac: number) => (t: { state: string; bytes: number; size: number }): boolean => t.state === 'sending' && t.bytes >= t.size * frac

test('files - a 50 MB push through the hub arrives whole while the hub is restarted three times', async () => {
  const src = path.join(c.dir, 'big.bin')
  const sum = randomFile(src, 50 * MIB)
  const dir = path.join(c.node('ship1').dataDir, 'files')
  // Slowed so that three restarts fall inside the transfer on a fast machine too.
  const run = cp(c, 'central', ['--rate', '8m', src, `ship1:${dir}/big.bin`], 180_000)
  const central = c.node('central').socket
  for (const frac of [0.2, 0.45, 0.7]) {
    await until(central, running(frac), 90_000)
    await c.hub!.stop('SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 300))
    await c.startHub()
  }
  const r = await run
  assert.is(r.code, 0, r.stderr + JSON.stringify(r.lines.slice(-3)))
  assert.is(lastTransfer(r).state, 'done')
  assert.is(sha256Of(path.join(dir, 'big.bin')), sum)
  assert.equal(partials(dir), [])
})

test('files - a pull completes while the source node is SIGKILLed and restarted', async () => {
  const dir = path.join(c.node('ship1').dataDir, 'files')
  fs.mkdirSync(dir, { recursive: true })
  const sum = randomFile(path.join(dir, 'log.bin'), 20 * MIB)
  const dest = path.join(c.dir, 'pulled.bin')
  const run = cp(c, 'central', ['--rate', '6m', `ship1:${dir}/log.bin`, dest], 180_000)
  await until(c.node('ship1').socket, running(0.3))
  await c.node('ship1').proc!.stop('SIGKILL')
  await c.start('ship1')
  const r = await run
  assert.is(r.code, 0, r.stderr + JSON.stringify(r.lines.slice(-3)))
  assert.is(sha256Of(dest), sum)
  assert.equal(partials(c.dir), [])
  // It went on from where it was: most chunks were not sent twice.
  const sent = (await transfersOf(c.node('ship1').socket))[0]!
  assert.ok(sent.resent < sent.size / 2, `resent ${sent.resent} of ${sent.size}`)
})

test('files - a push completes while the receiver is SIGKILLed and restarted', async () => {
  const src = path.join(c.dir, 'fw.bin')
  const sum = randomFile(src, 20 * MIB)
  const dir = path.join(c.node('ship1').dataDir, 'files')
  const run = cp(c, 'central', ['--rate', '6m', src, `ship1:${dir}/fw.bin`], 180_000)
  await until(c.node('ship1').socket, (t) => t.state === 'receiving' && t.bytes >= t.size * 0.3)
  await c.node('ship1').proc!.stop('SIGKILL')
  await c.start('ship1')
  const r = await run
  assert.is(r.code, 0, r.stderr + JSON.stringify(r.lines.slice(-3)))
  assert.is(sha256Of(path.join(dir, 'fw.bin')), sum)
  assert.equal(partials(dir), [])
})

test('files - a push completes after the sender is SIGKILLed and restarted (outpost transfers shows it done)', async () => {
  const src = path.join(c.dir, 'img.bin')
  const sum = randomFile(src, 20 * MIB)
  const dir = path.join(c.node('ship1').dataDir, 'files')
  const run = cp(c, 'central', ['--rate', '6m', src, `ship1:${dir}/img.bin`], 180_000)
  await until(c.node('central').socket, running(0.3))
  await c.node('central').proc!.stop('SIGKILL')
  await run
  await c.start('central')
  await until(c.node('central').socket, (t) => t.state === 'done', 120_000)
  assert.is(sha256Of(path.join(dir, 'img.bin')), sum)
  assert.equal(partials(dir), [])
})

test.run()
