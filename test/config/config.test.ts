import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { defaultConfig, editConfig, getKey, initText, loadConfig, parseCliValue, parseConfig, resolveConfigPath } from '../../src/config'
import type { DefaultsContext } from '../../src/config/schema'
import { throwsCode } from '../helpers'
import { PROTO_NAMES } from '../chaos/fuzz'

const CTX: DefaultsContext = { hostname: 'ship1.example.net', uid: 1000, home: '/home/sailor' }


const parse = (text: string, ctx: DefaultsContext = CTX) => parseConfig(text, 'outpost.yaml', ctx)

const dirs: string[] = []
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'outpost-config-'))
  dirs.push(d)
  return d
}
test.after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

function writeTmp(text: string): { dir: string; file: string } {
  const dir = tmpDir()
  const file = path.join(dir, 'outpost.yaml')
  fs.writeFileSync(file, text)
  return { dir, file }
}

// --- parseConfig: errors name the key and the line ------------------------------------------

test('config - security.nodeKeys takes node names to ed25519:<base64> keys, and names a bad entry', () => {
  const key = 'ed25519:' + Buffer.alloc(32, 7).toString('base64')
  assert.equal(parse(`security:\n  nodeKeys:\n    ship1: "${key}"\n`).security.nodeKeys, { ship1: key })
  throwsCode(() => parse('security:\n  nodeKeys:\n    ship1: "ssh-ed25519 AAAA"\n'), 'config_invalid', 'security.nodeKeys', 'ship1 must be ed25519:', '(line 3)')
  throwsCode(() => parse(`security:\n  nodeKeys:\n    "bad name": "${key}"\n`), 'config_invalid', 'security.nodeKeys', '"bad name"')
})

test('config - files.roots and files.read take absolute directories only, and a relative one is named with its line', () => {
  throwsCode(() => parse('files:\n  roots: [/srv/in, relative/dir]\n'), 'config_invalid', 'files.roots', 'must list absolute directories, got "relative/dir"', '(line 2)')
  throwsCode(() => parse('files:\n  read:\n    - ./logs\n'), 'config_invalid', 'files.read', '"./logs"', '(line 3)')
  assert.equal(parse('files:\n  roots: [/srv/in]\n').files.roots, ['/srv/in'])
})

test('config - an unknown key names the key, its line and the key it probably meant', () => {
  throwsCode(() => parse('node:\n  name: ship1\n  nmae: ship2\n'), 'config_invalid', 'node.nmae', 'not a known key', "did you mean 'name'?", '(line 3)')
  throwsCode(() => parse('# comment\n\ndelivry:\n  retries: 3\n'), 'config_invalid', 'delivry', "did you mean 'delivery'?", '(line 3)')
  throwsCode(() => parse('log:\n  Level: debug\n'), 'config_invalid', 'log.Level', "did you mean 'level'?", '(line 2)')
})

test('config - an unknown key with no near match lists the known keys', () => {
  throwsCode(() => parse('log:\n  level: info\n  zzzzzz: 1\n'), 'config_invalid', 'log.zzzzzz', 'known: level, format, file', '(line 3)')
})

test('config - keys named like Object.prototype members are unknown keys', () => {
  const { file } = writeTmp('node:\n  name: ship1\n')
  throwsCode(() => editConfig(file, [{ key: 'toString', value: 'x' }], CTX), 'config_key', 'toString')
  throwsCode(() => editConfig(file, [{ key: 'node.constructor', value: 'x' }], CTX), 'config_key', 'node.constructor')
  assert.is(fs.readFileSync(file, 'utf8'), 'node:\n  name: ship1\n')
  throwsCode(() => parse('node:\n  toString: x\n'), 'config_invalid', 'node.toString', 'not a known key', '(line 2)')
  throwsCode(() => parse('constructor: 1\n'), 'config_invalid', 'constructor', 'not a known key', '(line 1)')
  throwsCode(() => parse('schedules:\n  - cron: "* * * * *"\n    method: node.ping\n    hasOwnProperty: 1\n'), 'config_invalid', 'schedules.0.hasOwnProperty', '(line 4)')
})

