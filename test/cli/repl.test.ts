/**
 * `outpost repl` through a real pty (@lydell/node-pty) against a real cluster: line editing,
 * live replies (streams too), nodes, call, Ctrl-C cancelling a wait, history across sessions,
 * Ctrl-D leaving.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as pty from '@lydell/node-pty'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster } from '../fixtures/cluster'

class Term {
  out = ''
  readonly exited: Promise<number>
  private readonly p: pty.IPty

  constructor(args: string[], env: Record<string, string>) {
    this.p = pty.spawn(process.execPath, [BIN, ...args], { name: 'xterm', cols: 160, rows: 40, cwd: process.cwd(), env: { ...process.env, ...env } as Record<string, string> })
    this.p.onData((d) => { this.out += d })
    this.exited = new Promise((resolve) => this.p.onExit((e) => resolve(e.exitCode)))
  }

  /** Output after `from` (no terminal escapes). */
  text(from = 0): string {
    // eslint-disable-next-line no-control-regex
    return this.out.slice(from).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '')
  }

  async waitFor(re: RegExp, from = 0, ms = 20_000): Promise<void> {
    const end = Date.now() + ms
    while (!re.test(this.text(from))) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${re} in:\n${this.text(from).slice(-2000)}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }

  /** Type a line; resolves when the prompt is back after it. Returns the output position before it. */
  async line(s: string, prompt = /central> $/): Promise<number> {
    const at = this.out.length
    this.p.write(s + '\r')
    await this.waitFor(prompt, at)
    return at
  }

  write(s: string): void { this.p.write(s) }
  kill(): void { try { this.p.kill('SIGKILL') } catch { /* gone */ } }
}

test('repl - send with live replies (streams too), nodes, call, Ctrl-C cancels a wait, history kept, Ctrl-D leaves', async () => {
  const c = await Cluster.create(['ship1'])
  const hist = path.join(c.dir, 'history')
  let t: Term | undefined
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    t = new Term(['repl', '--config', c.node('central').config], { OUTPOST_HISTORY: hist })
    await t.waitFor(/central> $/)

    let at = await t.line('send --to ship1 cli.run -- echo "hello  from ship1"')
    assert.match(t.text(at), /accepted \S+ → ship1/)
    assert.match(t.text(at), /hello {2}from ship1/)

    // A stream: its pieces are printed as they come, before the command is over.
    at = t.out.length
    t.write(`send --to ship1 cli.stream -- 'for i in 1 2 3; do echo tick$i; sleep 0.4; done'\r`)
    await t.waitFor(/tick1/, at)
    assert.not.match(t.text(at), /tick3/)
    await t.waitFor(/tick3\n(.|\n)*central> $/, at)

    at = await t.line('nodes')
    assert.match(t.text(at), /NAME +ONLINE/)
    assert.match(t.text(at), /ship1 +yes/)

    at = await t.line('call info.os')
    assert.match(t.text(at), /"data": \{/)

    at = await t.line('send --to ship1 cli.named -- nothing')
    assert.match(t.text(at), /command_unknown/)
    assert.match(t.text(at), /\(exit 3\)/)

    // Ctrl-C while waiting: the wait ends at once, the prompt comes back, the session goes on.
    at = t.out.length
    t.write('send --to ship1 cli.run -- sleep 30\r')
    await t.waitFor(/accepted \S+ → ship1/, at)
    const sent = Date.now()
    t.write('\x03')
    await t.waitFor(/cancelled \(Ctrl-C\)(.|\n)*central> $/, at)
    assert.ok(Date.now() - sent < 10_000)
    at = await t.line('unknownthing')
    assert.match(t.text(at), /unknown command 'unknownthing'/)

    // Line editing: type, move left, insert.
    at = t.out.length
    t.write('send --to ship1 cli.run -- echo ab')
    await t.waitFor(/echo ab$/, at)
    t.write('\x1b[D')
    await new Promise((r) => setTimeout(r, 200))
    t.write('x')
    await new Promise((r) => setTimeout(r, 200))
    await t.line('')
    assert.match(t.text(at), /axb/, JSON.stringify(t.out.slice(at)))

    // Ctrl-D leaves with 0; the history file has the session's lines, oldest first.
    t.write('\x04')
    assert.is(await t.exited, 0)
    const lines = fs.readFileSync(hist, 'utf8').trim().split('\n')
    assert.is(lines[0], 'send --to ship1 cli.run -- echo "hello  from ship1"')
    assert.is(lines.at(-1), 'send --to ship1 cli.run -- echo axb')
    assert.is(fs.statSync(hist).mode & 0o777, 0o600)

    // A new session: Up brings back the last line of the previous one.
    t = new Term(['repl', '--config', c.node('central').config], { OUTPOST_HISTORY: hist })
    await t.waitFor(/central> $/)
    at = t.out.length
    t.write('\x1b[A')
    await t.waitFor(/echo axb/, at)
    t.write('\r')
    await t.waitFor(/^axb$/m, at)
    t.write('exit\r')
    assert.is(await t.exited, 0)
  } finally {
    t?.kill()
    await c.destroy()
  }
})

test.run()
