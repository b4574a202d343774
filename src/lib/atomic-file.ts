/**
 * Small state files (schedule stamps, log-shipping positions) replaced atomically: a reader,
 * or the next start after a crash, sees the old content or the new, never a torn mix.
 *
 *   write tmp ─▶ fsync ─▶ rename over the target ─▶ fsync the directory
 */
import fs from 'node:fs'
import path from 'node:path'

/** mode: of a new file (default 0600: state files are private). */
export function writeFileAtomic(file: string, content: string, mode = 0o600): void {
  const tmp = `${file}.tmp-${process.pid}`
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const fd = fs.openSync(tmp, 'w', mode)
  try {
    fs.writeSync(fd, content)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(tmp, file)
  const dir = fs.openSync(path.dirname(file), 'r')
  try {
    fs.fsyncSync(dir)
  } finally {
    fs.closeSync(dir)
  }
}
