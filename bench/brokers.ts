/**
 * `npm run bench -- mqtt` / `-- nats` (`-- brokers`: both): events node A → node B through a
 * real broker, each node its own process with its durable outbox, against the raw client's
 * publish → subscribe rate through the same broker in the same run (MQTT: QoS 1 with the same
 * window of 1000; NATS: plain publish). 200-byte payloads. Then the same count of acknowledged
 * messages (B records each receipt, ACKs it, A removes it from its outbox), against the same
 * baseline.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import mqtt from 'mqtt'
import { connect } from 'nats'
import { Cluster, sendVia, status, type Kind } from '../test/fixtures/cluster'
import { CpuMeter, cpuMsOf } from './proc-stats'
import type { BenchResult } from './result'

const N = 20_000
const round = (n: number, d = 3): number => Number(n.toPrecision(d + 2))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** The raw client: a subscriber process, this process publishing; msg/s first to last message. */
async function raw(kind: 'mqtt' | 'nats', url: string, user: { username?: string; password?: string }, count: number, brokerPid: number): Promise<{ rate: number; cpuUs: number }> {
  const subject = kind === 'nats' ? 'bench.raw' : 'bench/raw'
  const sub = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'raw-sub.ts'), kind, url, subject, String(count)], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RAW_USER: user.username ?? '', RAW_PASS: user.password ?? '' },
  })
  let out = ''
  const lines = new Promise<string>((resolve) => sub.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('done')) resolve(out) }))
  while (!out.includes('ready')) {
    if (sub.exitCode !== null) throw new Error(`the raw subscriber exited with ${sub.exitCode}`)
    await sleep(20)
  }
  const payload = new Uint8Array(200).fill(120)
  const cpuNow = (): number => { const u = process.cpuUsage(); return cpuMsOf(sub.pid!) + cpuMsOf(brokerPid) + (u.user + u.system) / 1000 }
  const cpu0 = cpuNow()
  let closeRaw: () => Promise<unknown> = async () => {}
  if (kind === 'nats') {
    const nc = await connect({ servers: url, ...(user.username ? { user: user.username, pass: user.password! } : {}) })
    closeRaw = () => nc.close()
    for (let i = 0; i < count; i++) {
      nc.publish(subject, payload)
      if (i % 1000 === 999) await nc.flush()
    }
    await nc.flush()
    await lines
  } else {
    const c = mqtt.connect(url, { clientId: `raw-pub-${process.pid}`, ...(user.username ? { username: user.username, password: user.password! } : {}) })
    await new Promise((r) => c.once('connect', r))
    closeRaw = () => c.endAsync()
    let inflight = 0
    let wake: (() => void) | undefined
    for (let i = 0; i < count; i++) {
      while (inflight >= 1000) await new Promise<void>((r) => { wake = r })
      inflight++
      c.publish(subject, Buffer.from(payload), { qos: 1 }, () => { inflight--; wake?.(); wake = undefined })
    }
    await lines
  }
  const cpuUs = ((cpuNow() - cpu0) * 1000) / count
  await closeRaw()
  const ms = Number(/done ([\d.]+)/.exec(out)![1])
  return { rate: count / (ms / 1000), cpuUs }
}

