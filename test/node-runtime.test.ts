import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, sendVia } from './fixtures/cluster'

/** A command that records each run in a file, so "ran twice" can be counted. */
const recorder = (file: string, tag: string, sleep = 0): Record<string, unknown> =>
  ({ toNode: 'ship1', method: 'cli.run', methodArgs: [`echo ${tag} >> ${file}${sleep ? `; sleep ${sleep}` : ''}; echo done ${tag}`] })

/** Wait until at least n commands have recorded a run. */
async function untilRuns(file: string, n: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (runsOf(file).size < n) {
    if (Date.now() > end) throw new Error(`only ${runsOf(file).size} of ${n} runs after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const runsOf = (file: string): Map<string, number> => {
  const m = new Map<string, number>()
  if (!fs.existsSync(file)) return m
  for (const l of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) m.set(l, (m.get(l) ?? 0) + 1)
  return m
}

test('node - a command runs on another node and its output comes back', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
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
    for (let i = 0; i < 50 && !fs.existsSync(file); i++) await new Promise((res) => setTimeout(res, 50))
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

test('node - a node that is down when the command is sent gets it when it comes back, once', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    const runs = path.join(c.dir, 'runs.log')
    const waiting = sendVia(c.node('central').socket, [recorder(runs, 'late')], { ms: 30_000 })
    await new Promise((r) => setTimeout(r, 1500))
    assert.not.ok(fs.existsSync(runs), 'nothing ran while ship1 was down')
    await c.start('ship1')
    const r = await waiting
    assert.is(r.replies.length, 1)
    assert.is(r.replies[0]!.data, 'done late\n')
    await new Promise((res) => setTimeout(res, 1500))
    assert.equal([...runsOf(runs)], [['late', 1]])
    // Offline waiting spent no attempts: the message was not given up although retries is low.
  } finally {
    await c.destroy()
  }
})

test('node - kill -9 of the receiver while commands are in flight loses none and runs none twice', async () => {
  const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 2, retries: 20, ttl: 120 } })
  try {
    await c.startHub()
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
    assert.ok(interrupted > 0, `the kill landed while methods ran (${interrupted} of ${N} interrupted)`)
    console.log(`  kill -9: ${before} ran before the kill, ${interrupted} interrupted, ${N - interrupted} completed`)
  } finally {
    await c.destroy()
  }
})

test('node - a hub restart mid-stream loses nothing', async () => {
  const c = await Cluster.create(['ship1'], { delivery: { ackTimeout: 2, retries: 20, ttl: 120 } })
  try {
    const hub = await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const runs = path.join(c.dir, 'runs.log')
    const N = 60
    const waiting = sendVia(c.node('central').socket, Array.from({ length: N }, (_, i) => recorder(runs, `h${i}`, 0.05)), { ms: 60_000 })
    await untilRuns(runs, 6)
    await hub.stop('SIGKILL')
    const mid = runsOf(runs).size
    await new Promise((r) => setTimeout(r, 500))
    await c.startHub()
    const r = await waiting
    const ids = new Set(r.replies.map((x) => String(x.inReplyTo)))
    assert.is(ids.size, N, `${ids.size} of ${N} replies`)
    assert.is(r.replies.length, N, 'one reply each')
    for (const rep of r.replies) assert.is(rep.error, undefined, JSON.stringify(rep))
    const counts = runsOf(runs)
    assert.is(counts.size, N)
    for (const [tag, n] of counts) assert.is(n, 1, `${tag} ran ${n} times`)
    console.log(`  hub restart: ${mid} of ${N} had run when the hub was killed`)
  } finally {
    await c.destroy()
  }
})

test('node - a method that outlives its methodTimeout yields an error reply, and the node keeps working', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['sleep 30'], methodTimeout: 1 }])
    assert.is((r.replies[0]!.error as { code: string }).code, 'method_timeout')
    const again = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }])
    assert.match(String(again.replies[0]!.data), /^pong ship1/)
  } finally {
    await c.destroy()
  }
})

test('node - a call the receiver does not allow is denied, and the CLI exits 3', async () => {
  const c = await Cluster.create(['ship1', 'ship2'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    await c.start('ship2')
    // ship2 is not central: by default ship1 lets it deliver replies but not run commands.
    const cli = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('ship2').config, '--to', 'ship1', 'cli.run', '--', 'echo no'], { encoding: 'utf8' })
    assert.is(cli.status, 3, cli.stderr)
    assert.match(cli.stderr, /denied/)
    assert.is(cli.stdout, '')
  } finally {
    await c.destroy()
  }
})

test('node - messages submitted as a raw steward JSON array on the socket are accepted', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const net = await import('node:net')
    const out = await new Promise<string>((resolve, reject) => {
      const s = net.connect(c.node('central').socket)
      let buf = ''
      s.on('data', (d) => { buf += d })
      s.on('end', () => resolve(buf))
      s.on('error', reject)
      s.end(JSON.stringify([{ toNodes: ['ship1'], method: 'REQCliCommand', methodArgs: ['bash', '-c', 'echo steward'], ACKTimeout: 5, replyMethod: 'REQToFileAppend', directory: 'st', fileName: 'out.txt' }]))
    })
    const acc = (JSON.parse(out.trim()) as { accepted: { id: string }[] }).accepted
    assert.is(acc.length, 1)
    const file = path.join(c.node('central').dataDir, 'st', 'ship1', 'out.txt')
    for (let i = 0; i < 50 && !fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 100))
    assert.is(fs.readFileSync(file, 'utf8'), 'steward\n')
  } finally {
    await c.destroy()
  }
})

test('node - a second agent on the same data dir refuses to start, and central lists the nodes it heard', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const twin = spawnSync(process.execPath, [BIN, 'agent', '--config', c.node('ship1').config], { encoding: 'utf8', timeout: 15_000 })
    assert.is(twin.status, 1, twin.stderr)
    assert.match(twin.stderr, /locked/)
    let nodes: { name: string; online: boolean }[] = []
    for (let i = 0; i < 40; i++) {
      const r = spawnSync(process.execPath, [BIN, 'nodes', '--json', '--config', c.node('central').config], { encoding: 'utf8' })
      nodes = JSON.parse(r.stdout) as typeof nodes
      if (nodes.some((n) => n.name === 'ship1')) break
      await new Promise((res) => setTimeout(res, 100))
    }
    assert.ok(nodes.find((n) => n.name === 'ship1')?.online, JSON.stringify(nodes))
    // The first ship1 is untouched by its twin.
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }])
    assert.match(String(r.replies[0]!.data), /^pong ship1/)
  } finally {
    await c.destroy()
  }
})

test.run()
