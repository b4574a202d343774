/**
 * A small leveled logger: text lines (`2026-11-22T03:40:00.000Z info  node: message k=v`) or
 * JSON lines (`{"time","level","component","msg",…fields}`), to standard error or a file.
 * Plugins get the `log(level, message, fields?)` function only. Children share their root's
 * level, so `setLevel` (config.set log.level) reaches every component at once.
 *
 * A log file stops being written while its disk has less than `diskFloor` bytes free (the
 * store's reserve plus a margin: the outbox's records come first), with one line saying so
 * and one when it resumes; a line that cannot be written to it goes to standard error.
 */
import fs from 'node:fs'
import path from 'node:path'
import { DiskGuard } from './lib/disk-guard'
import { oneLine } from './lib/one-line'

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'
export type Fields = Record<string, string | number | boolean | null | undefined>
export type LogFn = (level: Exclude<Level, 'silent' | 'trace'>, message: string, fields?: Fields) => void

const RANK: Record<Level, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, silent: 5 }

export interface Logger {
  log: LogFn
  /** --debug: one line per frame; undefined unless the level is trace or --debug was given. */
  trace: ((line: string) => void) | undefined
  child(component: string): Logger
  /** Change the level of this logger and all its relatives (not below trace when --debug). */
  setLevel(level: Level): void
}

export interface LoggerOptions {
  level: Level
  format: 'text' | 'json'
  file: string | null
  /** Bytes the disk holding `file` keeps free: lines are skipped below it (0: until the disk is full). */
  diskFloor?: number
  /** Free bytes on the disk holding `file` (tests inject one; default statfs). */
  diskFree?: (dir: string) => number
  debug?: boolean
  write?: (line: string) => void
  now?: () => Date
}

interface Shared { min: number; debug: boolean; write: (line: string) => void; now: () => Date; format: 'text' | 'json' }

export function createLogger(opts: LoggerOptions, component = ''): Logger {
  const write = opts.write ?? ((line: string) => { process.stderr.write(line) })
  const shared: Shared = { min: opts.debug ? RANK.trace : RANK[opts.level], debug: opts.debug === true, write, now: opts.now ?? (() => new Date()), format: opts.format }
  if (opts.write === undefined && opts.file) shared.write = fileWriter(shared, opts.file, opts.diskFloor ?? 0, opts.diskFree)
  return make(shared, component)
}

function make(s: Shared, component: string): Logger {
  const emit = (level: string, message: string, fields?: Fields): void => {
    const time = s.now().toISOString()
    if (s.format === 'json') {
      s.write(JSON.stringify({ time, level, ...(component ? { component } : {}), msg: message, ...fields }) + '\n')
      return
    }
    const extra = fields ? Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}=${oneLine(typeof v === 'string' && /[\s"=]/.test(v) ? JSON.stringify(v) : String(v))}`).join('') : ''
    s.write(`${time} ${level.padEnd(5)} ${component ? `${component}: ` : ''}${oneLine(message)}${extra}\n`)
  }
  const trace = (line: string): void => { if (s.min <= RANK.trace) emit('trace', line) }
  return {
    log: (level, message, fields) => { if (RANK[level] >= s.min) emit(level, message, fields) },
    // Transports decide once whether to describe frames at all: only when tracing can be on.
    get trace() { return s.min <= RANK.trace || s.debug ? trace : undefined },
    child: (c) => make(s, component ? `${component}/${c}` : c),
    setLevel: (level) => { s.min = s.debug ? RANK.trace : RANK[level] },
  }
}

function fileWriter(s: Shared, file: string, floor: number, free: ((dir: string) => number) | undefined): (line: string) => void {
  const fd = fs.openSync(file, 'a')
  const notice = make(s, '')
  // The guard's own two lines go to the file whatever the space: they say why the rest does not.
  let forced = false
  const guard = new DiskGuard({
    dir: path.dirname(path.resolve(file)), floor, what: `log lines to ${file}`, ...(free ? { free } : {}),
    log: (level, message) => {
      forced = true
      try { notice.log(level, message) } finally { forced = false }
    },
  })
  return (line) => {
    if (!forced && !guard.allow(Buffer.byteLength(line))) return
    try {
      fs.writeSync(fd, line)
    } catch {
      // A quota, an I/O error: the line is not lost, and the caller is not thrown at.
      process.stderr.write(line)
    }
  }
}
