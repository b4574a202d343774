import fs from 'node:fs'

/**
 * Whether a process with this pid exists (one of another user's, which we may not signal,
 * counts). A zombie does not: it has exited, and only waits for a parent that has not reaped it
 * yet (a SIGKILLed agent whose parent is a container's init or a shell script that never waits
 * stays one for seconds or for good), so the lock and pid file it left are stale.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  return !isZombie(pid)
}

/** Linux: the state in /proc/PID/stat (after the command name in parentheses) is Z or X. */
function isZombie(pid: number): boolean {
  let stat: string
  try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8') } catch { return false }
  const state = stat.charAt(stat.lastIndexOf(')') + 2)
  return state === 'Z' || state === 'X'
}

/**
 * The environment variable that marks every process a command started (cli.run, cli.stream):
 * it is inherited through fork, setsid and the death of a parent, where the process group and
 * the parent pid are not.
 */
export const RUN_MARK = 'OUTPOST_RUN'

/**
 * Live processes whose environment carries `RUN_MARK=mark`, read from /proc/PID/environ: all of
 * /proc, or only `among`. None where there is no /proc, and none that we may not read (another
 * user's while outpost is not root) or that replaced their environment. A zombie has none, so
 * it does not count.
 */
export function markedProcesses(mark: string, among?: Iterable<number>): number[] {
  const needle = Buffer.from(`${RUN_MARK}=${mark}\0`)
  let pids: Iterable<number>
  if (among !== undefined) {
    pids = among
  } else {
    try {
      pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)
    } catch {
      return []
    }
  }
  const found: number[] = []
  for (const pid of pids) {
    if (pid === process.pid) continue
    let env: Buffer
    try {
      env = fs.readFileSync(`/proc/${pid}/environ`)
    } catch {
      continue // gone, or not ours to read
    }
    const at = env.indexOf(needle)
    if (at === 0 || (at > 0 && env[at - 1] === 0)) found.push(pid)
  }
  return found
}

/** A process's group id, from /proc/PID/stat; undefined when it is gone (or there is no /proc). */
export function processGroupOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses.
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
    return Number.isInteger(pgrp) ? pgrp : undefined
  } catch {
    return undefined
  }
}

/** Send a signal to each pid. One already gone (ESRCH) or not ours to signal (EPERM: outpost lacks the privilege) is passed over. */
export function signalEach(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ESRCH' && code !== 'EPERM') throw err
    }
  }
}
