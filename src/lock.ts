import fs from 'node:fs'
import { OutpostError } from './errors'

export interface Lock {
  release(): void
}

/**
 * An exclusive lock on a data directory: a file created with O_EXCL holding our pid. A lock
 * left by a process that no longer exists (killed with SIGKILL, power loss) is taken over.
 */
export function acquireLock(file: string): Lock {
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600)
      fs.writeSync(fd, `${process.pid}\n`)
      fs.closeSync(fd)
      let released = false
      const release = (): void => {
        if (released) return
        released = true
        process.removeListener('exit', release)
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true })
        } catch { /* already gone */ }
      }
      process.on('exit', release)
      return { release }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new OutpostError('io', `lock: cannot create ${file}: ${(err as Error).message}`, { cause: err })
      }
    }
    const owner = Number.parseInt(fs.readFileSync(file, 'utf8'), 10)
    if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
      throw new OutpostError('locked', `${file} is held by running process ${owner}: another outpost uses this data directory (set a different dataDir)`)
    }
    if (owner === process.pid) {
      throw new OutpostError('locked', `${file} is already held by this process: the data directory is open twice`)
    }
    fs.rmSync(file, { force: true }) // stale: its owner is gone
  }
  throw new OutpostError('locked', `${file}: could not take the lock`)
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