test('config - names in a map (hub.tokens, methods.commands) like Object.prototype members are names like any other: kept, read back, never inherited', () => {
  const c = parse('hub:\n  tokens:\n    __proto__: sha256:aa\n    constructor: sha256:bb\nmethods:\n  commands:\n    toString: "echo t"\n')
  assert.equal(Object.keys(c.hub.tokens), ['__proto__', 'constructor'])
  assert.is(Object.getPrototypeOf(c.hub.tokens), Object.prototype, 'the key __proto__ did not become the prototype')
  assert.is(getKey(c, 'hub.tokens.__proto__'), 'sha256:aa')
  assert.is(getKey(c, 'hub.tokens.constructor'), 'sha256:bb')
  assert.is(getKey(c, 'methods.commands.toString'), 'echo t')
  // A name the map does not hold is absent (null), whatever Object.prototype has under it.
  for (const name of PROTO_NAMES) {
    if (name !== 'toString') assert.is(getKey(c, `methods.commands.${name}`), null, `methods.commands.${name}`)
  }
  assert.is(JSON.parse(JSON.stringify(c)).hub.tokens.__proto__, 'sha256:aa', 'config show --json prints it')
  throwsCode(() => parse('hub:\n  tokens:\n    __proto__: {a: 1}\n'), 'config_invalid', 'hub.tokens.__proto__ must be a string', '(line 3)')
  // Set and unset in the file by such a name.
  const { file } = writeTmp('node:\n  name: ship1\n')
  const set = editConfig(file, [{ key: 'methods.commands.__proto__', value: 'echo p' }, { key: 'methods.commands.valueOf', value: 'echo v' }], CTX)
  assert.equal(Object.keys(set.methods.commands), ['__proto__', 'valueOf'])
  assert.is(getKey(loadConfig({ flag: file, defaults: CTX }).config, 'methods.commands.__proto__'), 'echo p')
  const unset = editConfig(file, [{ key: 'methods.commands.__proto__', unset: true }], CTX)
  assert.equal(Object.keys(unset.methods.commands), ['valueOf'])
  assert.is(({} as Record<string, unknown>).a, undefined, 'Object.prototype is untouched')
})

test('config - a wrong type names the key and its line', () => {
  throwsCode(() => parse('node:\n  name: ship1\ndelivery:\n  retries: abc\n'), 'config_invalid', 'delivery.retries', 'whole number', '"abc"', '(line 4)')
  throwsCode(() => parse('delivery: { ttl: 1.5 }\n'), 'config_invalid', 'delivery.ttl', 'whole number', '(line 1)')
  throwsCode(() => parse('\n\ndataDir: 5\n'), 'config_invalid', 'dataDir', 'must be a string', 'quote it', '(line 3)')
  throwsCode(() => parse('transport:\n  kind: tcp\n  servers: tcp://hub:7430\n'), 'config_invalid', 'transport.servers', 'list of strings', '(line 3)')
  throwsCode(() => parse('hub:\n  tls:\n    requireClientCert: "yes"\n'), 'config_invalid', 'hub.tls.requireClientCert', 'true or false', '(line 3)')
  throwsCode(() => parse('node: ship1\n'), 'config_invalid', 'node', 'mapping', '(line 1)')
})

test('config - a value out of range names the key and its line', () => {
  throwsCode(() => parse('delivery:\n  ttl: 0\n'), 'config_invalid', 'delivery.ttl', 'at least 1', '(line 2)')
  throwsCode(() => parse('node:\n  name: "bad name"\n'), 'config_invalid', 'node.name', 'node name', '(line 2)')
  throwsCode(() => parse('hub:\n  listen: nowhere\n'), 'config_invalid', 'hub.listen', 'host:port', '(line 2)')
})

test('config - an enum violation names the key, its line and the allowed values', () => {
  throwsCode(() => parse('log:\n  format: text\n  level: loud\n'), 'config_invalid', 'log.level', 'one of trace, debug, info, warn, error, silent', '"loud"', '(line 3)')
  throwsCode(() => parse('transport:\n  kind: carrier-pigeon\n'), 'config_invalid', 'transport.kind', 'one of tcp, mqtt, nats', '(line 2)')
})

test('config - reports every problem at once, in line order', () => {
  const msg = throwsCode(() => parse('log:\n  level: loud\ndelivery:\n  retries: -1\nbogus: 1\n'), 'config_invalid', 'outpost.yaml has 3 problems')
  const at = (s: string): number => msg.indexOf(s)
  assert.ok(at('log.level') >= 0 && at('delivery.retries') >= 0 && at('bogus') >= 0, msg)
  assert.ok(at('log.level') < at('delivery.retries') && at('delivery.retries') < at('bogus'), msg)
  assert.match(msg, /log\.level.*\(line 2\)/)
  assert.match(msg, /delivery\.retries.*\(line 4\)/)
  assert.match(msg, /bogus.*\(line 5\)/)
})

