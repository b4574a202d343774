/**
 * A small leveled logger: text lines (`2026-11-22T03:40:00.000Z info  message`) or JSON lines,
 * to standard error or a file. Plugins get the `log(level, message)` function only.
 */
import fs from 'node:fs'

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'
export type LogFn = (level: Exclude<Level, 'silent' | 'trace'>, message: string) => void

const RANK: Record<Level, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, silent: 5 }

export interface Logger {
  log: LogFn
  /** --debug: one line per frame; a no-op unless the level is trace or debug was asked for. */
  trace: ((line: string) => void) | undefined
  child(prefix: string): Logger
}

export interface LoggerOptions {
  level: Level
  format: 'text' | 'json'
  file: string | null
  debug?: boolean
  write?: (line: string) => void
  now?: () => Date
}

export function createLogger(opts: LoggerOptions, prefix = ''): Logger {
  const write = opts.write ?? (opts.file ? fileWriter(opts.file) : (line: string) => { process.stderr.write(line) })
  const now = opts.now ?? (() => new Date())
  const min = opts.debug ? RANK.trace : RANK[opts.level]
  const emit = (level: string, message: string): void => {
    const msg = prefix ? `${prefix}: ${message}` : message
    write(opts.format === 'json' ? JSON.stringify({ time: now().toISOString(), level, msg }) + '\n' : `${now().toISOString()} ${level.padEnd(5)} ${msg}\n`)
  }
  return {
    log: (level, message) => { if (RANK[level] >= min) emit(level, message) },
    trace: min <= RANK.trace ? (line) => emit('trace', line) : undefined,
    child: (p) => createLogger({ ...opts, write }, prefix ? `${prefix}/${p}` : p),
  }
}

function fileWriter(file: string): (line: string) => void {
  const fd = fs.openSync(file, 'a')
  return (line) => { fs.writeSync(fd, line) }
}
