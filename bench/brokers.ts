/**
 * `npm run bench -- mqtt` / `-- nats` (`-- brokers`: both): events node A → node B through a
 * real broker, each node its own process with its durable outbox, against the raw client's
 * publish → subscribe rate through the same broker in the same run (MQTT: QoS 1 with the same
 * window of 1000; NATS: plain publish). 200-byte payloads, 20k of them on both sides. Then the
 * same count of acknowledged messages (B records each receipt, ACKs it, A removes it from its
 * outbox), against the same baseline. CPU (user + system, /proc) per message of each process
 * for both rounds, as bench/tcp.ts prints it.
 *
 * The baseline: 20k raw messages take 0.1–0.6 s, short enough for one scheduling hiccup on a
 * shared machine to halve it. So it runs three times, before, between and after outpost's
 * rounds, and the best of the three (the fastest rate, the least CPU) is the baseline: a
 * baseline never made slower by the repetition, and less swayed by the load of the moment.
 * Both nodes first move 2,000 events unmeasured (JIT warm-up); the raw runs' first serves so. The
 * events round runs once more at the end (`.warm`): by then V8 has compiled the message path, which
 * in the first round costs A and B a fifth of their CPU on its compiler threads.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import mqtt from 'mqtt'
import { connect } from 'nats'
import { Cluster, sendVia, status, type Kind } from '../test/fixtures/cluster'
import { CpuMeter, cpuMsOf } from './proc-stats'
import { brokerCounts, nodeSyncs, type Counts } from './broker-counts'
import type { BenchResult } from './result'

const N = 20_000
/** Events both nodes move first, unmeasured. */
const WARM_UP = 2_000
/** BENCH_BROKERS_BIN: another build's bin/outpost.cjs for the nodes (the alternating before/after runs); default this checkout's. */
const BIN = process.env.BENCH_BROKERS_BIN || undefined
const PROFILING = /--cpu-prof|--perf-basic-prof/.test(process.env.OUTPOST_TEST_NODE_ARGS ?? '')
/**
 * BENCH_BROKERS_COUNTS=1: per round, on standard error, what crossed the broker (publishes per
 * message from A and from B: nats-server's /connz; mosquitto keeps no per-client count) and the fdatasync and
 * fsync calls of A and B per message and the time their fdatasyncs took (bench/sync-counter.cjs,
 * preloaded into the nodes; its files go in a temporary directory removed at exit).
 */
