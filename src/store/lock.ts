import fs from 'node:fs'
import { OutpostError } from '../errors'
import { isAlive } from '../lib/process'

export interface Lock {
  release(): void
}

/** Lock files this process holds: a pid match alone does not say the lock is ours. */
const held = new Set<string>()

/**
 * An exclusive lock on a data directory: a file holding the owner's pid, created complete
 * (written aside, then hard-linked into place, so nobody ever reads it empty). A lock left by a
 * process that no longer exists (SIGKILL, power loss) is taken over, also when a restarted
 * process happens to get the dead one's pid (pid 1 in a container).
 */
export function acquireLock(file: string): Lock {
  if (held.has(file)) {
    throw new OutpostError('locked', `${file} is already held by this process: the data directory is open twice`)
  }
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 })
  try {
    for (let tries = 0; tries < 3; tries++) {
      try {
        fs.linkSync(tmp, file)
        held.add(file)
        return makeLock(file)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new OutpostError('io', `lock: cannot create ${file}: ${(err as Error).message}`, { cause: err })
        }
      }
      let owner = Number.NaN
      try { owner = Number.parseInt(fs.readFileSync(file, 'utf8'), 10) } catch { continue /* just released */ }
      if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
        throw new OutpostError('locked', `${file} is held by running process ${owner}: another outpost uses this data directory (set a different dataDir)`)
      }
      fs.rmSync(file, { force: true }) // stale: its owner is gone
    }
    throw new OutpostError('locked', `${file}: could not take the lock`)
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}

/** The live process (not this one) that holds the lock file, if one does: for a clearer refusal before anything starts. */
export function lockHolder(file: string): number | undefined {
  let owner: number
  try { owner = Number.parseInt(fs.readFileSync(file, 'utf8'), 10) } catch { return undefined }
  return Number.isInteger(owner) && owner !== process.pid && isAlive(owner) ? owner : undefined
}

function makeLock(file: string): Lock {
  let released = false
  const release = (): void => {
    if (released) return
    released = true
    held.delete(file)
    process.removeListener('exit', release)
    try {
      if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true })
    } catch { /* already gone */ }
  }
  process.on('exit', release)
  return { release }
}

