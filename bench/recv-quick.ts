/**
 * A → hub → B, rounds of 20k node.pong through the test cluster, B's CPU per message split by
 * thread (main / V8's others) from /proc/PID/task, and its system time; A's and the hub's beside.
 *   node --import tsx bench/recv-quick.ts [rounds] [another build's bin/outpost.cjs for the nodes]
 * B_NODE_ARGS: node flags for B alone; STRACE_B=FILE: B's system calls over the second round
 * (strace -c). OUTPOST_TEST_NODE_ARGS (e.g. --cpu-prof) goes to every process, as in the cluster.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { Cluster, sendVia, status } from '../test/fixtures/cluster'
import { cpuMsOf } from './proc-stats'

const N = 20_000
const rounds = Number(process.argv[2] ?? 3)
const bin = process.argv[3] || undefined
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function threadMs(pid: number, tid: string): number {
  const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100
}

function sysMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) * 1000) / 100
}

function threads(pid: number): { main: number; other: number; sys: number } {
  let main = 0, other = 0
  const sys = sysMs(pid)
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    let ms = 0
    try { ms = threadMs(pid, t) } catch { continue }
    if (Number(t) === pid) main += ms; else other += ms
  }
  return { main, other, sys }
}

async function main(): Promise<void> {
  const methods = { allow: [{ from: ['$central', '$self'], methods: ['*'] }, { from: ['*'], methods: ['reply.*', 'error.log', 'node.hello', 'node.ping', 'node.pong'] }] }
  const c = await Cluster.create(['nodeA', 'nodeB'], { log: { level: 'warn' }, hello: { interval: 30 }, delivery: { ackTimeout: 30, retries: 3, ttl: 3600 }, methods })
  try {
    await c.startHub()
    await c.start('central', true, {}, bin)
    const a = await c.start('nodeA', true, {}, bin)
    // B_NODE_ARGS: node flags for B alone (an experiment on the receiver).
    const saved = process.env.OUTPOST_TEST_NODE_ARGS
    if (process.env.B_NODE_ARGS !== undefined) process.env.OUTPOST_TEST_NODE_ARGS = process.env.B_NODE_ARGS
    const b = await c.start('nodeB', true, {}, bin)
    if (saved === undefined) delete process.env.OUTPOST_TEST_NODE_ARGS; else process.env.OUTPOST_TEST_NODE_ARGS = saved
    await sleep(1500)
    const msg = { toNode: 'nodeB', method: 'node.pong', data: 'x'.repeat(120) }
    await sendVia(c.node('nodeA').socket, [msg], { wait: false })
    while ((await status(c.node('nodeA').socket)).outbox.count > 0) await sleep(20)
    const pidB = b.child.pid!, pidA = a.child.pid!, pidH = c.hub!.child.pid!
    for (let r = 0; r < rounds; r++) {
      // STRACE_B=FILE: B's system calls counted over the second round (strace -c; slows B down).
      const strace = r === 1 && process.env.STRACE_B ? spawn('strace', ['-c', '-f', '-p', String(pidB), '-o', process.env.STRACE_B], { stdio: 'ignore' }) : undefined
      if (strace !== undefined) await sleep(500)
      const b0 = threads(pidB), a0 = cpuMsOf(pidA), h0 = cpuMsOf(pidH)
      const t = performance.now()
      await sendVia(c.node('nodeA').socket, Array.from({ length: N }, () => msg), { wait: false, ms: 120_000 })
      while ((await status(c.node('nodeA').socket)).outbox.count > 0) await sleep(10)
      const b1 = threads(pidB)
      const us = (ms: number): string => ((ms * 1000) / N).toFixed(1)
      console.log(`round ${r}: ${(N / ((performance.now() - t) / 1000)).toFixed(0)} msg/s  A ${us(cpuMsOf(pidA) - a0)}  hub ${us(cpuMsOf(pidH) - h0)}  B ${us(b1.main + b1.other - b0.main - b0.other)} (main ${us(b1.main - b0.main)}, other ${us(b1.other - b0.other)}, sys ${us(b1.sys - b0.sys)})`)
      if (strace !== undefined) { strace.kill('SIGINT'); await new Promise((res) => strace.once('exit', res)) }
      await sleep(300)
    }
  } finally {
    await c.destroy()
  }
}
void main()
