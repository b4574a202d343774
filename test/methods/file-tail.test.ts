import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fileTail, { parseTailArgs, tailFile } from '../../methods/file-tail'
import { defaultConfig } from '../../src/config'
import type { MethodResult } from '../../src/method'
import { Cluster, sendVia } from '../fixtures/cluster'
import { throwsCode } from '../helpers'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-tail-'))
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }))

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A running tail: what it has yielded so far, and a way to stop it. */
function follow(file: string, fromStart = false): { text: () => string; until: (s: string) => Promise<void>; stop: () => Promise<MethodResult> } {
  const ac = new AbortController()
  let out = ''
  const gen = tailFile(file, fromStart, ac.signal, 50)
  const done = (async () => {
    for (let step = await gen.next(); ; step = await gen.next()) {
      if (step.done === true) return step.value
      out += step.value.toString('utf8')
    }
  })()
  return {
    text: () => out,
    until: async (s) => {
      const end = Date.now() + 10_000
      while (!out.includes(s)) {
        if (Date.now() > end) throw new Error(`tail never showed ${JSON.stringify(s)}; got ${JSON.stringify(out)}`)
        await sleep(20)
      }
    },
    stop: () => { ac.abort(); return done },
  }
}

test('file.tail - starts at the end by default and passes on complete lines as they are written', async () => {
  const file = path.join(tmp, 'a.log')
  fs.writeFileSync(file, 'old 1\nold 2\n')
  const t = follow(file)
  await sleep(500)
  fs.appendFileSync(file, 'new 1\nhalf')
  await t.until('new 1\n')
  await sleep(200)
  assert.is(t.text(), 'new 1\n', 'a partial line waits for its end')
  fs.appendFileSync(file, ' done\n')
  await t.until('half done\n')
  assert.equal(await t.stop(), { exitCode: 0 })
  assert.is(t.text(), 'new 1\nhalf done\n')
})

test('file.tail - --from-start reads what is there first', async () => {
  const file = path.join(tmp, 'b.log')
  fs.writeFileSync(file, 'one\ntwo\n')
  const t = follow(file, true)
  await t.until('two\n')
  fs.appendFileSync(file, 'three\n')
  await t.until('three\n')
  await t.stop()
  assert.is(t.text(), 'one\ntwo\nthree\n')
})

test('file.tail - after truncation it reads the file again from the start', async () => {
  const file = path.join(tmp, 'c.log')
  fs.writeFileSync(file, 'before truncation, a long line\n')
  const t = follow(file)
  await sleep(500)
  fs.appendFileSync(file, 'x1\n')
  await t.until('x1\n')
  fs.truncateSync(file, 0)
  await sleep(150)
  fs.appendFileSync(file, 'after\n')
  await t.until('after\n')
  await t.stop()
  assert.is(t.text(), 'x1\nafter\n')
})

test('file.tail - across rotation it finishes the old file, then follows the new one from its start', async () => {
  const file = path.join(tmp, 'd.log')
  fs.writeFileSync(file, '')
  const t = follow(file)
  await sleep(500)
  fs.appendFileSync(file, 'r1\n')
  await t.until('r1\n')
  // logrotate's create mode: rename, a last write to the old file, then a new file.
  fs.renameSync(file, `${file}.1`)
  fs.appendFileSync(`${file}.1`, 'r2 late in the old file\n')
  await sleep(150)
  fs.writeFileSync(file, 'n1\n')
  await t.until('n1\n')
  fs.appendFileSync(file, 'n2\n')
  fs.appendFileSync(`${file}.1`, 'not followed any more\n')
  await t.until('n2\n')
  await t.stop()
  assert.is(t.text(), 'r1\nr2 late in the old file\nn1\nn2\n')
})

test('file.tail - arguments: one absolute path, --from-start; a missing file is method_failed', async () => {
  assert.equal(parseTailArgs(['/var/log/x.log']), { file: '/var/log/x.log', fromStart: false })
  assert.equal(parseTailArgs(['--from-start', '/var/log/../log/x.log']), { file: '/var/log/x.log', fromStart: true })
  throwsCode(() => parseTailArgs(['x.log']), 'method_failed', 'absolute')
  throwsCode(() => parseTailArgs([]), 'method_failed', 'usage')
  throwsCode(() => parseTailArgs(['--lines', '/x']), 'method_failed')
  const config = defaultConfig()
  const gen = fileTail.run({ node: 'n', env: { id: 'x', toNode: 'n', fromNode: 'n', method: 'file.tail', createdAt: 0 }, args: [path.join(tmp, 'missing.log')], config, dataDir: tmp, signal: new AbortController().signal, log: () => {} })
  try {
    await gen.next()
    assert.unreachable('expected method_failed')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'method_failed')
    assert.match((err as Error).message, /does not exist/)
  }
})

test('file.tail - through a node: lines come back as numbered replies; methodTimeout ends it without an error', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const file = path.join(c.dir, 'app.log')
    // From the start of an empty file: the test need not know when the tail began.
    fs.writeFileSync(file, '')
    const waiting = sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'REQTailFile', methodArgs: ['--from-start', file], methodTimeout: 4 }])
    await sleep(300)
    for (let i = 1; i <= 5; i++) { fs.appendFileSync(file, `event ${i}\n`); await sleep(100) }
    const r = await waiting
    assert.equal(r.replies.map((x) => x.seq), r.replies.map((_, i) => i))
    const last = r.replies[r.replies.length - 1]!
    assert.is(last.final, true)
    assert.is(last.error, undefined, JSON.stringify(last.error))
    assert.is(last.exitCode, 0)
    assert.is(r.replies.map((x) => String(x.data ?? '')).join(''), 'event 1\nevent 2\nevent 3\nevent 4\nevent 5\n')
  } finally {
    await c.destroy()
  }
})

test.run()
