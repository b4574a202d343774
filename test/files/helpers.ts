/** Shared by the file transfer tests: run `outpost cp` for real, make files, hash them. */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import { BIN, type Cluster } from '../fixtures/cluster'

export interface CpResult { code: number | null; lines: Record<string, unknown>[]; stderr: string }

/** `outpost cp --json ARGS…` against node `on`'s agent. */
export function cp(c: Cluster, on: string, args: string[], ms = 120_000): Promise<CpResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'cp', '--config', c.node(on).config, '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let stderr = ''
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`outpost cp ${args.join(' ')} took more than ${ms} ms:\n${out}\n${stderr}`)) }, ms)
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('exit', (code) => {
      clearTimeout(t)
      resolve({ code, stderr, lines: out.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>) })
    })
  })
}

/** The last transfer line of a cp run. */
export function lastTransfer(r: CpResult): { id: string; state: string; size: number; sha256?: string; resent: number; error?: { code: string; message: string } } {
  const t = r.lines.filter((l) => l.transfer !== undefined).map((l) => l.transfer).pop()
  if (t === undefined) throw new Error(`no transfer line in ${JSON.stringify(r.lines)} ${r.stderr}`)
  return t as ReturnType<typeof lastTransfer>
}

/** A file of `size` random bytes, written in 1 MiB pieces; returns its sha256. */
export function randomFile(file: string, size: number): string {
  const h = createHash('sha256')
  const fd = fs.openSync(file, 'w')
  try {
    for (let left = size; left > 0;) {
      const b = randomBytes(Math.min(left, 1024 * 1024))
      fs.writeSync(fd, b)
      h.update(b)
      left -= b.length
    }
  } finally {
    fs.closeSync(fd)
  }
  return h.digest('hex')
}

export function sha256Of(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

/** Files in `dir` whose name marks a transfer in progress (.NAME.ID.outpost-part). */
export function partials(dir: string): string[] {
  let names: string[] = []
  try { names = fs.readdirSync(dir) } catch { /* none */ }
  return names.filter((n) => n.endsWith('.outpost-part'))
}

/** The error code a cp run ended with (an API error line, or the transfer's error). */
export function errorCode(r: CpResult): string | undefined {
  const e = r.lines.find((l) => l.error !== undefined)?.error as { code: string } | undefined
  if (e !== undefined) return e.code
  const t = r.lines.filter((l) => l.transfer !== undefined).map((l) => l.transfer as { error?: { code: string } }).pop()
  return t?.error?.code
}

/** A node's transfers ({"op":"transfers"} on its socket). */
export function transfersOf(socket: string): Promise<{ id: string; direction: string; state: string; bytes: number; size: number; resent: number }[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socket)
    let buf = ''
    s.setEncoding('utf8')
    s.on('connect', () => s.write('{"op":"transfers"}\n'))
    s.on('data', (d: string) => { buf += d; if (buf.includes('\n')) { s.destroy(); resolve((JSON.parse(buf) as { transfers: [] }).transfers) } })
    s.on('error', reject)
  })
}

/** Resolves once `pred` holds for the transfer `id` on the node of `socket` (polled). */
export async function until(socket: string, pred: (t: { id: string; direction: string; state: string; bytes: number; size: number }) => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    const list = await transfersOf(socket).catch(() => [])
    if (list.some((t) => pred(t))) return
    if (Date.now() > end) throw new Error(`no transfer reached the expected state within ${ms} ms: ${JSON.stringify(list)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
