/**
 * Replies to reply.file(.append) caught by a crash after their file was written, before the
 * inbox said they were done: a restart finds which landed and runs only the others again. A
 * turn's appends to one file go in one write (methods/reply-file.ts), so all of them land or
 * none: the file then ends with the lot, not with each one.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { replyFileAppend } from '../methods/reply-file'
import type { MethodContext } from '../src/method'
import { Outbox } from '../src/store/outbox'
import { encode, type Envelope } from '../src/wire/envelope'
import { ulid } from '../src/wire/ulid'
import { Bus, until } from './fixtures/inprocess'

const reply = (method: string, data: string): Envelope => ({
  id: ulid(), toNode: 'ship1', fromNode: 'central', method, inReplyTo: ulid(), directory: 'out', fileName: 'log.txt', data, createdAt: Date.now(),
})
const ctxOf = (env: Envelope, dataDir: string): MethodContext => ({ node: 'ship1', env, args: [], config: {} as MethodContext['config'], dataDir, signal: new AbortController().signal, log: () => {} })

/** ship1's store holds `envs` as received and started, none done; the reply file is written as their runs left it. */
async function caught(bus: Bus, envs: Envelope[], write: (dataDir: string) => Promise<unknown>): Promise<string> {
  const ship1 = await bus.start('ship1')
  const dataDir = ship1.dataDir
  await bus.stop('ship1')
  const ob = await Outbox.open({ dir: path.join(dataDir, 'outbox'), maxBytes: 1 << 26 })
  for (const env of envs) await ob.receive(env.id, env.fromNode, encode(env), { started: true })
  await ob.close()
  await write(dataDir)
  return path.join(dataDir, 'out', 'central', 'log.txt')
}

test('replies after a crash - appends written together, all landed: none is appended again', async () => {
  const bus = new Bus()
  try {
    const envs = ['one\n', 'two\n', 'three\n'].map((d) => reply('reply.file.append', d))
    // The three runs in one turn: one write of the three.
    const file = await caught(bus, envs, (dataDir) => Promise.all(envs.map((env) => replyFileAppend.run(ctxOf(env, dataDir)))))
    assert.is(fs.readFileSync(file, 'utf8'), 'one\ntwo\nthree\n')
    const ship1 = await bus.start('ship1')
    await until(() => ship1.node.outbox.inbox().length === 0, 10_000, 'the replies closed')
    assert.is(fs.readFileSync(file, 'utf8'), 'one\ntwo\nthree\n', 'each reply once')
  } finally {
    await bus.destroy()
  }
})

test('replies after a crash - of appends in order, those written before the crash landed, the rest are appended once, in order', async () => {
  const bus = new Bus()
  try {
    const envs = ['one\n', 'two\n', 'three\n', 'four\n'].map((d) => reply('reply.file.append', d))
    // The first two in one write; the crash before the others'.
    const file = await caught(bus, envs, (dataDir) => Promise.all(envs.slice(0, 2).map((env) => replyFileAppend.run(ctxOf(env, dataDir)))))
    const ship1 = await bus.start('ship1')
    await until(() => ship1.node.outbox.inbox().length === 0, 10_000, 'the replies closed')
    assert.is(fs.readFileSync(file, 'utf8'), 'one\ntwo\nthree\nfour\n')
  } finally {
    await bus.destroy()
  }
})

test('replies after a crash - appends before one the kill tore landed: only the torn one and those after it are appended again', async () => {
  const bus = new Bus()
  try {
    const envs = ['one\n', 'two\n', 'three\n', 'four\n'].map((d) => reply('reply.file.append', d))
    const file = await caught(bus, envs, async (dataDir) => {
      await Promise.all(envs.slice(0, 2).map((env) => replyFileAppend.run(ctxOf(env, dataDir))))
      // The next write torn by the kill (a write is cut at a page when a fatal signal comes).
      fs.appendFileSync(path.join(dataDir, 'out', 'central', 'log.txt'), 'thr')
    })
    const ship1 = await bus.start('ship1')
    await until(() => ship1.node.outbox.inbox().length === 0, 10_000, 'the replies closed')
    assert.is(fs.readFileSync(file, 'utf8'), 'one\ntwo\nthrthree\nfour\n')
  } finally {
    await bus.destroy()
  }
})

test.run()
