/**
 * The data directory at start-up: created with its parents when missing, then checked to be a
 * directory outpost may write in (and its store, `outbox/`, when there is one). A path that
 * cannot be made, or a read-only one, is then one clear error, data_dir_unwritable, instead of
 * a stack trace from whichever file happens to be written first.
 */
import fs from 'node:fs'
import path from 'node:path'
import { OutpostError } from '../errors'

/** Create `dir` (and its parents) unless it exists; check that outpost may write in it. */
export function ensureDataDir(dir: string, mode = 0o700): void {
  try {
    makeDirs(dir, mode)
  } catch (err) {
    throw unwritable(dir, 'cannot be created', err)
  }
  for (const d of [dir, path.join(dir, 'outbox')]) {
    try {
      // access() reports a read-only file system (EROFS) as well as permissions, and lets root by.
      fs.accessSync(d, fs.constants.W_OK | fs.constants.X_OK)
    } catch (err) {
      if (d !== dir && (err as NodeJS.ErrnoException).code === 'ENOENT') continue // no store yet
      throw unwritable(dir, d === dir ? 'is not writable' : `is not writable (its store ${d})`, err)
    }
  }
}

/**
 * mkdir -p by hand: Node's recursive mkdirSync reports EROFS as ENOENT and loops forever where
 * the parent exists but mkdir answers ENOENT (under /proc).
 */
function makeDirs(dir: string, mode: number): void {
  try {
    fs.mkdirSync(dir, { mode })
    return
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') {
      if (fs.statSync(dir).isDirectory()) return
      throw Object.assign(new Error(`ENOTDIR: ${dir} exists and is not a directory`), { code: 'ENOTDIR' })
    }
    const parent = path.dirname(dir)
    if (code !== 'ENOENT' || parent === dir) throw err
  }
  makeDirs(path.dirname(dir), mode)
  fs.mkdirSync(dir, { mode })
}

function unwritable(dir: string, what: string, err: unknown): OutpostError {
  const uid = process.getuid?.()
  const who = uid === undefined ? 'the user outpost runs as' : `the user outpost runs as (uid ${uid})`
  return new OutpostError('data_dir_unwritable',
    `data directory ${dir} ${what}: ${(err as Error).message}; make it a directory writable by ${who}, or set dataDir (or --data-dir) to one`,
    { cause: err })
}