test('config - a YAML syntax error is config_parse with its line', () => {
  throwsCode(() => parse('node:\n  name: a\nnode:\n  name: b\n', CTX), 'config_parse', 'outpost.yaml', 'not valid YAML', '(line 3)')
  throwsCode(() => parse('node:\n\tname: a\n'), 'config_parse', '(line 2)')
  throwsCode(() => parse('# c\nnode:\n  name: ship1\n  central: "hq\nlog:\n  level: info\n'), 'config_parse', 'not valid YAML')
})

// --- defaults -------------------------------------------------------------------------------

test('config - an empty file gives the defaults', () => {
  const c = parse('')
  assert.equal(c.node, { name: 'ship1', central: 'central', labels: {} })
  assert.is(c.dataDir, '/home/sailor/.local/share/outpost')
  assert.is(c.transport.kind, 'tcp')
  assert.equal(c.transport.servers, ['tcp://127.0.0.1:7430'])
  assert.is(c.transport.token, null)
  assert.equal(c.delivery, { ackTimeout: 5, retries: 10, ttl: 86400, maxOutboxBytes: 268435456, reserveBytes: 4194304, maxFanOut: 10000, drainRate: 0, whenFull: 'refuse' })
  assert.equal(c.methods.enabled, ['*'])
  assert.equal(c.methods.allow, DEFAULT_ALLOW)
  assert.equal(c.schedules, [])
  assert.is(c.hello.interval, 30)
  assert.is(c.hub.listen, '0.0.0.0:7430')
  assert.is(c.log.level, 'info')
  assert.equal(parse('\n# only a comment\n\n'), c)
  assert.equal(parse('---\n'), c)
  assert.equal(defaultConfig(CTX), c)
})

const DEFAULT_ALLOW = [
  { from: ['$central', '$self'], methods: ['*'] },
  { from: ['*'], methods: ['reply.*', 'error.log', 'node.hello', 'node.pong'] },
]

test('config - defaults are fresh copies, not shared between parses', () => {
  const a = parse('')
  a.methods.enabled.push('x')
  a.methods.allow[0]?.from.push('y')
  const b = parse('')
  assert.equal(b.methods.enabled, ['*'])
  assert.equal(b.methods.allow, DEFAULT_ALLOW)
})

test('config - an empty section (all sub-keys commented out) gives its defaults', () => {
  const c = parse('node:\n  # name: ship9\n  # central: hq\ndelivery:\n  # retries: 1\nlog:\n  level: warn\n')
  assert.equal(c.node, { name: 'ship1', central: 'central', labels: {} })
  assert.equal(c.delivery, defaultConfig(CTX).delivery)
  assert.is(c.log.level, 'warn')
  assert.is(c.log.format, 'text')
  assert.equal(parse('schedules:\nhub:\n  tokens:\n').schedules, [])
})

test('config - values in the file override defaults and the other keys keep theirs', () => {
  const c = parse('node:\n  name: ship7\ntransport:\n  kind: nats\n  servers: ["nats://a:4222", "nats://b:4222"]\ndelivery: { retries: 2 }\n')
  assert.is(c.node.name, 'ship7')
  assert.is(c.node.central, 'central')
  assert.is(c.transport.kind, 'nats')
  assert.equal(c.transport.servers, ['nats://a:4222', 'nats://b:4222'])
  assert.is(c.transport.nats.subjectPrefix, 'outpost')
  assert.equal(c.delivery, { ackTimeout: 5, retries: 2, ttl: 86400, maxOutboxBytes: 268435456, reserveBytes: 4194304, maxFanOut: 10000, drainRate: 0, whenFull: 'refuse' })
})

test("config - node.name defaults to the first label of the host name", () => {
  const name = (hostname: string): string => parse('', { ...CTX, hostname }).node.name
  assert.is(name('ship1.example.net'), 'ship1')
  assert.is(name('edge-07'), 'edge-07')
  assert.is(name('Pi_4.local'), 'Pi_4')
  assert.is(name('weird host!.lan'), 'weird-host-')
  assert.is(name(''), 'node')
  assert.is(name('a'.repeat(80) + '.lan'), 'a'.repeat(63))
  // A node section without name still gets the host's name.
  assert.is(parse('node:\n  central: hq\n', { ...CTX, hostname: 'boat.sea' }).node.name, 'boat')
})

