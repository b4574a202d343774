/**
 * --pid-file FILE for init systems without systemd: the agent or hub writes its pid there at
 * start and removes the file when it stops. A file naming a live process is refused (another
 * copy runs); one naming a dead process (left by a crash) is taken over.
 */
import fs from 'node:fs'
import { writeFileAtomic } from './atomic-file'
import { OutpostError } from '../errors'
import { isAlive } from './process'


/** Write the pid file; returns its removal (idempotent; also run at process exit). */
export function writePidFile(file: string): () => void {
  let text = ''
  try { text = fs.readFileSync(file, 'utf8').trim() } catch { /* none yet */ }
  const pid = /^\d+$/.test(text) ? Number(text) : undefined
  if (pid !== undefined && pid !== process.pid && isAlive(pid)) {
    throw new OutpostError('pid_file_in_use', `--pid-file ${file} names process ${pid}, which is running; stop it first (or give another file)`)
  }
  try {
    writeFileAtomic(file, `${process.pid}\n`, 0o644)
  } catch (err) {
    throw new OutpostError('io', `--pid-file: cannot write ${file}: ${(err as Error).message}`, { cause: err })
  }
  let removed = false
  const remove = (): void => {
    if (removed) return
    removed = true
    process.off('exit', remove)
    try {
      if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true })
    } catch { /* gone already */ }
  }
  process.on('exit', remove)
  return remove
}
