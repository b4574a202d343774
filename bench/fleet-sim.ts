/**
 * `npm run bench -- fleet-sim`: one hub and one central serving a simulated fleet. The hub and
 * central are real processes (`outpost hub`, `outpost agent`); the nodes are simulated by one
 * load-generator process (this one, bench/sim-fleet.ts) speaking the real wire protocol: a
 * hello with its own token, ACKs, replies with output, pings. For each fleet size N
 * (FLEET_SIZES, default 1000,5000) and transport (FLEET_KINDS, default tcp,nats):
 *
 *   connect  N nodes connect at once, until all are welcomed; baseline: N raw connections to a
 *            framed echo server, each until its first frame comes back (same run, same machine)
 *   rss      hub (or nats-server) and central, 2 s after the last welcome
 *   fanout   one cli.run request from central to all N, until central has ACKed every reply
 *            (central ACKs a reply once it is in its journal: durable); baseline: the target
 *
 * The `fleet` suite (real agents, bench/fleet.ts) measures what a real node costs; this one
 * measures how far one hub and one central go, at sizes no machine could run as agents.
 * The hub is configured for a fleet behind one address: hub.maxPendingPerAddress is N + 64.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import YAML from 'yaml'
import { hashToken } from '../src/hub'
import { encodeFrame, FrameDecoder } from '../src/wire/framing'
import { NatsServer } from '../test/fixtures/brokers'
import { BIN, freePort, Proc, sendVia, status, tmpDir } from '../test/fixtures/cluster'
import { CpuMeter, rssOf } from './proc-stats'
import type { BenchResult } from './result'
import { NatsSimFleet, TcpSimFleet, type SimFleet } from './sim-fleet'

const round = (n: number, d = 3): number => Number(n.toPrecision(d + 2))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const NATS_USER = { user: 'outpost', pass: 'fleet-sim-secret' }
/** How long a phase may take before the run at that size counts as broken. */
const PHASE_MS = Number(process.env.FLEET_PHASE_MS ?? 120_000)
const TARGET_S = 10

/** Baseline: `n` connections at once to a framed echo server, each until its hello-sized frame is back, in ms. */
async function rawConnects(n: number): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'echo-server.ts')], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))))
  const frame = encodeFrame({ t: 'hello', node: 'sim-000000', token: 'x'.repeat(40), version: '0.1.0', apiVersion: 1 })
  const socks: net.Socket[] = []
  const started = performance.now()
  await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port })
    socks.push(s)
    const dec = new FrameDecoder()
    s.on('connect', () => s.write(frame))
    s.on('data', (d: Buffer) => { if (dec.push(d).length > 0) resolve() })
    s.on('error', reject)
  })))
  const ms = performance.now() - started
  for (const s of socks) s.destroy()
  child.kill()
  return ms
}

interface Setup { dir: string; names: string[]; central: Proc; socket: string; server: { pid: number; what: string }; fleet: SimFleet; stop(): Promise<void> }