test('config - dataDir defaults to /var/lib/outpost for root and under the home directory otherwise', () => {
  assert.is(parse('', { ...CTX, uid: 0 }).dataDir, '/var/lib/outpost')
  assert.is(parse('', { ...CTX, uid: 1000, home: '/home/sailor' }).dataDir, '/home/sailor/.local/share/outpost')
  assert.is(parse('', { ...CTX, uid: 501, home: '/Users/x' }).dataDir, '/Users/x/.local/share/outpost')
  assert.is(parse('dataDir: /srv/outpost\n', { ...CTX, uid: 0 }).dataDir, '/srv/outpost')
})

// --- where the file is ----------------------------------------------------------------------

/** A scratch layout: a cwd with outpost.yaml, an "etc" file, and files for the variables. */
function layout(): { cwd: string; etc: string; flagFile: string; outpostEnv: string; configEnv: string; cwdFile: string } {
  const root = tmpDir()
  const cwd = path.join(root, 'work')
  fs.mkdirSync(cwd)
  const files = {
    cwdFile: path.join(cwd, 'outpost.yaml'),
    etc: path.join(root, 'etc-outpost.yaml'),
    flagFile: path.join(root, 'flag.yaml'),
    outpostEnv: path.join(root, 'outpost-env.yaml'),
    configEnv: path.join(root, 'config-env.yaml'),
  }
  for (const f of Object.values(files)) fs.writeFileSync(f, '')
  return { cwd, ...files }
}

test('config - resolveConfigPath prefers --config over everything', () => {
  const l = layout()
  const s = resolveConfigPath({ flag: l.flagFile, env: { OUTPOST_CONFIG: l.outpostEnv, CONFIG: l.configEnv }, cwd: l.cwd, etcPath: l.etc })
  assert.equal(s, { path: l.flagFile, exists: true, from: '--config' })
  // A relative flag is relative to the working directory, and may name a missing file.
  const rel = resolveConfigPath({ flag: 'sub/x.yaml', env: {}, cwd: l.cwd, etcPath: l.etc })
  assert.equal(rel, { path: path.join(l.cwd, 'sub', 'x.yaml'), exists: false, from: '--config' })
})

test('config - resolveConfigPath takes OUTPOST_CONFIG, then CONFIG', () => {
  const l = layout()
  assert.equal(resolveConfigPath({ env: { OUTPOST_CONFIG: l.outpostEnv, CONFIG: l.configEnv }, cwd: l.cwd, etcPath: l.etc }), { path: l.outpostEnv, exists: true, from: 'OUTPOST_CONFIG' })
  assert.equal(resolveConfigPath({ env: { CONFIG: l.configEnv }, cwd: l.cwd, etcPath: l.etc }), { path: l.configEnv, exists: true, from: 'CONFIG' })
  // An empty variable counts as unset.
  assert.equal(resolveConfigPath({ env: { OUTPOST_CONFIG: '', CONFIG: l.configEnv }, cwd: l.cwd, etcPath: l.etc }).from, 'CONFIG')
  assert.equal(resolveConfigPath({ flag: '', env: { OUTPOST_CONFIG: l.outpostEnv }, cwd: l.cwd, etcPath: l.etc }).from, 'OUTPOST_CONFIG')
})

test('config - resolveConfigPath takes ./outpost.yaml, then the etc path', () => {
  const l = layout()
  assert.equal(resolveConfigPath({ env: {}, cwd: l.cwd, etcPath: l.etc }), { path: l.cwdFile, exists: true, from: 'cwd' })
  fs.rmSync(l.cwdFile)
  assert.equal(resolveConfigPath({ env: {}, cwd: l.cwd, etcPath: l.etc }), { path: l.etc, exists: true, from: 'etc' })
  fs.rmSync(l.etc)
  // Nothing anywhere: the file `config set` / `config init` would create.
  assert.equal(resolveConfigPath({ env: {}, cwd: l.cwd, etcPath: l.etc }), { path: l.cwdFile, exists: false, from: 'none' })
})