export function brokerBenchmarks(kind: Extract<Kind, 'mqtt' | 'nats'>): () => AsyncIterable<BenchResult> {
  return async function* () {
    const c = await Cluster.create(['nodeA', 'nodeB'], { log: { level: 'warn' }, hello: { interval: 30 }, delivery: { ackTimeout: 30, retries: 3, ttl: 3600 } }, kind)
    try {
      await c.startServer()
      await c.start('central')
      const a = await c.start('nodeA')
      const b = await c.start('nodeB')
      const url = c.broker!.url
      const user = kind === 'mqtt' ? { username: 'central', password: c.node('central').token } : { username: 'outpost', password: 'nats-test-secret' }
      const brokerPid = c.broker!.child!.pid!
      const { rate: base, cpuUs: baseCpu } = await raw(kind, url, user, N, brokerPid)
      // Events (ackTimeout 0) that nodeB appends to one file, as log shipping does.
      const file = path.join(c.node('nodeB').dataDir, 'bench', 'nodeA', 'events.log')
      const msg = { toNode: 'nodeB', method: 'reply.file.append', directory: 'bench', fileName: 'events.log', ackTimeout: 0, data: 'x'.repeat(199) + '\n' }
      // nodeB must accept nodeA's messages: let it, for this run.
      await sendVia(c.node('nodeA').socket, [msg], { wait: false })
      const lineCount = (): number => (fs.existsSync(file) ? fs.statSync(file).size / 200 : 0)
      const warm = Date.now()
      while (lineCount() < 1 && Date.now() - warm < 5000) await sleep(20)
      const before = lineCount()
      const cpu = new CpuMeter({ A: a.child.pid!, broker: brokerPid, B: b.child.pid! })
      const started = performance.now()
      await sendVia(c.node('nodeA').socket, Array.from({ length: N }, () => msg), { wait: false, ms: 120_000 })
      const end = Date.now() + 180_000
      while (lineCount() < before + N && Date.now() < end) await sleep(10)
      const got = lineCount() - before
      const rate = got / ((performance.now() - started) / 1000)
      const us = cpu.perMessage(Math.max(got, 1))
      const left = await status(c.node('nodeA').socket)
      yield {
        name: `${kind}.events.AtoB`, value: round(rate), unit: 'msg/s', baseline: round(base), ratio: round(rate / base, 2),
        note: `${got} of ${N} 200-byte events A→${kind === 'mqtt' ? 'mosquitto' : 'nats-server'}→B, durable in A's outbox, appended to a file by B; baseline: the raw client publish→subscribe through the same broker (${kind === 'mqtt' ? 'QoS 1, window 1000' : 'plain publish'}); A's outbox holds ${left.outbox.count} after`,
      }
      yield {
        name: `${kind}.cpu.perMessage`, value: us.total!, unit: 'µs', baseline: round(baseCpu), ratio: round(baseCpu / us.total!, 2),
        note: `CPU (user + system, /proc/PID/stat) per message over the run above: A ${us.A} µs, ${kind === 'mqtt' ? 'mosquitto' : 'nats-server'} ${us.broker} µs, B ${us.B} µs; baseline: the raw publisher, broker and subscriber per message`,
      }
      // The same count acknowledged: done when B has them all and A's outbox is empty again.
      const acked = { ...msg, ackTimeout: 30 }
      const before2 = lineCount()
      const cpu2 = new CpuMeter({ A: a.child.pid!, broker: brokerPid, B: b.child.pid! })
      const started2 = performance.now()
      await sendVia(c.node('nodeA').socket, Array.from({ length: N }, () => acked), { wait: false, ms: 120_000 })
      const end2 = Date.now() + 180_000
      while ((lineCount() < before2 + N || (await status(c.node('nodeA').socket)).outbox.count > 0) && Date.now() < end2) await sleep(20)
      const got2 = lineCount() - before2
      const rate2 = got2 / ((performance.now() - started2) / 1000)
      const us2 = cpu2.perMessage(Math.max(got2, 1))
      const left2 = await status(c.node('nodeA').socket)
      yield {
        name: `${kind}.messages.AtoB`, value: round(rate2), unit: 'msg/s', baseline: round(base), ratio: round(rate2 / base, 2),
        note: `${got2} of ${N} acknowledged 200-byte messages A→B (receipt durable at B, then ACKed; done when A's outbox is empty: ${left2.outbox.count} left); CPU per message A ${us2.A} µs, broker ${us2.broker} µs, B ${us2.B} µs; baseline: the raw client as above`,
      }
    } finally {
      await c.destroy()
    }
  }
}
