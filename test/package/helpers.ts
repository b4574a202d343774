/**
 * Shared by the single-binary tests: the built binaries (`npm run test:package` builds them
 * first with `npm run package`), variants built on the same cached base, a static file server
 * on loopback, and processes of a binary.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'

export const ROOT = path.join(__dirname, '..', '..')
export const DIST = process.env.OUTPOST_DIST ?? path.join(ROOT, 'dist')
export const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

export function tmpDir(prefix = 'outpost-pkg-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

/** dist/outpost-linux-<arch>, or an error that says how to build it. */
export function binary(arch: string): string {
  const file = path.join(DIST, `outpost-linux-${arch}`)
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run \`npm run package\` first (npm run test:package does)`)
  return file
}

/** A copy of a binary alone in a fresh folder: no node_modules anywhere near it. */
export function isolated(file: string, name = 'outpost'): string {
  const dir = tmpDir()
  const dest = path.join(dir, name)
  fs.copyFileSync(file, dest)
  fs.chmodSync(dest, 0o755)
  return dest
}

export interface Run { code: number | null; stdout: string; stderr: string }

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Run {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? os.tmpdir(), env: { ...process.env, ...opts.env }, encoding: 'utf8', timeout: opts.timeout ?? 60_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr + (r.error ? String(r.error) : '') }
}

/** `npm run package` for x64 with another version (and entry) into `out`; reuses the cached base. */
export function buildVariant(out: string, version: string, entry?: string): string {
  const args = ['--import', 'tsx', path.join(ROOT, 'packaging', 'package.mjs'), '--arch', 'x64', '--version', version, '--out', out, ...(entry ? ['--entry', entry] : [])]
  const r = run(process.execPath, args, { cwd: ROOT, timeout: 300_000 })
  if (r.code !== 0) throw new Error(`building ${version} failed:\n${r.stdout}\n${r.stderr}`)
  return path.join(out, 'outpost-linux-x64')
}

/** Serves a folder over http on 127.0.0.1; files are read at request time. */
export async function serve(dir: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const file = path.join(dir, decodeURIComponent((req.url ?? '/').split('?')[0]!))
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) { res.writeHead(404).end(); return }
    res.writeHead(200, { 'content-length': fs.statSync(file).size })
    fs.createReadStream(file).pipe(res)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, close: () => new Promise((r) => server.close(() => r())) }
}

/** A long-running binary process with its output collected. */
export class BinProc {
  readonly child: ChildProcess
  output = ''
  readonly exited: Promise<number | null>

  constructor(file: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
    this.child = spawn(file, args, { cwd: opts.cwd ?? os.tmpdir(), env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    const take = (d: Buffer): void => { this.output += d.toString() }
    this.child.stdout!.on('data', take)
    this.child.stderr!.on('data', take)
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)))
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill(signal)
    await this.exited
  }
}

/**
 * A service manager in miniature (systemd's Restart=always): starts the binary again whenever
 * it exits, with OUTPOST_RESTART=exit as install.sh's unit sets it.
 */
export class Supervisor {
  output = ''
  starts = 0
  private current: BinProc | undefined
  private stopped = false

  constructor(private readonly file: string, private readonly args: string[], private readonly cwd: string) {
    this.start()
  }

  private start(): void {
    if (this.stopped) return
    this.starts++
    const p = new BinProc(this.file, this.args, { cwd: this.cwd, env: { OUTPOST_RESTART: 'exit' } })
    this.current = p
    p.child.stdout!.on('data', (d: Buffer) => { this.output += d.toString() })
    p.child.stderr!.on('data', (d: Buffer) => { this.output += d.toString() })
    void p.exited.then((code) => {
      this.output += `[supervisor: exit ${code}]\n`
      setTimeout(() => this.start(), 300)
    })
  }

  async waitFor(test: () => boolean, ms: number, what: string): Promise<void> {
    const end = Date.now() + ms
    while (!test()) {
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; output:\n${this.output.slice(-4000)}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.current?.stop()
  }
}

export async function until(test: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** Like run, without blocking this process's event loop (needed when it serves the files). */
export function runAsync(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? os.tmpdir(), env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { stderr += `\n[killed after ${opts.timeout ?? 60_000} ms]`; child.kill('SIGKILL') }, opts.timeout ?? 60_000)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}
