/**
 * `outpost up` turns signatures on for its quickstart: an operator key made once in ./var
 * (0600), central's APIs sign with it, and both nodes require signatures by it. The quickstart's
 * commands work as pasted; an unsigned message from a third node is refused, even where the ACL
 * would let it run.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { hashToken } from '../../src/hub'
import { publicKeyText, readKeyFile } from '../../src/keys'
import { Proc, editYaml, freePort, section, tmpDir } from '../fixtures/cluster'
import { runCli } from '../fixtures/run-cli'

/** The CLI as a user runs it, from `cwd`. */
const outpost = runCli

test('outpost up - its nodes run what its operator key signed, and refuse an unsigned message from a third node', async () => {
  const dir = tmpDir('outpost-up-sig-')
  const port = await freePort()
  const file = path.join(dir, 'outpost.yaml')
  const keyFile = path.join(dir, 'var', 'operator.key')
  let up = new Proc(['up', '--port', String(port)], { cwd: dir })
  let intruder: Proc | undefined
  try {
    await up.waitFor(/Ctrl-C stops/, 20_000)
    // The key: made in ./var, 0600, trusted for everything by the file up wrote.
    assert.is(fs.statSync(keyFile).mode & 0o777, 0o600)
    const key = fs.readFileSync(keyFile, 'utf8')
    const doc = YAML.parse(fs.readFileSync(file, 'utf8')) as { api: { signingKey: string }; security: { requireSignatures: unknown; trustedKeys: { publicKey: string; methods: string[] }[] } }
    assert.is(doc.api.signingKey, './var/operator.key')
    assert.is(doc.security.requireSignatures, true)
    assert.equal(doc.security.trustedKeys.map((k) => [k.publicKey, k.methods]), [[publicKeyText(readKeyFile(keyFile).publicKey), ['*']]])
    // The quickstart's command as pasted: through central's socket, signed there.
    const hi = await outpost(['send', '--to', 'local', 'cli.run', '--', 'echo hi'], dir)
    assert.is(hi.code, 0, hi.stderr)
    assert.match(hi.stdout, /^hi$/m)
    await up.stop('SIGINT')

    // A third node with a token at the hub, and an ACL on both nodes that lets any node call anything.
    editYaml(file, (d) => {
      section(section(d, 'hub'), 'tokens').intruder = hashToken('intruder-token-0123456789')
      section(d, 'methods').allow = [{ from: ['*'], methods: ['*'] }]
    })
    up = new Proc(['up', '--port', String(port)], { cwd: dir })
    await up.waitFor(/Ctrl-C stops/, 20_000)
    assert.is(fs.readFileSync(keyFile, 'utf8'), key, 'the key is made once and kept')
    const intruderFile = path.join(dir, 'intruder.yaml')
    fs.writeFileSync(intruderFile, YAML.stringify({
      node: { name: 'intruder', central: 'central' }, dataDir: path.join(dir, 'intruder'),
      transport: { servers: [`tcp://127.0.0.1:${port}`], token: 'intruder-token-0123456789' },
    }))
    intruder = new Proc(['agent', '--config', intruderFile], { cwd: dir })
    await intruder.waitFor(/connected to tcp:/, 20_000)
    for (const to of ['local', 'central']) {
      const pwned = path.join(dir, `pwned-${to}`)
      const r = await outpost(['send', '--config', intruderFile, '--allow-unknown', '--to', to, 'cli.run', '--', `touch ${pwned}`], dir)
      assert.is(r.code, 3, `${r.stdout}\n${r.stderr}`)
      assert.match(r.stderr, /signature_required/)
      assert.not.ok(fs.existsSync(pwned), `an unsigned cli.run from intruder ran on ${to}`)
    }
    // The honest path still works after the restart.
    const again = await outpost(['send', '--to', 'local', 'cli.run', '--', 'echo again'], dir)
    assert.is(again.code, 0, again.stderr)
  } finally {
    await intruder?.stop()
    await up.stop('SIGINT')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