async function setUp(kind: 'tcp' | 'nats', n: number): Promise<Setup> {
  const dir = tmpDir('outpost-fleet-')
  const names = Array.from({ length: n }, (_, i) => `sim-${String(i + 1).padStart(6, '0')}`)
  const tokens = new Map(names.map((name) => [name, `tok-${name}-${Math.random().toString(36).slice(2)}`]))
  const centralToken = `tok-central-${Math.random().toString(36).slice(2)}`
  let hub: Proc | undefined
  let broker: NatsServer | undefined
  let transport: Record<string, unknown>
  let server: Setup['server']
  let fleet: SimFleet
  if (kind === 'tcp') {
    const port = await freePort()
    const hubConfig = path.join(dir, 'hub.yaml')
    const hashed = Object.fromEntries([['central', hashToken(centralToken)], ...names.map((name) => [name, hashToken(tokens.get(name)!)])])
    fs.writeFileSync(hubConfig, YAML.stringify({ dataDir: path.join(dir, 'hub'), hub: { listen: `127.0.0.1:${port}`, tokens: hashed, maxPendingPerAddress: n + 64 }, log: { level: 'warn' } }))
    hub = new Proc(['hub', '--config', hubConfig])
    await until(() => canConnect(port), 30_000)
    transport = { kind, servers: [`tcp://127.0.0.1:${port}`], token: centralToken }
    server = { pid: hub.child.pid!, what: 'hub' }
    fleet = new TcpSimFleet(names, 'central', port, tokens)
  } else {
    broker = await NatsServer.create({ user: NATS_USER })
    await broker.start()
    transport = { kind, servers: [broker.url], nats: NATS_USER }
    server = { pid: broker.child!.pid!, what: 'nats-server' }
    fleet = new NatsSimFleet(names, 'central', broker.url, NATS_USER)
  }
  const config = path.join(dir, 'central.yaml')
  const dataDir = path.join(dir, 'central')
  fs.writeFileSync(config, YAML.stringify({
    node: { name: 'central', central: 'central' }, dataDir, transport,
    hello: { interval: 30 }, log: { level: 'warn' }, delivery: { maxFanOut: Math.max(10_000, n) },
  }))
  const central = new Proc(['agent', '--config', config])
  const socket = path.join(dataDir, 'outpost.sock')
  await until(async () => (await status(socket).catch(() => undefined))?.connected === true, 30_000)
  return {
    dir, names, central, socket, server, fleet,
    stop: async () => {
      await fleet.close()
      await central.stop('SIGKILL')
      await hub?.stop('SIGKILL')
      await broker?.destroy()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

async function until(ok: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`fleet-sim: not ready within ${ms / 1000} s`)
    await sleep(50)
  }
}

function failures(f: SimFleet): string {
  return [...f.counts.failed].map(([why, k]) => `${k} ${why}`).join(', ') || 'none'
}

async function* oneRun(kind: 'tcp' | 'nats', n: number, rawMs: number): AsyncIterable<BenchResult> {
  const s = await setUp(kind, n)
  const tag = `fleet.${kind}.${n}`
  try {
    const { fleet } = s
    const pids = { [s.server.what]: s.server.pid, central: s.central.child.pid!, generator: process.pid }
    const cpu = new CpuMeter(pids)
    const t0 = performance.now()
    fleet.connectAll()
    let connectMs: number
    let broken = ''
    try {
      await fleet.until(() => fleet.counts.welcomed >= n, PHASE_MS, 'connect')
    } catch (err) {
      broken = ` BROKE: ${(err as Error).message}`
    } finally {
      connectMs = performance.now() - t0
    }
    const cpuConnect = cpu.perMessage(n)
    const ok = fleet.counts.welcomed === n
    yield {
      name: `${tag}.connect`, value: round(connectMs / 1000), unit: 's', baseline: round(rawMs / 1000), ratio: round(rawMs / connectMs, 2),
      note: `${fleet.counts.welcomed} of ${n} simulated nodes welcomed by the ${s.server.what}${broken} (tries refused or closed before a welcome, each tried again after a full-jitter delay: ${failures(fleet)}), all connecting at once from one process; CPU µs per node: ${JSON.stringify(cpuConnect)}; baseline: ${n} raw connections to a framed echo server, each until its first frame is back; target ${TARGET_S} s`,
    }
    if (!ok) return
    await sleep(2000)
    yield { name: `${tag}.${s.server.what}.rss`, value: round(rssOf(s.server.pid)), unit: 'MB', baseline: kind === 'tcp' ? 250 : null, ratio: kind === 'tcp' ? round(250 / rssOf(s.server.pid), 2) : null, note: `VmRSS with ${n} nodes (and central) connected${kind === 'tcp' ? '; baseline: the 250 MB target' : ''}` }
    yield { name: `${tag}.central.rss`, value: round(rssOf(s.central.child.pid!)), unit: 'MB', baseline: null, ratio: null, note: `VmRSS of central with ${n} nodes connected (it heard a node.hello from each)` }

    const fan = new CpuMeter(pids)
    const t1 = performance.now()
    const client = sendVia(s.socket, [{ toNodes: s.names, method: 'cli.run', methodArgs: ['true'] }], { wait: true, ms: PHASE_MS, allowUnknown: true })
      .then((r) => ({ ms: performance.now() - t1, replies: r.replies.length }))
    let durableMs: number
    broken = ''
    try {
      await fleet.until(() => fleet.counts.repliesAcked >= n, PHASE_MS, 'fan-out')
    } catch (err) {
      broken = ` BROKE: ${(err as Error).message}`
    } finally {
      durableMs = performance.now() - t1
    }
    const cpuFan = fan.perMessage(n)
    const c = await client
    yield {
      name: `${tag}.fanout`, value: round(durableMs / 1000), unit: 's', baseline: TARGET_S, ratio: round((TARGET_S * 1000) / durableMs, 2),
      note: `one cli.run to ${n} nodes until central ACKed every reply (${fleet.counts.repliesAcked} of ${n}; ${fleet.counts.requests} requests reached the nodes; ${fleet.counts.resent} replies resent)${broken}; the waiting client had ${c.replies} replies after ${round(c.ms / 1000)} s; CPU µs per node: ${JSON.stringify(cpuFan)}; central RSS after ${round(rssOf(s.central.child.pid!))} MB; baseline: the ${TARGET_S} s target`,
    }
  } finally {
    await s.stop()
  }
}

export async function* fleetSimBenchmarks(): AsyncIterable<BenchResult> {
  const sizes = (process.env.FLEET_SIZES ?? '1000,5000').split(',').map(Number)
  const kinds = (process.env.FLEET_KINDS ?? 'tcp,nats').split(',') as ('tcp' | 'nats')[]
  if (!fs.existsSync(BIN)) throw new Error('fleet-sim: build first (node packaging/build.mjs)')
  for (const n of sizes) {
    const rawMs = await rawConnects(n)
    for (const kind of kinds) yield* oneRun(kind, n, rawMs)
  }
}
