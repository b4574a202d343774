import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseConfig } from '../src/config'
import { minionTime } from '../src/log-shipper'
import { Cluster, status } from './fixtures/cluster'
import { configure } from './fixtures/configure'
import { throwsCode } from './helpers'


const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** The message field of each shipped line. */
function shipped(file: string): string[] {
  if (!fs.existsSync(file)) return []
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split('|').slice(3).join('|'))
}

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await sleep(50)
  }
}

const append = (file: string, from: number, to: number, tag: string): string[] => {
  const lines = Array.from({ length: to - from }, (_, i) => `${tag} line ${from + i} ${'x'.repeat((from + i) % 37)}`)
  fs.appendFileSync(file, lines.map((l) => l + '\n').join(''))
  return lines
}

test('logs - minion time format; a relative path or an unknown key is a config error', () => {
  assert.match(minionTime(new Date()), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d$/)
  throwsCode(() => parseConfig('logs:\n  - { path: app.log }\n', 'outpost.yaml'), 'config_invalid', 'logs.0.path', 'absolute')
  throwsCode(() => parseConfig('logs:\n  - { path: /var/log/app.log, intervl: 5 }\n', 'outpost.yaml'), 'config_invalid', 'logs.0.intervl')
  throwsCode(() => parseConfig('logs:\n  - { toNode: central }\n', 'outpost.yaml'), 'config_invalid', 'path')
  assert.equal(parseConfig('logs:\n  - { path: /var/log/app.log, startAt: start }\n', 'outpost.yaml').logs, [{ path: '/var/log/app.log', startAt: 'start' }])
})

test('logs - lines reach central once each, in order, across rotation, truncation, kill -9 and rotation while down', async () => {
  const c = await Cluster.create(['ship1'])
  const logDir = path.join(c.dir, 'applogs')
  fs.mkdirSync(logDir)
  const log = path.join(logDir, 'app.log')
  try {
    configure(c, 'ship1', { logs: [{ path: log, startAt: 'start', interval: 100, maxBatchBytes: 1024, directory: 'shipped', fileName: 'app.log', level: 'info' }] })
    const out = path.join(c.node('central').dataDir, 'shipped', 'ship1', 'app.log')
    const expected: string[] = []
    expected.push(...append(log, 0, 40, 'a'))  // before the node starts: startAt start ships them
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    expected.push(...append(log, 40, 120, 'a'))
    await until('the first 120 lines', () => shipped(out).length >= 120)
    const first = fs.readFileSync(out, 'utf8').split('\n')[0]!
    assert.match(first, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d\|app\.log\|info\|a line 0 $/)

    // Rotation by rename + a new file, while running; the old file gets a last line after the rename.
    fs.renameSync(log, `${log}.1`)
    expected.push(...append(`${log}.1`, 120, 125, 'a'))
    expected.push(...append(log, 0, 30, 'b'))
    await until('after rotation', () => shipped(out).length >= expected.length)

    // Truncation (copytruncate style).
    fs.truncateSync(log, 0)
    await sleep(400)
    expected.push(...append(log, 0, 10, 'c'))
    await until('after truncation', () => shipped(out).length >= expected.length)

    // kill -9 while lines keep coming, then more lines and a rotation while the node is down.
    expected.push(...append(log, 10, 200, 'c'))
    await sleep(150)
    await c.node('ship1').proc!.stop('SIGKILL')
    expected.push(...append(log, 200, 260, 'c'))
    fs.renameSync(log, `${log}.2`)
    expected.push(...append(log, 0, 50, 'd'))
    await c.start('ship1')
    expected.push(...append(log, 50, 80, 'd'))
    await until('after the restart', () => shipped(out).length >= expected.length)
    await sleep(1000) // a duplicate would show up now
    assert.equal(shipped(out), expected)
    const s = await status(c.node('ship1').socket)
    assert.is(s.outbox.count, 0)
  } finally {
    await c.destroy()
  }
})

test('logs - startAt end (the default) ships only lines written after the node first saw the file', async () => {
  const c = await Cluster.create(['ship1'])
  const log = path.join(c.dir, 'old.log')
  try {
    fs.writeFileSync(log, 'old line\n')
    configure(c, 'ship1', { logs: [{ path: log, interval: 100 }] })
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    await c.node('ship1').proc!.waitFor(/logs: shipping .*old\.log from offset 9/)
    fs.appendFileSync(log, 'new line\n')
    const out = path.join(c.node('central').dataDir, 'logs', 'ship1', 'old.log')
    await until('the new line', () => shipped(out).length >= 1)
    await sleep(500)
    assert.equal(shipped(out), ['new line'])
  } finally {
    await c.destroy()
  }
})


test('logs - a batch left pending by a crash is sent again under its id: once if it was delivered, once if it was not', async () => {
  const c = await Cluster.create(['ship1'])
  const log = path.join(c.dir, 'p.log')
  try {
    configure(c, 'ship1', { logs: [{ path: log, startAt: 'start', interval: 100, maxBatchBytes: 1024 }] })
    const expected = append(log, 0, 5, 'p')
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const out = path.join(c.node('central').dataDir, 'logs', 'ship1', 'p.log')
    await until('the first batch', () => shipped(out).length >= 5)
    const m = /logs: queued (\w+): bytes 0-(\d+) of /.exec(c.node('ship1').proc!.output)
    assert.ok(m, c.node('ship1').proc!.output.slice(-2000))
    await c.node('ship1').proc!.stop('SIGKILL')
    // As if the node died after queueing the first batch but before moving the position.
    const stateDir = path.join(c.node('ship1').dataDir, 'logs')
    const stateFile = path.join(stateDir, fs.readdirSync(stateDir).find((f) => f.endsWith('.json'))!)
    const ino = fs.statSync(log).ino
    fs.writeFileSync(stateFile, JSON.stringify({ ino, offset: 0, pending: { id: m[1], end: Number(m[2]) } }))
    expected.push(...append(log, 5, 8, 'p'))
    await c.start('ship1')
    await until('the lines after the restart', () => shipped(out).length >= 8)
    await sleep(800)
    assert.equal(shipped(out), expected)
    // And one whose enqueue never happened (a fresh id): its bytes are shipped, once.
    await c.node('ship1').proc!.stop('SIGKILL')
    const size = fs.statSync(log).size
    expected.push(...append(log, 8, 12, 'p'))
    fs.writeFileSync(stateFile, JSON.stringify({ ino, offset: size, pending: { id: '01JAAAAAAAAAAAAAAAAAAAAAAA', end: fs.statSync(log).size } }))
    await c.start('ship1')
    await until('the pending batch', () => shipped(out).length >= 12)
    await sleep(800)
    assert.equal(shipped(out), expected)
  } finally {
    await c.destroy()
  }
})

test.run()