test('config - loadConfig with an explicit missing path throws config_not_found', () => {
  const d = tmpDir()
  const missing = path.join(d, 'nope.yaml')
  throwsCode(() => loadConfig({ flag: missing, env: {}, cwd: d, etcPath: path.join(d, 'etc.yaml'), defaults: CTX }), 'config_not_found', missing, '--config')
  throwsCode(() => loadConfig({ env: { OUTPOST_CONFIG: missing }, cwd: d, etcPath: path.join(d, 'etc.yaml'), defaults: CTX }), 'config_not_found', 'OUTPOST_CONFIG')
  throwsCode(() => loadConfig({ env: { CONFIG: missing }, cwd: d, etcPath: path.join(d, 'etc.yaml'), defaults: CTX }), 'config_not_found', 'CONFIG')
})

test('config - loadConfig reads the file the lookup finds, and defaults when there is none', () => {
  const d = tmpDir()
  const etc = path.join(d, 'etc.yaml')
  const none = loadConfig({ env: {}, cwd: d, etcPath: etc, defaults: CTX })
  assert.is(none.source.from, 'none')
  assert.equal(none.config, defaultConfig(CTX))
  fs.writeFileSync(etc, 'node:\n  name: from-etc\n')
  const loaded = loadConfig({ env: {}, cwd: d, etcPath: etc, defaults: CTX })
  assert.is(loaded.source.from, 'etc')
  assert.is(loaded.config.node.name, 'from-etc')
  fs.writeFileSync(path.join(d, 'outpost.yaml'), 'log: { level: nope }\n')
  throwsCode(() => loadConfig({ env: {}, cwd: d, etcPath: etc, defaults: CTX }), 'config_invalid', 'log.level', '(line 1)')
})

// --- editing --------------------------------------------------------------------------------

const COMMENTED = `# outpost on ship1
# managed by hand

node:
  name: ship1   # the boat
  # who gets the replies
  central: hq

# tuned for a slow satellite link
delivery:
  retries: 3    # few
  ttl: 600
log:
  level: debug  # while testing
`

