/**
 * sessions.record: one asciicast v2 file per shell session, <dataDir>/sessions/<id>.cast
 * (`asciinema play FILE` replays it). A header line, then [seconds, "o", text] for output and
 * [seconds, "r", "COLSxROWS"] for resizes. Writes are appended as they come; a failure is
 * logged once and the recording stops (the session goes on).
 */
import fs from 'node:fs'
import path from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import type { LogFn } from '../log'

export class Recording {
  readonly file: string
  private fd: number | undefined
  private readonly t0 = performance.now()
  private readonly decoder = new StringDecoder('utf8')
  private readonly log: LogFn

  constructor(dataDir: string, id: string, header: { cols: number; rows: number; term: string; shell: string; title: string }, log: LogFn) {
    this.log = log
    const dir = path.join(dataDir, 'sessions')
    this.file = path.join(dir, `${id}.cast`)
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
      this.fd = fs.openSync(this.file, 'wx', 0o600)
      this.line({ version: 2, width: header.cols, height: header.rows, timestamp: Math.floor(Date.now() / 1000), title: header.title, env: { TERM: header.term, SHELL: header.shell } })
    } catch (err) {
      this.fail(err)
    }
  }

  output(bytes: Uint8Array): void {
    const text = this.decoder.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    if (text !== '') this.line([this.elapsed(), 'o', text])
  }

  resize(cols: number, rows: number): void {
    this.line([this.elapsed(), 'r', `${cols}x${rows}`])
  }

  close(): void {
    const rest = this.decoder.end()
    if (rest !== '') this.line([this.elapsed(), 'o', rest])
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.t0) / 1000
  }

  private line(v: unknown): void {
    if (this.fd === undefined) return
    try {
      fs.writeSync(this.fd, JSON.stringify(v) + '\n')
    } catch (err) {
      this.fail(err)
    }
  }

  private fail(err: unknown): void {
    this.log('error', `session: cannot write the recording ${this.file}: ${(err as Error).message}; recording stopped`)
    if (this.fd !== undefined) try { fs.closeSync(this.fd) } catch { /* closed */ }
    this.fd = undefined
  }
}
