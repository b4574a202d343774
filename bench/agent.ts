/**
 * `npm run bench -- agent`: what an operator sizes a machine by. Cold start to connected (the
 * x64 single binary when dist/outpost-linux-x64 exists, else the checkout bundle under node),
 * the agent's RSS with 100k messages queued for a node that is away, and start-up to connected
 * with that backlog after a SIGKILL. Targets are from issue 7.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { BIN, Cluster, status } from '../test/fixtures/cluster'
import { cpuMsOf } from './proc-stats'
import type { BenchResult } from './result'

const round = (n: number, d = 3): number => Number(n.toPrecision(d + 2))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 100_000)

const BINARY = path.join(__dirname, '..', 'dist', 'outpost-linux-x64')

/** How this benchmark runs the agent: the single binary if built, else node + the bundle. */
function command(): { cmd: string; args: string[]; what: string } {
  if (process.arch === 'x64' && fs.existsSync(BINARY)) return { cmd: BINARY, args: [], what: 'x64 single binary' }
  return { cmd: process.execPath, args: [BIN], what: 'checkout bundle under node' }
}

function rssOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
}

/** The glibc malloc settings install.sh's service (systemd unit or init script) runs the agent with. */
function serviceEnv(): Record<string, string> {
  const line = /^Environment=(MALLOC_.*)$/m.exec(fs.readFileSync(path.join(__dirname, '..', 'install.sh'), 'utf8'))?.[1]
  if (line === undefined) throw new Error('install.sh sets no MALLOC_ environment for its unit')
  return Object.fromEntries(line.split(/\s+/).map((kv) => kv.split('=') as [string, string]))
}

/** Start the agent with `config`; resolves with the child, the ms from spawn to connected and the CPU ms it used by then (user + system, from /proc). */
async function startTimed(config: string, socket: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; ms: number; cpu: number }> {
  const { cmd, args } = command()
  const t = performance.now()
  const child = spawn(cmd, [...args, 'agent', '--config', config], { stdio: 'ignore', env: { ...process.env, ...env } })
  const end = Date.now() + 120_000
  for (;;) {
    const s = await status(socket).catch(() => undefined)
    if (s?.connected) return { child, ms: performance.now() - t, cpu: cpuMsOf(child.pid!) }
    if (child.exitCode !== null || Date.now() > end) throw new Error(`the agent did not connect (exit ${child.exitCode})`)
    await sleep(2)
  }
}

async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((r) => child.once('exit', r))
  child.kill(signal)
  await gone
}

/** Queue `n` 200-byte messages for ship1, which never comes. */
async function fill(socket: string, n: number): Promise<void> {
  const net = await import('node:net')
  const data = 'x'.repeat(120)
  for (let sent = 0; sent < n;) {
    const batch = Math.min(1000, n - sent)
    const messages = Array.from({ length: batch }, () => ({ toNode: 'ship1', method: 'node.ping', data }))
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(socket)
      let buf = ''
      s.setEncoding('utf8')
      // allowUnknown: central has never heard of ship1.
      s.on('connect', () => s.write(JSON.stringify({ op: 'send', messages, wait: false, allowUnknown: true }) + '\n'))
      s.on('data', (d: string) => { buf += d; if (buf.includes('\n')) { s.destroy(); buf.includes('"accepted"') ? resolve() : reject(new Error(buf)) } })
      s.on('error', reject)
    })
    sent += batch
  }
}

export async function* agentBenchmarks(): AsyncIterable<BenchResult> {
  const how = command().what
  const c = await Cluster.create(['ship1'], { log: { level: 'warn' }, delivery: { ttl: 86400 } })
  try {
    await c.startHub()
    const central = c.node('central')
    // Cold start: a fresh data directory each round (first start ever), then the same again warm.
    const cold: number[] = []
    for (let i = 0; i < 5; i++) {
      fs.rmSync(central.dataDir, { recursive: true, force: true })
      const { child, ms } = await startTimed(central.config, central.socket)
      cold.push(ms)
      await kill(child, 'SIGTERM')
    }
    const coldMs = median(cold)
    yield { name: 'agent.start.connected', value: round(coldMs), unit: 'ms', baseline: 300, ratio: round(300 / coldMs), note: `${how}; spawn to connected to the hub, fresh data directory, median of 5; baseline is the target` }

    // 100k queued, run by hand (glibc's defaults), then as install.sh's service runs it.
    const service = serviceEnv()
    let child!: ChildProcess
    for (const [suffix, env, what] of [['.bare', {}, 'started by hand'], ['', service, `with install.sh's service environment (${Object.entries(service).map(([k, v]) => `${k}=${v}`).join(' ')})`]] as const) {
      if (child !== undefined) await kill(child, 'SIGKILL')
      fs.rmSync(central.dataDir, { recursive: true, force: true })
      ;({ child } = await startTimed(central.config, central.socket, env))
      const idle = rssOf(child.pid!)
      const t = performance.now()
      await fill(central.socket, BACKLOG)
      const fillSecs = (performance.now() - t) / 1000
      const count = (await status(central.socket)).outbox.count
      await sleep(10_000) // the agent gives memory back a few seconds after a burst
      const rss = rssOf(child.pid!)
      yield { name: `agent.rss.queued${BACKLOG / 1000}k${suffix}`, value: round(rss), unit: 'MB', baseline: 150, ratio: round(150 / rss), note: `${how}, ${what}; ${count} messages of ~200 B waiting for an absent node (accepted at ${Math.round(BACKLOG / fillSecs)} msg/s), read 10 s after the last; idle before ${idle.toFixed(0)} MB; baseline is the target` }
    }

    // Restart with the backlog: after a crash (journal replay) and after a clean stop (snapshot).
    await kill(child, 'SIGKILL')
    const crash = await startTimed(central.config, central.socket)
    const crashCount = (await status(central.socket)).outbox.count
    await kill(crash.child, 'SIGTERM')
    const clean = await startTimed(central.config, central.socket)
    await kill(clean.child, 'SIGTERM')
    yield { name: `agent.restart.${BACKLOG / 1000}k.crash`, value: round(crash.ms), unit: 'ms', baseline: round(coldMs), ratio: round(coldMs / crash.ms), note: `${how}; SIGKILL with ${crashCount} waiting, then spawn to connected; baseline: cold start with an empty outbox` }
    yield { name: `agent.restart.${BACKLOG / 1000}k.clean`, value: round(clean.ms), unit: 'ms', baseline: round(coldMs), ratio: round(coldMs / clean.ms), note: `${how}; the same after a clean stop (SIGTERM)` }
    // CPU to connected (all threads, /proc): much less swayed by a loaded machine than wall time.
    yield { name: `agent.restart.${BACKLOG / 1000}k.crash.cpu`, value: round(crash.cpu), unit: 'ms', baseline: null, ratio: null, note: `${how}; CPU (user + system) of the agent from spawn to connected after the SIGKILL above` }
    yield { name: `agent.restart.${BACKLOG / 1000}k.clean.cpu`, value: round(clean.cpu), unit: 'ms', baseline: null, ratio: null, note: `${how}; the same after the clean stop` }
  } finally {
    await c.destroy()
  }
}
