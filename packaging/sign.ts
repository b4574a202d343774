/**
 * Signs a release file: `npm run sign -- --key PRIVATE.pem dist/version.json` writes the
 * ed25519 signature over the canonical form (src/upgrade/release.ts) into the file's `signature`.
 * `npm run sign -- --gen-key DIR` makes a key pair: DIR/outpost-release.key (PKCS#8 PEM, keep
 * it off the fleet) and DIR/outpost-release.pub (the base64 for upgrade.publicKey).
 * Also: --verify PUBKEY checks a signed file.
 */
import { generateKeyPairSync } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { parseRelease, publicKeyFrom, signRelease, verifyRelease } from '../src/upgrade/release'

const { values, positionals } = parseArgs({ options: { key: { type: 'string' }, 'gen-key': { type: 'string' }, verify: { type: 'string' } }, allowPositionals: true })

function fail(msg: string): never {
  process.stderr.write(`sign: ${msg}\n`)
  process.exit(2)
}

if (values['gen-key'] !== undefined) {
  const dir = values['gen-key']
  fs.mkdirSync(dir, { recursive: true })
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64')
  fs.writeFileSync(path.join(dir, 'outpost-release.key'), privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
  fs.writeFileSync(path.join(dir, 'outpost-release.pub'), raw + '\n')
  process.stdout.write(`wrote ${path.join(dir, 'outpost-release.key')} and .pub; on the nodes: upgrade.publicKey: "${raw}"\n`)
  process.exit(0)
}

const file = positionals[0] ?? fail('usage: sign --key PRIVATE.pem VERSION.json | --verify PUBKEY VERSION.json | --gen-key DIR')
const release = parseRelease(JSON.parse(fs.readFileSync(file, 'utf8')), file)
if (values.verify !== undefined) {
  const key = fs.existsSync(values.verify) ? fs.readFileSync(values.verify, 'utf8') : values.verify
  const ok = verifyRelease(release, publicKeyFrom(key))
  process.stdout.write(`${file}: ${ok ? 'signature ok' : 'signature does NOT verify'} (version ${release.version})\n`)
  process.exit(ok ? 0 : 1)
}
const keyFile = values.key ?? process.env.OUTPOST_SIGNING_KEY ?? fail('--key PRIVATE.pem (or OUTPOST_SIGNING_KEY) is needed')
release.signature = signRelease(release, fs.readFileSync(keyFile, 'utf8'))
fs.writeFileSync(file, JSON.stringify(release, null, 2) + '\n')
process.stdout.write(`signed ${file} (version ${release.version}, ${Object.keys(release.assets).join(', ')})\n`)
