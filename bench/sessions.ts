/**
 * `npm run bench -- sessions`: shells and tunnels through a real hub (issue 16's targets).
 *
 *  - keystroke echo: one byte into a session (socket API → central → hub → ship1's pty, echoed
 *    by its line discipline → back), one at a time; p50 and p99. Baseline: the same byte echoed
 *    by a pty on this machine with no network (node-pty straight), the floor.
 *  - tunnel throughput: a 32 MiB download through `outpost tunnel` (central → hub → ship1 →
 *    the server) against the same download through a plain TCP relay process (net + pipe) on
 *    loopback, in the same run. Ratio: tunnel / relay (target ≥ 0.5).
 *  - reverse tunnel (`outpost tunnel -R`): the same download made on ship1's side (ship1's
 *    loopback port → hub → central → the CLI → the server), against the same relay; and the
 *    first byte of a connection through each kind of tunnel (a reverse tunnel's connection
 *    needs one more request), median of FIRST_SAMPLES, against the relay's.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import * as pty from '@lydell/node-pty'
import { Cluster, Proc, editYaml, freePort, section } from '../test/fixtures/cluster'
import { Lines } from '../src/lib/lines'
import type { BenchResult } from './result'

const SAMPLES = Number(process.env.BENCH_ECHO_SAMPLES ?? 300)
const DOWNLOAD = Number(process.env.BENCH_TUNNEL_BYTES ?? 32 * 1024 * 1024)
const round = (n: number, d = 3): number => Number(n.toPrecision(d))
/** CPU seconds (user + system) a process has used. */
const cpuS = (pid: number): number => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100 }
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!

/** Echo times (ms) of single bytes written to `write`, each waited for on `onEcho`. */
async function echoTimes(write: (b: string) => void, waitEcho: (ch: string) => Promise<void>): Promise<number[]> {
  const times: number[] = []
  for (let i = 0; i < SAMPLES; i++) {
    const ch = String.fromCharCode(97 + (i % 26))
    const t = performance.now()
    const got = waitEcho(ch)
    write(ch)
    await got
    times.push(performance.now() - t)
  }
  return times
}

async function localPtyEcho(): Promise<number[]> {
  const p = pty.spawn('cat', [], { cols: 80, rows: 24 })
  let waiter: { ch: string; resolve: () => void } | undefined
  p.onData((d) => { if (waiter !== undefined && d.includes(waiter.ch)) { const w = waiter; waiter = undefined; w.resolve() } })
  await new Promise((r) => setTimeout(r, 200))
  try {
    return await echoTimes((b) => p.write(b), (ch) => new Promise((resolve) => { waiter = { ch, resolve } }))
  } finally {
    p.kill()
  }
}

async function sessionEcho(socket: string): Promise<number[]> {
  const sock = net.connect(socket)
  sock.setEncoding('utf8')
  const lines = new Lines()
  let waiter: { ch: string; resolve: () => void } | undefined
  let ready!: () => void
  const isReady = new Promise<void>((r) => { ready = r })
  sock.on('data', (d: string) => {
    for (const line of lines.push(d)) {
      const m = JSON.parse(line) as { out?: string; ready?: unknown; error?: unknown }
      if (m.error !== undefined) throw new Error(JSON.stringify(m.error))
      if (m.ready !== undefined) ready()
      if (m.out !== undefined && waiter !== undefined && Buffer.from(m.out, 'base64').toString().includes(waiter.ch)) { const w = waiter; waiter = undefined; w.resolve() }
    }
  })
  sock.write(JSON.stringify({ op: 'session', toNode: 'ship1', method: 'session.open', methodArgs: ['--', 'cat'] }) + '\n')
  await isReady
  await new Promise((r) => setTimeout(r, 300))
  try {
    return await echoTimes((b) => sock.write(JSON.stringify({ in: Buffer.from(b).toString('base64') }) + '\n'), (ch) => new Promise((resolve) => { waiter = { ch, resolve } }))
  } finally {
    sock.destroy()
  }
}

