/**
 * The transport contract suite: what every transport must do, run unchanged over the outpost
 * hub (tcp), a real mosquitto (mqtt) and a real nats-server (nats). One file per transport
 * (tcp.test.ts, mqtt.test.ts, nats.test.ts) calls contract(kind). Real agent processes on
 * loopback; kills are SIGKILL.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, editYaml, section, sendVia, status, type Kind } from '../fixtures/cluster'

/** A command that records each run in a file, so "ran twice" can be counted. */
export const recorder = (file: string, tag: string, sleep = 0): Record<string, unknown> =>
  ({ toNode: 'ship1', method: 'cli.run', methodArgs: [`echo ${tag} >> ${file}${sleep ? `; sleep ${sleep}` : ''}; echo done ${tag}`] })

export const runsOf = (file: string): Map<string, number> => {
  const m = new Map<string, number>()
  if (!fs.existsSync(file)) return m
  for (const l of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) m.set(l, (m.get(l) ?? 0) + 1)
  return m
}

/** Wait until at least n commands have recorded a run. */
export async function untilRuns(file: string, n: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (runsOf(file).size < n) {
    if (Date.now() > end) throw new Error(`only ${runsOf(file).size} of ${n} runs after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export function contract(kind: Kind): void {
  const name = (s: string): string => `${kind} - ${s}`

  test(name('a command runs on another node and its output comes back'), async () => {
    const c = await Cluster.create(['ship1'], {}, kind)
    try {
      await c.startServer()
      await c.start('central')
      await c.start('ship1')
      const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo hello; echo oops >&2; exit 3'] }])
      assert.is(r.replies.length, 1)
      const reply = r.replies[0]!
      assert.is(reply.data, 'hello\n')
      assert.is(reply.stderr, 'oops\n')
      assert.is(reply.exitCode, 3)
      assert.is(reply.fromNode, 'ship1')
      assert.is(reply.inReplyTo, r.accepted[0]!.id)
      // The default reply method wrote the SPEC layout file at the sender.
      const file = path.join(c.node('central').dataDir, 'replies', 'ship1', `${r.accepted[0]!.id}.log`)
      for (let i = 0; i < 50 && !fs.existsSync(file); i++) await sleep(50)
      assert.ok(fs.readFileSync(file, 'utf8').startsWith('hello\n'), file)
      // The CLI, as an operator runs it: output on stdout, exit 1 for a failed remote command.
      const cli = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, '--to', 'ship1', 'cli.run', '--', 'echo', 'from-cli'], { encoding: 'utf8' })
      assert.is(cli.stdout, 'from-cli\n', cli.stderr)
      assert.is(cli.status, 0)
      const bad = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, '--to', 'ship1', 'cli.run', '--', 'exit 5'], { encoding: 'utf8' })
      assert.is(bad.status, 1)
    } finally {
      await c.destroy()
    }
  })

  test(name('a node that is down when the command is sent gets it when it comes back, once'), async () => {
    // Few retries and a short ackTimeout: waiting for an offline node must spend none of them.
    const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 1, retries: 1, ttl: 120 } }, kind)
    try {
      await c.startServer()
      await c.start('central')
      const runs = path.join(c.dir, 'runs.log')
      // ship1 has been connected once, then went away (its broker session, if any, stays).
      const ship1 = await c.start('ship1')
      await ship1.stop('SIGKILL')
      await sleep(500)
      const waiting = sendVia(c.node('central').socket, [recorder(runs, 'late')], { ms: 40_000 })
      await sleep(4000)
      assert.not.ok(fs.existsSync(runs), 'nothing ran while ship1 was down')
      await c.start('ship1')
      const r = await waiting
      assert.is(r.replies.length, 1, JSON.stringify(r))
      assert.is(r.replies[0]!.error, undefined, JSON.stringify(r.replies[0]))
      assert.is(r.replies[0]!.data, 'done late\n')
      await sleep(1500)
      assert.equal([...runsOf(runs)], [['late', 1]])
    } finally {
      await c.destroy()
    }
  })

  test(name('kill -9 of the receiver while commands are in flight loses none and runs none twice'), async () => {
    const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 2, retries: 20, ttl: 120 } }, kind)
    try {
      await c.startServer()
      await c.start('central')
      const ship1 = await c.start('ship1')
      const runs = path.join(c.dir, 'runs.log')
      const N = 40
      // Staggered run times: at the kill some have finished, some are running.
      const waiting = sendVia(c.node('central').socket, Array.from({ length: N }, (_, i) => recorder(runs, `m${i}`, (i % 4) * 0.5)), { ms: 60_000 })
      await untilRuns(runs, 10)
      await ship1.stop('SIGKILL')
      const before = runsOf(runs).size
      await c.start('ship1')
      const r = await waiting
      const byRequest = new Map<string, Record<string, unknown>[]>()
      for (const rep of r.replies) byRequest.set(String(rep.inReplyTo), [...(byRequest.get(String(rep.inReplyTo)) ?? []), rep])
      assert.is(byRequest.size, N, `every message has an outcome (${byRequest.size} of ${N})`)
      for (const [id, reps] of byRequest) assert.is(reps.length, 1, `${id} has exactly one outcome`)
      const counts = runsOf(runs)
      for (const [tag, n] of counts) assert.is(n, 1, `${tag} ran ${n} times`)
      let interrupted = 0
      for (const [i, a] of r.accepted.entries()) {
        const rep = byRequest.get(a.id)![0]!
        const err = rep.error as { code: string } | undefined
        if (err) {
          assert.is(err.code, 'interrupted', JSON.stringify(rep))
          interrupted++
        } else {
          assert.is(rep.data, `done m${i}\n`)
          assert.is(counts.get(`m${i}`), 1, `m${i} replied but did not run exactly once`)
        }
      }
      assert.ok(before > 0, 'the kill landed after some had run')
      console.log(`  ${kind} kill -9: ${before} ran before the kill, ${interrupted} interrupted, ${N - interrupted} completed`)
    } finally {
      await c.destroy()
    }
  })

  test(name('a hub or broker restart mid-stream loses nothing'), async () => {
    const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 2, retries: 20, ttl: 120 } }, kind)
    try {
      const server = await c.startServer()
      await c.start('central')
      await c.start('ship1')
      const runs = path.join(c.dir, 'runs.log')
      const N = 60
      const waiting = sendVia(c.node('central').socket, Array.from({ length: N }, (_, i) => recorder(runs, `h${i}`, 0.05)), { ms: 90_000 })
      await untilRuns(runs, 6)
      await server.stop('SIGKILL')
      const mid = runsOf(runs).size
      await sleep(500)
      await c.startServer()
      const r = await waiting
      const ids = new Set(r.replies.map((x) => String(x.inReplyTo)))
      assert.is(ids.size, N, `${ids.size} of ${N} replies`)
      assert.is(r.replies.length, N, 'one reply each')
      for (const rep of r.replies) assert.is(rep.error, undefined, JSON.stringify(rep))
      const counts = runsOf(runs)
      assert.is(counts.size, N)
      for (const [tag, n] of counts) assert.is(n, 1, `${tag} ran ${n} times`)
      console.log(`  ${kind} restart: ${mid} of ${N} had run when the server was killed`)
    } finally {
      await c.destroy()
    }
  })

  test(name('a large reply (over 1 MiB) comes back whole'), async () => {
    const c = await Cluster.create(['ship1'], {}, kind)
    const size = 1_500_000
    try {
      // The default output cap (1 MiB) would cut the output short: raise it on ship1.
      editYaml(c.node('ship1').config, (doc) => { section(doc, 'methods').outputCap = 4 * 1024 * 1024 })
      await c.startServer()
      await c.start('central')
      await c.start('ship1')
      const r = await sendVia(c.node('central').socket, [
        { toNode: 'ship1', method: 'cli.run', methodArgs: [`head -c ${size} /dev/zero | tr '\\0' a`] },
      ], { ms: 30_000 })
      assert.is(r.replies.length, 1, `one reply, got ${JSON.stringify(r.replies).slice(0, 2000)}`)
      const reply = r.replies[0]!
      assert.is(reply.error, undefined, JSON.stringify(reply.error))
      assert.is(reply.exitCode, 0)
      const s = reply.data as string
      assert.is(s.length, size, `the reply data has ${size} characters, got ${s.length}`)
      assert.ok(/^a*$/.test(s), 'every character is an a')
    } finally {
      await c.destroy()
    }
  })

  test(name('10,000 messages arrive once each, in order'), async () => {
    const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 10, retries: 20, ttl: 600 } }, kind)
    try {
      await c.startServer()
      await c.start('central')
      await c.start('ship1')
      const N = 10_000
      // reply.file.append as the method itself: ship1 appends each message's data to one file.
      const msgs = Array.from({ length: N }, (_, i) => ({ toNode: 'ship1', method: 'reply.file.append', directory: 'seq', fileName: 'n.log', data: `${i}\n` }))
      const r = await sendVia(c.node('central').socket, msgs, { wait: false, ms: 60_000 })
      assert.is(r.accepted.length, N)
      const file = path.join(c.node('ship1').dataDir, 'seq', 'central', 'n.log')
      const end = Date.now() + 120_000
      let lines: string[] = []
      for (;;) {
        lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : []
        if (lines.length >= N && (await status(c.node('central').socket)).outbox.count === 0) break
        if (Date.now() > end) throw new Error(`${lines.length} of ${N} arrived`)
        await sleep(200)
      }
      assert.is(lines.length, N, 'each exactly once')
      const firstWrong = lines.findIndex((l, i) => l !== String(i))
      assert.is(firstWrong, -1, `in order (line ${firstWrong} is ${lines[firstWrong]})`)
    } finally {
      await c.destroy()
    }
  })

  test(name('wrong credentials give a clear error, and the node keeps its messages'), async () => {
    const c = await Cluster.create(['ship1'], {}, kind)
    try {
      editYaml(c.node('ship1').config, (doc) => {
        const t = section(doc, 'transport')
        if (kind === 'tcp') t.token = 'not-the-token'
        else if (kind === 'mqtt') section(t, 'mqtt').password = 'not-the-password'
        else section(t, 'nats').pass = 'not-the-password'
      })
      await c.startServer()
      const ship1 = await c.start('ship1', false)
      await ship1.waitFor(/auth_failed/, 15_000)
      assert.match(ship1.output, /auth_failed[^\n]*(credentials|token)/, 'the log says the credentials were refused')
      const s = await status(c.node('ship1').socket)
      assert.is(s.connected, false)
      // What is submitted meanwhile is kept, not lost.
      const r = await sendVia(c.node('ship1').socket, [{ toNode: 'central', method: 'node.ping' }], { wait: false })
      assert.is(r.accepted.length, 1)
      assert.is((await status(c.node('ship1').socket)).outbox.count >= 1, true)
    } finally {
      await c.destroy()
    }
  })
}
