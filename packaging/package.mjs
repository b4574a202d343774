// npm run package: one single binary per architecture with @yao-pkg/pkg's --sea mode, offline
// but for the npm registry (stock Node binaries come as the npm packages node-linux-<arch>).
//
//   npm pack node-linux-<arch>  ─▶ ~/.pkg-cache/sea/node-v<ver>-linux-<arch>/bin/node (+ .ok)
//   esbuild (bundle.mjs, per arch) ─▶ <cache>/work/outpost-<arch>.cjs + .pack (wasm, pty addon, …)
//   pkg sea (run under Node 22) ─▶ dist/outpost-linux-<arch>   (ppc64le: dynsym repaired)
//   + the pack appended to the executable (src/lib/pack.ts reads it through /proc/self/exe)
//   ─▶ dist/SHA256SUMS, dist/version.json (signed with OUTPOST_SIGNING_KEY when set)
//
// Usage: node --import tsx packaging/package.mjs [--arch x64,arm64,ppc64le] [--version V]
//        [--out DIR] [--base-url URL] [--sign-key FILE]
// pkg 6.14's CLI always fetches SHASUMS256.txt from nodejs.org, even for a cached base binary,
// so its sea() is called directly with `nodePath`; the cache layout and the `.ok` marker match
// what the pkg CLI itself looks for, so a pkg that honours the marker finds the same files.
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { bundle, packFile, root } from './bundle.mjs'
import { repairDynsym } from './elf.mjs'
import { signRelease } from '../src/upgrade/release.ts'

/**
 * Base Node per architecture: 22 LTS (security fixes until 2027-04) where npm has it; ppc64le's
 * newest npm build is 20.11. OUTPOST_BASE_NODE=20.20.2 trades that for 25 MiB smaller x64/arm64
 * binaries; idle RSS is within a few MB of Node 22's since the bundle was slimmed (docs/operations.md,
 * "Single binaries").
 */
const BASE = process.env.OUTPOST_BASE_NODE ?? '22.23.2'
export const TARGETS = {
  x64: { node: BASE, pkgArch: 'x64', seaArch: 'x64', ptyPackage: '@lydell/node-pty-linux-x64' },
  arm64: { node: BASE, pkgArch: 'arm64', seaArch: 'arm64', ptyPackage: '@lydell/node-pty-linux-arm64' },
  ppc64le: { node: '20.11.0', pkgArch: 'ppc64', seaArch: 'ppc64', ptyPackage: null },
}
/** pkg itself runs under this (x64 host). */
const PKG_NODE = '22.23.2'

export const cacheDir = process.env.OUTPOST_BUILD_CACHE ?? path.join(os.homedir(), '.cache', 'outpost-build')
const seaCache = path.join(os.homedir(), '.pkg-cache', 'sea')