/** Serves DOWNLOAD bytes to each connection, then closes it. */
async function source(): Promise<{ port: number; close(): void }> {
  const chunk = Buffer.alloc(64 * 1024, 'x')
  const server = net.createServer((c) => {
    let left = DOWNLOAD
    const pump = (): void => {
      while (left > 0) {
        left -= chunk.length
        if (!c.write(chunk)) { c.once('drain', pump); return }
      }
      c.end()
    }
    c.on('error', () => {})
    pump()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() }
}

/** MB/s of one download from 127.0.0.1:port. */
function download(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now()
    let n = 0
    const c = net.connect(port, '127.0.0.1')
    c.on('data', (d: Buffer) => { n += d.length })
    c.on('end', () => {
      if (n < DOWNLOAD) { reject(new Error(`download ended after ${n} of ${DOWNLOAD} bytes`)); return }
      resolve(n / 1e6 / ((performance.now() - t) / 1000))
    })
    c.on('error', reject)
  })
}

/** ms from connect to the first byte of a download from 127.0.0.1:port. */
function firstByte(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now()
    const c = net.connect(port, '127.0.0.1')
    c.once('data', () => { resolve(performance.now() - t); c.destroy() })
    c.on('error', reject)
  })
}

const FIRST_SAMPLES = 15

/** Downloads through each path (the median is reported). */
const ROUNDS = 3

const RELAY = `const net = require('node:net'); const [host, port] = process.argv[1].split(':');
const s = net.createServer((c) => { const u = net.connect(Number(port), host); c.pipe(u); u.pipe(c); c.on('error', () => u.destroy()); u.on('error', () => c.destroy()) });
s.listen(0, '127.0.0.1', () => console.log('port=' + s.address().port))`

