/** What the fleet tests share: the CLI as a child process, central's node list polled. */
import { spawn } from 'node:child_process'
import { BIN, type Cluster } from '../fixtures/cluster'

export interface Listed { name: string; online: boolean; labels?: Record<string, string>; facts?: Record<string, string> }

export function outpost(args: string[], ms = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const t = setTimeout(() => child.kill('SIGKILL'), ms)
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }) })
  })
}

/** Poll central's node list until `ok` holds. */
export async function untilLabels(c: Cluster, ok: (list: Listed[]) => boolean, ms = 20_000): Promise<Listed[]> {
  let last: Listed[] = []
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    const r = await outpost(['nodes', '--json', '--config', c.node('central').config])
    if (r.code === 0) last = JSON.parse(r.stdout) as Listed[]
    if (ok(last)) return last
  }
  throw new Error(`timed out; central lists ${JSON.stringify(last)}`)
}
