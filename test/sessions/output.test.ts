/**
 * The end of a program's output: a program that prints megabytes in one go and exits at once
 * must not lose what was still in the remote terminal when it ended. Its output is a known
 * file (3,000,000 bytes), printed through a raw terminal so it arrives byte for byte; the
 * client is slow at first, so the node's window is full and its terminal paused when the
 * program ends (node-pty closed the terminal 200 ms after the exit, paused or not: the last
 * ~10 KiB were lost).
 */
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, tmpDir } from '../fixtures/cluster'
import { Lines } from '../../src/lib/lines'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Run `cmd` in a session on ship1; the output bytes and the exit line. `slowMs`: the client reads nothing for that long after the first output. */
async function session(socket: string, cmd: string, slowMs: number): Promise<{ out: Buffer; last: Record<string, unknown> }> {
  const sock = net.connect(socket)
  const lines = new Lines()
  const chunks: Buffer[] = []
  let slowed = false
  try {
    return await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no exit after 60 s; ${chunks.reduce((n, c) => n + c.length, 0)} bytes came`)), 60_000)
      sock.setEncoding('utf8')
      sock.on('error', reject)
      sock.on('data', (d: string) => {
        for (const l of lines.push(d)) {
          const m = JSON.parse(l) as Record<string, unknown>
          if (typeof m.out === 'string') {
            chunks.push(Buffer.from(m.out, 'base64'))
            if (!slowed && slowMs > 0) { slowed = true; sock.pause(); setTimeout(() => sock.resume(), slowMs) }
          } else if (m.exit !== undefined || m.error !== undefined) {
            clearTimeout(t)
            resolve({ out: Buffer.concat(chunks), last: m })
          }
        }
      })
      sock.write(JSON.stringify({ op: 'session', toNode: 'ship1', method: 'session.open', methodArgs: ['--', cmd] }) + '\n')
    })
  } finally {
    sock.destroy()
  }
}

test('output - a program that prints 3 MB in one go and exits: every byte arrives, then its exit status', async () => {
  const c = await Cluster.create(['ship1'])
  const dir = tmpDir('outpost-output-')
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const file = path.join(dir, 'burst')
    const data = Buffer.from(randomBytes(1_500_000).toString('hex'))
    fs.writeFileSync(file, data)
    // Raw: no newline translation, no echo; the program exits as soon as its last write returns.
    const cmd = `stty raw -echo; cat ${file}; exit 7`
    for (const slowMs of [1500, 0, 1500]) {
      const { out, last } = await session(c.node('central').socket, cmd, slowMs)
      assert.equal(last, { exit: { code: 7 } })
      assert.is(out.length, data.length, `slow ${slowMs} ms: ${out.length} of ${data.length} bytes arrived`)
      assert.is(sha(out), sha(data), `slow ${slowMs} ms: the bytes differ`)
    }
  } finally {
    await c.destroy()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
