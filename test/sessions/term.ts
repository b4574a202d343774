/** `outpost shell` driven through a real pty (@lydell/node-pty), as a person at a terminal would. */
import * as pty from '@lydell/node-pty'
import { BIN } from '../fixtures/cluster'

export class Term {
  out = ''
  code: number | undefined
  readonly exited: Promise<number>
  readonly p: pty.IPty

  constructor(args: string[], opts: { cols?: number; rows?: number; env?: Record<string, string> } = {}) {
    this.p = pty.spawn(process.execPath, [BIN, ...args], { name: 'xterm', cols: opts.cols ?? 100, rows: opts.rows ?? 30, cwd: process.cwd(), env: { ...process.env, ...opts.env } as Record<string, string> })
    this.p.onData((d) => { this.out += d })
    this.exited = new Promise((resolve) => this.p.onExit((e) => { this.code = e.exitCode; resolve(e.exitCode) }))
  }

  /** Output after `from`, without terminal escapes and carriage returns. */
  text(from = 0): string {
    // eslint-disable-next-line no-control-regex
    return this.out.slice(from).replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[=>]/g, '').replace(/\r/g, '')
  }

  async waitFor(re: RegExp, from = 0, ms = 20_000): Promise<void> {
    const end = Date.now() + ms
    while (!re.test(this.text(from))) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${re} in:\n${this.text(from).slice(-2000)}`)
      if (this.code !== undefined) throw new Error(`outpost shell exited (${this.code}) before ${re} came:\n${this.text(from).slice(-2000)}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  write(s: string): void { this.p.write(s) }
  kill(): void { try { this.p.kill('SIGKILL') } catch { /* gone */ } }
}