const COUNTS = process.env.BENCH_BROKERS_COUNTS === '1'
if (COUNTS && process.env.BENCH_COUNTS_DIR === undefined) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-counts-'))
  process.env.BENCH_COUNTS_DIR = dir
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
}
if (COUNTS) {
  process.env.OUTPOST_TEST_NODE_ARGS = `${process.env.OUTPOST_TEST_NODE_ARGS ?? ''} --require ${path.join(__dirname, 'sync-counter.cjs')}`
}
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
    const out: BenchResult[] = []
    try {
      await c.startServer()
      await c.start('central', true, {}, BIN)
      const a = await c.start('nodeA', true, {}, BIN)
      const b = await c.start('nodeB', true, {}, BIN)
      const url = c.broker!.url
      const user = kind === 'mqtt' ? { username: 'central', password: c.node('central').token } : { username: 'outpost', password: 'nats-test-secret' }
      const brokerPid = c.broker!.child!.pid!
      const broker = kind === 'mqtt' ? 'mosquitto' : 'nats-server'
      const raws = [await raw(kind, url, user, N, brokerPid)]
      // Events (ackTimeout 0) that nodeB appends to one file, as log shipping does.
      const file = path.join(c.node('nodeB').dataDir, 'bench', 'nodeA', 'events.log')
      const msg = { toNode: 'nodeB', method: 'reply.file.append', directory: 'bench', fileName: 'events.log', ackTimeout: 0, data: 'x'.repeat(199) + '\n' }
      const lineCount = (): number => (fs.existsSync(file) ? fs.statSync(file).size / 200 : 0)
      // nodeB must accept nodeA's messages (the first lets it, for this run); then the warm-up.
      await sendVia(c.node('nodeA').socket, [msg], { wait: false })
      await sendVia(c.node('nodeA').socket, Array.from({ length: WARM_UP }, () => msg), { wait: false, ms: 60_000 })
      const warm = Date.now()
      while (lineCount() < WARM_UP + 1 && Date.now() - warm < 60_000) await sleep(20)

      const counted = async (): Promise<Counts> => {
        const p = await brokerCounts(c.broker!, kind, a.child.pid!, b.child.pid!)
        const sa = await nodeSyncs(a.child.pid!)
        const sb = await nodeSyncs(b.child.pid!)
        return [...p, sa.fdatasync, sa.fsync, sb.fdatasync, sb.fsync, sa.fdatasyncMs, sb.fdatasyncMs]
      }
      /** `n` messages like `m` submitted at once to A; done when B has them all (and, `acked`, A's outbox is empty). */
      const measure = async (m: typeof msg, acked: boolean): Promise<{ got: number; rate: number; us: Record<string, number>; th: Record<string, { main: number; other: number }>; left: number }> => {
        const before = lineCount()
        const cpu = new CpuMeter({ A: a.child.pid!, broker: brokerPid, B: b.child.pid! })
        const counts0 = COUNTS ? await counted() : undefined
        const started = performance.now()
        const mono = process.hrtime.bigint()
        await sendVia(c.node('nodeA').socket, Array.from({ length: N }, () => m), { wait: false, ms: 120_000 })
        const end = Date.now() + 180_000
        while ((lineCount() < before + N || (acked && (await status(c.node('nodeA').socket)).outbox.count > 0)) && Date.now() < end) await sleep(acked ? 20 : 10)
        const got = lineCount() - before
        const rate = got / ((performance.now() - started) / 1000)
        // With --cpu-prof, where the round lies in the nodes' profiles (their timestamps are this monotonic clock, in µs).
        if (PROFILING) process.stderr.write(`bench: ${kind} ${acked ? 'acknowledged' : 'events'} round ${mono / 1000n}..${process.hrtime.bigint() / 1000n} µs (monotonic)\n`)
        if (counts0 !== undefined) {
          const diff = ((await counted()) as number[]).map((v, i) => v - (counts0 as number[])[i]!)
          const d = diff.map((v) => v / Math.max(got, 1))
          const f = (v: number): string => v.toFixed(4)
          process.stderr.write(`bench: ${kind} ${acked ? 'acknowledged' : 'events'} counts a message: publishes A ${f(d[0]!)} B ${f(d[1]!)}; A fdatasync ${f(d[3]!)} fsync ${f(d[4]!)}; B fdatasync ${f(d[5]!)} fsync ${f(d[6]!)}; waiting for fdatasync (call to callback, summed) A ${diff[7]!.toFixed(0)} ms, B ${diff[8]!.toFixed(0)} ms of the round's ${(performance.now() - started).toFixed(0)}\n`)
        }
        return { got, rate, us: cpu.perMessage(Math.max(got, 1)), th: cpu.threadsPerMessage(Math.max(got, 1)), left: (await status(c.node('nodeA').socket)).outbox.count }
      }
      const ev = await measure(msg, false)
      raws.push(await raw(kind, url, user, N, brokerPid))
      // The same count acknowledged: done when B has them all and A's outbox is empty again.
      const ack = await measure({ ...msg, ackTimeout: 30 }, true)
      raws.push(await raw(kind, url, user, N, brokerPid))
      // The events once more on the same processes (their third round): what warm ones do, with
      // V8's compiling of the message path done (in the first round it is a fifth of A's and B's CPU).
      const warmEv = await measure(msg, false)

      const base = Math.max(...raws.map((r) => r.rate))
      const baseCpu = Math.min(...raws.map((r) => r.cpuUs))
      const runs = `${raws.map((r) => Math.round(r.rate).toLocaleString('en-US')).join(' / ')} msg/s, ${raws.map((r) => r.cpuUs.toFixed(1)).join(' / ')} µs a message (before, between, after)`
      // The broker's side of Nagle (test/fixtures/brokers.ts; docs/transports.md advises set_tcp_nodelay true).
      const nagle = kind === 'mqtt' ? (process.env.OUTPOST_TEST_MOSQUITTO_NAGLE === '1' ? ', mosquitto with Nagle on (its default)' : ', mosquitto with set_tcp_nodelay true') : ''
      const how = `the raw client publish→subscribe through the same broker (${kind === 'mqtt' ? 'QoS 1, window 1000' : 'plain publish'}${nagle}), ${N} 200-byte payloads, best of three runs: ${runs}`
      const per = (r: { us: Record<string, number>; th: Record<string, { main: number; other: number }> }): string =>
        `A ${r.us.A} µs, ${broker} ${r.us.broker} µs, B ${r.us.B} µs; main thread / other threads (V8's compiler and GC workers, libuv's pool): A ${r.th.A!.main} / ${r.th.A!.other}, B ${r.th.B!.main} / ${r.th.B!.other}`
      out.push({
        name: `${kind}.events.AtoB`, value: round(ev.rate), unit: 'msg/s', baseline: round(base), ratio: round(ev.rate / base, 2),
        note: `${ev.got} of ${N} 200-byte events A→${broker}→B, durable in A's outbox, appended to a file by B; A's outbox holds ${ev.left} after; baseline: ${how}`,
      }, {
        name: `${kind}.cpu.perMessage`, value: ev.us.total!, unit: 'µs', baseline: round(baseCpu), ratio: round(baseCpu / ev.us.total!, 2),
        note: `CPU (user + system, /proc/PID/stat) per message over the events run: ${per(ev)}; baseline: the raw publisher, broker and subscriber per message (best of three)`,
      }, {
        name: `${kind}.messages.AtoB`, value: round(ack.rate), unit: 'msg/s', baseline: round(base), ratio: round(ack.rate / base, 2),
        note: `${ack.got} of ${N} acknowledged 200-byte messages A→B (receipt durable at B, then ACKed; done when A's outbox is empty: ${ack.left} left); baseline: as above`,
      }, {
        name: `${kind}.cpu.perMessage.acked`, value: ack.us.total!, unit: 'µs', baseline: round(baseCpu), ratio: round(baseCpu / ack.us.total!, 2),
        note: `CPU per message over the acknowledged run: ${per(ack)}; baseline: as above`,
      }, {
        name: `${kind}.events.AtoB.warm`, value: round(warmEv.rate), unit: 'msg/s', baseline: round(base), ratio: round(warmEv.rate / base, 2),
        note: `the events round once more on the same A and B after the acknowledged one (their third round of ${N}: warm; the first is ${kind}.events.AtoB); baseline: as above`,
      }, {
        name: `${kind}.cpu.perMessage.warm`, value: warmEv.us.total!, unit: 'µs', baseline: round(baseCpu), ratio: round(baseCpu / warmEv.us.total!, 2),
        note: `CPU per message over that warm events round: ${per(warmEv)}; baseline: as above`,
      })
    } finally {
      await c.destroy()
    }
    yield* out
  }
}