export async function* sessionBenchmarks(): AsyncIterable<BenchResult> {
  const src = await source()
  const c = await Cluster.create(['ship1'], { log: { level: 'info' } })
  const procs: Proc[] = []
  try {
    await c.startHub()
    const rev = await freePort()
    editYaml(c.node('ship1').config, (doc) => { section(doc, 'tunnels').allow = [`127.0.0.1:${src.port}`]; section(doc, 'tunnels').listen = [rev] })
    await c.start('central')
    await c.start('ship1')

    const base = await localPtyEcho()
    const echo = await sessionEcho(c.node('central').socket)
    const note = `${SAMPLES} single bytes, one at a time: socket API → central → hub → ship1 pty echo → back; baseline a local pty`
    yield { name: 'sessions keystroke echo p50', value: round(pct(echo, 0.5)), unit: 'ms', baseline: round(pct(base, 0.5)), ratio: round(pct(base, 0.5) / pct(echo, 0.5)), note }
    yield { name: 'sessions keystroke echo p99', value: round(pct(echo, 0.99)), unit: 'ms', baseline: round(pct(base, 0.99)), ratio: round(pct(base, 0.99) / pct(echo, 0.99)), note }

    const tun = new Proc(['tunnel', 'ship1', `0:127.0.0.1:${src.port}`, '--json', '--config', c.node('central').config])
    procs.push(tun)
    await tun.waitFor(/"listening"/)
    const tport = (JSON.parse(tun.output.split('\n').find((l) => l.includes('"listening"'))!) as { listening: { port: number } }).listening.port
    const relay = spawn(process.execPath, ['-e', RELAY, `127.0.0.1:${src.port}`], { stdio: ['ignore', 'pipe', 'inherit'] })
    const rport = await new Promise<number>((resolve) => relay.stdout.on('data', (d: Buffer) => { const m = /port=(\d+)/.exec(d.toString()); if (m) resolve(Number(m[1])) }))
    try {
      await download(rport) // warm both paths once
      await download(tport)
      // Alternating rounds, the median of each: a busy machine slows one download more than another.
      const rs: number[] = []
      const ts: number[] = []
      const pids = { hub: c.hub!.child.pid!, central: c.node('central').proc!.child.pid!, ship1: c.node('ship1').proc!.child.pid!, cli: tun.child.pid! }
      // CPU seconds used per path: the tunnel's four processes during its downloads, the relay's one during its own.
      const used = Object.fromEntries(Object.keys(pids).map((k) => [k, 0])) as Record<keyof typeof pids, number>
      let relayCpu = 0
      for (let i = 0; i < ROUNDS; i++) {
        const r0 = cpuS(relay.pid!)
        rs.push(await download(rport))
        relayCpu += cpuS(relay.pid!) - r0
        const t0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuS(pid)]))
        ts.push(await download(tport))
        for (const [k, pid] of Object.entries(pids)) used[k as keyof typeof pids] += cpuS(pid) - t0[k]!
      }
      const r = pct(rs, 0.5)
      const t = pct(ts, 0.5)
      const mb = (ROUNDS * DOWNLOAD) / 1e6
      const tunnelCpu = Object.values(used).reduce((x, y) => x + y, 0)
      const perMb = (s: number): number => round((1000 * s) / mb)
      yield { name: 'sessions tunnel CPU per MB', value: perMb(tunnelCpu), unit: 'ms', baseline: perMb(relayCpu), ratio: round(relayCpu / Math.max(tunnelCpu, 0.01)), note: `CPU (user + system) per MB downloaded: ${Object.entries(used).map(([k, v]) => `${k} ${perMb(v)}`).join(', ')} ms; baseline the relay process; load ${os.loadavg()[0]!.toFixed(1)}` }
      yield { name: 'sessions tunnel throughput', value: round(t), unit: 'MB/s', baseline: round(r), ratio: round(t / r), note: `${DOWNLOAD / 1048576} MiB download, median of ${ROUNDS}: outpost tunnel (central → hub → ship1 → server) vs a plain TCP relay process on loopback` }

      const back = new Proc(['tunnel', 'ship1', '-R', `${rev}:127.0.0.1:${src.port}`, '--json', '--config', c.node('central').config])
      procs.push(back)
      await back.waitFor(/"listening"/)
      await download(rev)
      const rs2: number[] = []
      const bs: number[] = []
      for (let i = 0; i < ROUNDS; i++) {
        rs2.push(await download(rport))
        bs.push(await download(rev))
      }
      const r2 = pct(rs2, 0.5)
      const b = pct(bs, 0.5)
      yield { name: 'sessions reverse tunnel throughput', value: round(b), unit: 'MB/s', baseline: round(r2), ratio: round(b / r2), note: `${DOWNLOAD / 1048576} MiB download made on ship1, median of ${ROUNDS}: outpost tunnel -R (ship1 → hub → central → CLI → server) vs a plain TCP relay process on loopback; load ${os.loadavg()[0]!.toFixed(1)}` }
      const first = { relay: [] as number[], tunnel: [] as number[], reverse: [] as number[] }
      for (let i = 0; i < FIRST_SAMPLES; i++) {
        first.relay.push(await firstByte(rport))
        first.tunnel.push(await firstByte(tport))
        first.reverse.push(await firstByte(rev))
      }
      const fr = pct(first.relay, 0.5)
      yield { name: 'sessions tunnel first byte', value: round(pct(first.tunnel, 0.5)), unit: 'ms', baseline: round(fr), ratio: round(fr / pct(first.tunnel, 0.5)), note: `connect to the first byte of a download, median of ${FIRST_SAMPLES}: outpost tunnel (one tunnel.open request) vs the relay` }
      yield { name: 'sessions reverse tunnel first byte', value: round(pct(first.reverse, 0.5)), unit: 'ms', baseline: round(pct(first.tunnel, 0.5)), ratio: round(pct(first.tunnel, 0.5) / pct(first.reverse, 0.5)), note: `connect on ship1 to the first byte, median of ${FIRST_SAMPLES}: outpost tunnel -R (listening session's id, then a tunnel.listen --accept request) vs the forward tunnel's first byte; relay ${round(fr)} ms; load ${os.loadavg()[0]!.toFixed(1)}` }
    } finally {
      relay.kill('SIGKILL')
    }
  } finally {
    for (const p of procs) await p.stop('SIGTERM')
    await c.destroy()
    src.close()
  }
}