const t0 = Date.now()
const say = (msg) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`)

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts })
}

/** `npm pack NAME@VERSION` into the cache once; returns the .tgz path. */
function npmPack(spec) {
  fs.mkdirSync(cacheDir, { recursive: true })
  const name = spec.replace(/^@/, '').replace('/', '-').replace(/@/, '-') + '.tgz'
  const file = path.join(cacheDir, name)
  if (fs.existsSync(file)) return file
  say(`fetching ${spec} from the npm registry`)
  const out = sh('npm', ['pack', spec, '--pack-destination', cacheDir, '--json', '--silent'], { cwd: cacheDir })
  const got = JSON.parse(out)[0]?.filename
  if (!got || !fs.existsSync(path.join(cacheDir, got))) throw new Error(`npm pack ${spec} produced no file`)
  if (path.join(cacheDir, got) !== file) fs.renameSync(path.join(cacheDir, got), file)
  return file
}

/** One file out of an npm tarball (`package/<inner>`) to `dest`. */
function extractFrom(tgz, inner, dest) {
  const tmp = fs.mkdtempSync(path.join(cacheDir, 'x-'))
  try {
    sh('tar', ['-xzf', tgz, '-C', tmp, `package/${inner}`])
    fs.mkdirSync(path.dirname(dest), { recursive: true })
    fs.renameSync(path.join(tmp, 'package', inner), dest)
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

/** The stock Node binary for an architecture, from the cache or npm (the .ok marker says complete). */
export function baseNode(version, seaArch) {
  const npmArch = seaArch === 'ppc64' ? 'ppc64le' : seaArch
  const dir = path.join(seaCache, `node-v${version}-linux-${seaArch}`)
  const bin = path.join(dir, 'bin', 'node')
  const marker = `${dir}.tar.gz.ok`
  if (fs.existsSync(marker) && fs.existsSync(bin)) return bin
  const tgz = npmPack(`node-linux-${npmArch}@${version}`)
  say(`extracting node ${version} linux-${npmArch} into ${dir}`)
  extractFrom(tgz, 'bin/node', bin)
  fs.chmodSync(bin, 0o755)
  // pkg's own cache entry: the archive it would have downloaded, repacked with its layout.
  sh('tar', ['-czf', `${dir}.tar.gz`, '-C', seaCache, path.basename(dir)])
  fs.writeFileSync(marker, `${sha256File(bin)}  bin/node\n`)
  return bin
}

/** postject, which pkg runs through `npx postject`: unpacked once where npx finds it locally. */
function postjectHome() {
  const home = path.join(cacheDir, 'tools')
  const mod = path.join(home, 'node_modules')
  if (!fs.existsSync(path.join(mod, '.bin', 'postject'))) {
    say('fetching postject and commander (pkg injects the blob with them)')
    for (const [name, ver] of [['postject', '1.0.0-alpha.6'], ['commander', '9.5.0']]) {
      const tgz = npmPack(`${name}@${ver}`)
      fs.mkdirSync(path.join(mod, name), { recursive: true })
      sh('tar', ['-xzf', tgz, '-C', path.join(mod, name), '--strip-components=1'])
    }
    fs.mkdirSync(path.join(mod, '.bin'), { recursive: true })
    fs.writeFileSync(path.join(home, 'package.json'), '{"private":true,"dependencies":{"postject":"1.0.0-alpha.6"}}\n')
    fs.rmSync(path.join(mod, '.bin', 'postject'), { force: true })
    fs.symlinkSync('../postject/dist/cli.js', path.join(mod, '.bin', 'postject'))
  }
  fs.mkdirSync(path.join(home, 'tmp'), { recursive: true })
  return home
}

/** The pty addon for an architecture, or null (the binary then uses the detached-child fallback). */
function ptyAddon(arch) {
  const t = TARGETS[arch]
  const version = JSON.parse(fs.readFileSync(path.join(root, 'node_modules/@lydell/node-pty/package.json'), 'utf8')).version
  if (t.ptyPackage) {
    const local = path.join(root, 'node_modules', t.ptyPackage, 'pty.node')
    if (fs.existsSync(local)) return local
    const dest = path.join(cacheDir, `pty-${version}-linux-${arch}.node`)
    if (!fs.existsSync(dest)) extractFrom(npmPack(`${t.ptyPackage}@${version}`), 'pty.node', dest)
    return dest
  }
  // ppc64le: no prebuilt package; cross-built from node-pty's source when the compiler is here.
  const dest = path.join(cacheDir, `pty-${version}-linux-${arch}.node`)
  if (fs.existsSync(dest)) return dest
  if (spawnSync('powerpc64le-linux-gnu-g++', ['--version']).status !== 0) {
    say(`no pty addon for ${arch} (install g++-powerpc64le-linux-gnu to cross-build one): the binary falls back to detached process groups`)
    return null
  }
  try {
    return crossBuildPty(version, dest)
  } catch (err) {
    say(`cross-building the pty addon for ${arch} failed (${err.message.split('\n')[0]}): shipping without it`)
    return null
  }
}

function crossBuildPty(version, dest) {
  say(`cross-building node-pty ${version} for ppc64le`)
  const src = path.join(cacheDir, `node-pty-src-${version}`)
  fs.rmSync(src, { recursive: true, force: true })
  fs.mkdirSync(src, { recursive: true })
  sh('tar', ['-xzf', npmPack(`node-pty@${version}`), '-C', src, '--strip-components=1'])
  // Its one dependency is header-only: binding.gyp asks it for include paths.
  const addonApi = path.join(src, 'node_modules', 'node-addon-api')
  fs.mkdirSync(addonApi, { recursive: true })
  sh('tar', ['-xzf', npmPack('node-addon-api@7.1.1'), '-C', addonApi, '--strip-components=1'])
  const gyp = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  const env = { ...process.env, CC: 'powerpc64le-linux-gnu-gcc', CXX: 'powerpc64le-linux-gnu-g++', LINK: 'powerpc64le-linux-gnu-g++', AR: 'powerpc64le-linux-gnu-ar' }
  // Node's own headers (N-API: one addon serves Node 20 and 22); node-gyp must not download any.
  const nodedir = process.env.npm_config_nodedir ?? path.join(path.dirname(process.execPath), '..')
  sh(process.execPath, [gyp, 'rebuild', '--arch=ppc64', `--nodedir=${nodedir}`], { cwd: src, env })
  fs.copyFileSync(path.join(src, 'build', 'Release', 'pty.node'), dest)
  return dest
}

export function sha256File(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

/**
 * A single binary from a CommonJS entry with pkg's sea(). `blobNode` generates the blob: it must
 * be the base binary's Node major, and runs on this x64 host.
 */
export function seaBuild({ entry, output, arch }) {
  const t = TARGETS[arch]
  const nodePath = baseNode(t.node, t.seaArch)
  const pkgNode = baseNode(PKG_NODE, 'x64')
  const blobNode = t.node.split('.')[0] === PKG_NODE.split('.')[0] ? pkgNode : process.execPath
  const tools = postjectHome()
  const script = `
    const sea = require(${JSON.stringify(path.join(root, 'node_modules/@yao-pkg/pkg/lib-es5/sea.js'))}).default
    sea(${JSON.stringify(entry)}, { nodePath: ${JSON.stringify(nodePath)}, targets: [{ nodeRange: 'node${t.node}', platform: 'linux', arch: ${JSON.stringify(t.pkgArch)}, output: ${JSON.stringify(output)} }] })
      .catch((e) => { console.error(e); process.exit(1) })`
  fs.rmSync(output, { force: true })
  const r = spawnSync(pkgNode, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${path.dirname(blobNode)}:${path.join(tools, 'node_modules', '.bin')}:${process.env.PATH}`, TMPDIR: path.join(tools, 'tmp'), npm_config_yes: 'true', npm_config_offline: 'true' },
  })
  if (r.status !== 0 || !fs.existsSync(output)) throw new Error(`pkg --sea for ${arch} failed:\n${r.stdout}\n${r.stderr}`)
  if (arch === 'ppc64le') say(`linux-${arch}: restored ${repairDynsym(nodePath, output)} dynamic-symbol sections from the base binary`)
  fs.chmodSync(output, 0o755)
}