/** Inline comments may be re-spaced by the writer; everything else must stay as it was. */
const normalize = (text: string): string[] => text.split('\n').map((l) => l.replace(/\s+#/, ' #'))

test('config - editConfig keeps comments and layout', () => {
  const { file } = writeTmp(COMMENTED)
  const config = editConfig(file, [{ key: 'delivery.retries', value: parseCliValue('7') }], CTX)
  const after = fs.readFileSync(file, 'utf8')
  assert.equal(normalize(after), normalize(COMMENTED.replace('retries: 3    # few', 'retries: 7 # few')))
  for (const line of ['# outpost on ship1', '# managed by hand', '  # who gets the replies', '# tuned for a slow satellite link']) {
    assert.ok(after.split('\n').includes(line), `lost ${JSON.stringify(line)}`)
  }
  assert.is(config.delivery.retries, 7)
  assert.is(config.node.central, 'hq')
})

test("config - parseCliValue('7') stores the number 7", () => {
  assert.is(parseCliValue('7'), 7)
  assert.is(parseCliValue('"7"'), '7')
  assert.is(parseCliValue('on'), 'on')
  assert.is(parseCliValue('true'), true)
  assert.equal(parseCliValue('[a, b]'), ['a', 'b'])
  assert.is(parseCliValue('/var/lib/outpost'), '/var/lib/outpost')
  const { file } = writeTmp('delivery:\n  retries: 3\n')
  editConfig(file, [{ key: 'delivery.retries', value: parseCliValue('7') }], CTX)
  const text = fs.readFileSync(file, 'utf8')
  assert.is(text, 'delivery:\n  retries: 7\n')
  assert.is(YAML.parse(text).delivery.retries, 7)
  assert.is(parse(text).delivery.retries, 7)
})

test('config - setting an unknown key throws config_key and leaves the file byte-identical', () => {
  const { dir, file } = writeTmp(COMMENTED)
  throwsCode(() => editConfig(file, [{ key: 'delivery.retires', value: 7 }], CTX), 'config_key', 'delivery.retires')
  throwsCode(() => editConfig(file, [{ key: 'nosuch', value: 'x' }], CTX), 'config_key', 'nosuch')
  throwsCode(() => editConfig(file, [{ key: 'delivery..retries', value: 1 }], CTX), 'config_key')
  throwsCode(() => editConfig(file, [{ key: 'delivery.retries.deeper', value: 1 }], CTX), 'config_key')
  assert.is(fs.readFileSync(file, 'utf8'), COMMENTED)
  assert.equal(fs.readdirSync(dir), ['outpost.yaml'])
})

test('config - setting a wrong-typed value throws config_invalid and leaves the file unchanged', () => {
  const { dir, file } = writeTmp(COMMENTED)
  throwsCode(() => editConfig(file, [{ key: 'delivery.retries', value: parseCliValue('abc') }], CTX), 'config_invalid', 'delivery.retries', 'whole number')
  throwsCode(() => editConfig(file, [{ key: 'log.level', value: 'loud' }], CTX), 'config_invalid', 'log.level')
  // One bad edit in a batch: none of them is applied.
  throwsCode(() => editConfig(file, [{ key: 'node.name', value: 'ship2' }, { key: 'delivery.ttl', value: 0 }], CTX), 'config_invalid', 'delivery.ttl')
  assert.is(fs.readFileSync(file, 'utf8'), COMMENTED)
  assert.equal(fs.readdirSync(dir), ['outpost.yaml'], 'no temporary file is left behind')
})

test('config - unset removes a key and prunes an emptied parent section', () => {
  const text = '# my node\n\nnode:\n  name: ship1\nhub:\n  tls:\n    requireClientCert: true\nlog:\n  level: debug\n  format: json\n'
  const { file } = writeTmp(text)
  let config = editConfig(file, [{ key: 'log.level', unset: true }], CTX)
  assert.is(fs.readFileSync(file, 'utf8'), '# my node\n\nnode:\n  name: ship1\nhub:\n  tls:\n    requireClientCert: true\nlog:\n  format: json\n')
  assert.is(config.log.level, 'info', 'back to the default')
  // Emptying hub.tls empties hub too: both go.
  config = editConfig(file, [{ key: 'hub.tls.requireClientCert', unset: true }], CTX)
  assert.is(fs.readFileSync(file, 'utf8'), '# my node\n\nnode:\n  name: ship1\nlog:\n  format: json\n')
  assert.is(config.hub.tls.requireClientCert, false)
  // Unsetting a key the file does not have changes nothing.
  editConfig(file, [{ key: 'delivery.ttl', unset: true }], CTX)
  assert.is(fs.readFileSync(file, 'utf8'), '# my node\n\nnode:\n  name: ship1\nlog:\n  format: json\n')
})

test('config - set into a file that does not exist creates it', () => {
  const dir = tmpDir()
  const file = path.join(dir, 'nested', 'outpost.yaml')
  const config = editConfig(file, [{ key: 'node.name', value: 'ship3' }, { key: 'transport.servers', value: ['tcp://hub:7430'] }], CTX)
  assert.ok(fs.existsSync(file))
  const text = fs.readFileSync(file, 'utf8')
  assert.equal(parse(text).node.name, 'ship3')
  assert.equal(parse(text).transport.servers, ['tcp://hub:7430'])
  assert.is(config.node.name, 'ship3')
  assert.is(config.delivery.retries, 10)
})

test('config - set into an empty section keeps the commented-out keys', () => {
  const text = '# settings\nnode:\n  # name: ship9\n  # central: hq\nlog:\n  level: warn\n'
  const { file } = writeTmp(text)
  editConfig(file, [{ key: 'node.name', value: 'ship2' }], CTX)
  const after = fs.readFileSync(file, 'utf8')
  for (const line of ['# settings', '  # name: ship9', '  # central: hq', '  level: warn']) {
    assert.ok(after.split('\n').includes(line), `lost ${JSON.stringify(line)} in:\n${after}`)
  }
  assert.is(parse(after).node.name, 'ship2')
})

// --- config init ----------------------------------------------------------------------------

test('config - initText parses back to exactly the defaults', () => {
  for (const ctx of [CTX, { hostname: 'root-box', uid: 0, home: '/root' }, { hostname: '0123.lan', uid: 1000, home: '/home/a b' }, { hostname: 'null', uid: 7, home: '/h' }]) {
    assert.equal(parse(initText(ctx), ctx), defaultConfig(ctx), `hostname ${ctx.hostname}`)
  }
  assert.is(parse(initText({ hostname: '0123.lan', uid: 1000, home: '/h' })).node.name, '0123')
})

test("config - initText has a '#' comment line before every top-level key", () => {
  const lines = initText(CTX).split('\n')
  const topKeys: string[] = []
  lines.forEach((line, i) => {
    const m = /^([A-Za-z][A-Za-z0-9]*):/.exec(line)
    if (m === null) return
    topKeys.push(m[1]!)
    assert.match(lines[i - 1] ?? '', /^# \S/, `no comment before ${m[1]}`)
  })
  assert.equal(topKeys, Object.keys(defaultConfig(CTX)))
})

test.run()
