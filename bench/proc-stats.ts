/**
 * What a process has used, read from /proc (Linux): its resident memory and its CPU time
 * (user + system). Benchmarks take a reading before and after a run and divide the CPU by the
 * messages the run moved.
 */
import fs from 'node:fs'

/** /proc/PID/stat counts in clock ticks; USER_HZ is 100 on every Linux this runs on. */
const TICKS_PER_SECOND = 100

/** VmRSS of `pid`, in MB. */
export function rssOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
}

/** utime + stime of `pid` so far, in ms (10 ms resolution). */
export function cpuMsOf(pid: number): number {
  return cpuMsOfStat(`/proc/${pid}/stat`)
}

/** utime + stime of `pid`'s main thread (the task whose id is the pid; JavaScript runs there) so far, in ms. */
export function mainThreadCpuMsOf(pid: number): number {
  return cpuMsOfStat(`/proc/${pid}/task/${pid}/stat`)
}

function cpuMsOfStat(file: string): number {
  const stat = fs.readFileSync(file, 'utf8')
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND
}

/** CPU readings of several processes, to take the difference of later. */
export class CpuMeter {
  private readonly start: Map<string, number>
  private readonly startMain: Map<string, number>

  constructor(private readonly pids: Record<string, number>) {
    this.start = new Map(Object.entries(pids).map(([k, pid]) => [k, cpuMsOf(pid)]))
    this.startMain = new Map(Object.entries(pids).map(([k, pid]) => [k, mainThreadCpuMsOf(pid)]))
  }

  /**
   * CPU µs per message of each process's main thread and of its other threads (V8's compiler
   * and GC workers, libuv's pool), since the meter was made, rounded to 0.5 µs.
   */
  threadsPerMessage(messages: number): Record<string, { main: number; other: number }> {
    const out: Record<string, { main: number; other: number }> = {}
    const half = (us: number): number => Math.round(us * 2) / 2
    for (const [k, pid] of Object.entries(this.pids)) {
      const main = ((mainThreadCpuMsOf(pid) - this.startMain.get(k)!) * 1000) / messages
      const all = ((cpuMsOf(pid) - this.start.get(k)!) * 1000) / messages
      out[k] = { main: half(main), other: half(all - main) }
    }
    return out
  }

  /** CPU µs per message of each process since the meter was made, and their sum. */
  perMessage(messages: number): Record<string, number> {
    const out: Record<string, number> = {}
    let total = 0
    for (const [k, pid] of Object.entries(this.pids)) {
      const us = ((cpuMsOf(pid) - this.start.get(k)!) * 1000) / messages
      out[k] = Math.round(us)
      total += us
    }
    out.total = Math.round(total)
    return out
  }
}