function human(n) {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`
}

async function main() {
  const { values } = parseArgs({
    options: {
      arch: { type: 'string', default: Object.keys(TARGETS).join(',') },
      version: { type: 'string' },
      out: { type: 'string', default: path.join(root, 'dist') },
      'base-url': { type: 'string' },
      'sign-key': { type: 'string' },
      // Tests build deliberately broken binaries from another entry with the same base.
      entry: { type: 'string' },
    },
  })
  const arches = values.arch.split(',').map((a) => a.trim()).filter(Boolean)
  for (const a of arches) if (!(a in TARGETS)) throw new Error(`unknown --arch ${a} (have ${Object.keys(TARGETS).join(', ')})`)
  const version = values.version ?? JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version
  const out = path.resolve(values.out)
  fs.mkdirSync(out, { recursive: true })
  const work = path.join(cacheDir, 'work')
  fs.mkdirSync(work, { recursive: true })
  say(`outpost ${version}: building ${arches.map((a) => `linux-${a}`).join(', ')} into ${out}`)
  const rows = []
  for (const arch of arches) {
    const started = Date.now()
    const addon = ptyAddon(arch)
    const entry = path.join(work, `outpost-${arch}-${process.pid}.cjs`)
    const bytes = await bundle({ outfile: entry, sea: true, ptyAddon: addon, version, ...(values.entry ? { entry: path.resolve(values.entry) } : {}) })
    say(`linux-${arch}: bundled ${human(bytes)} with its pack (sql.js wasm${addon ? ' + pty addon' : ', no pty addon'})`)
    const output = path.join(out, `outpost-linux-${arch}`)
    seaBuild({ entry, output, arch })
    // After the ELF and its injected blob: the loader ignores bytes past the last segment.
    fs.appendFileSync(output, fs.readFileSync(packFile(entry)))
    fs.rmSync(entry, { force: true })
    fs.rmSync(packFile(entry), { force: true })
    const size = fs.statSync(output).size
    say(`linux-${arch}: ${path.relative(process.cwd(), output) || output} ${human(size)} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    rows.push({ arch, file: path.basename(output), size, sha256: sha256File(output), node: TARGETS[arch].node, pty: addon !== null })
  }
  // SHA256SUMS and version.json cover every binary present in the output folder, so a build of
  // one architecture does not drop the others from the release files.
  const all = Object.keys(TARGETS).filter((a) => fs.existsSync(path.join(out, `outpost-linux-${a}`)))
  const sums = all.map((a) => {
    const row = rows.find((r) => r.arch === a)
    return { arch: a, file: `outpost-linux-${a}`, sha256: row?.sha256 ?? sha256File(path.join(out, `outpost-linux-${a}`)), size: fs.statSync(path.join(out, `outpost-linux-${a}`)).size }
  })
  fs.writeFileSync(path.join(out, 'SHA256SUMS'), sums.map((s) => `${s.sha256}  ${s.file}\n`).join(''))
  const base = values['base-url'] ?? process.env.OUTPOST_RELEASE_URL
  const release = {
    version,
    assets: Object.fromEntries(sums.map((s) => [`linux-${s.arch}`, { url: base ? `${base.replace(/\/$/, '')}/${s.file}` : s.file, sha256: s.sha256, size: s.size }])),
  }
  const keyFile = values['sign-key'] ?? process.env.OUTPOST_SIGNING_KEY
  if (keyFile) release.signature = signRelease(release, fs.readFileSync(keyFile, 'utf8'))
  fs.writeFileSync(path.join(out, 'version.json'), JSON.stringify(release, null, 2) + '\n')
  say(`wrote SHA256SUMS and version.json${keyFile ? ' (signed)' : ' (unsigned: set OUTPOST_SIGNING_KEY, or sign it with npm run sign)'}`)
  process.stdout.write('\n  binary                  size        node      pty   sha256\n')
  for (const r of rows) process.stdout.write(`  ${r.file.padEnd(22)}  ${human(r.size).padEnd(10)}  ${r.node.padEnd(8)}  ${(r.pty ? 'yes' : 'no').padEnd(4)}  ${r.sha256.slice(0, 16)}…\n`)
  say('done')
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main().catch((err) => {
    process.stderr.write(`package: ${err.stack ?? err}\n`)
    process.exit(1)
  })
}
