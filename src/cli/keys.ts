/** `outpost keys gen|show`: the operator's ed25519 key pair (src/keys.ts). */
import path from 'node:path'
import { OutpostError } from '../errors'
import { fingerprint, generateKeyPair, publicKeyText, readKeyFile, writeKeyFile } from '../keys'
import { EXIT, GLOBAL_HELP, parse, print, type Io } from './common'

/** Where `keys gen` writes and `keys show` reads without a FILE. */
export const DEFAULT_KEY_FILE = 'operator.key'

const KEYS_HELP = `Usage: outpost keys SUBCOMMAND

  gen [--out FILE] [--force]   make an ed25519 key pair: the private key is written to FILE
                               (default ./${DEFAULT_KEY_FILE}, mode 0600; an existing file is kept
                               unless --force); prints the public key and its fingerprint
  show [FILE]                  print the public key of a private key file (default
                               ./${DEFAULT_KEY_FILE}; a node's own is <dataDir>/node.key) as
                               ed25519:<base64>, and its fingerprint SHA256:<16 hex>

${GLOBAL_HELP}`

export async function keysCommand(io: Io, args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { out: { type: 'string' }, force: { type: 'boolean' } }, true)
  const [sub, ...params] = positionals
  if (values.help || sub === undefined || sub === 'help') {
    if (values.help || sub === 'help') return print(io, KEYS_HELP)
    io.stderr.write('outpost keys: a subcommand is needed\n')
    print({ ...io, stdout: io.stderr }, KEYS_HELP)
    return EXIT.usage
  }
  const show = (file: string, pub: string): number =>
    print(io, values.json ? JSON.stringify({ file, publicKey: pub, fingerprint: fingerprint(pub) }) : `${pub}\n${fingerprint(pub)}`)
  switch (sub) {
    case 'gen': {
      if (params.length > 0) throw new OutpostError('usage', 'usage: outpost keys gen [--out FILE] [--force]')
      const file = path.resolve(io.cwd, values.out ?? DEFAULT_KEY_FILE)
      const pair = generateKeyPair()
      writeKeyFile(file, pair, values.force === true)
      if (!values.json) io.stderr.write(`wrote the private key to ${file} (mode 0600; keep it secret); its public key:\n`)
      return show(file, publicKeyText(pair.publicKey))
    }
    case 'show': {
      if (params.length > 1 || values.out !== undefined || values.force !== undefined) throw new OutpostError('usage', 'usage: outpost keys show [FILE]')
      const file = path.resolve(io.cwd, params[0] ?? DEFAULT_KEY_FILE)
      return show(file, publicKeyText(readKeyFile(file).publicKey))
    }
    default:
      throw new OutpostError('usage', `unknown keys subcommand '${sub}'; run \`outpost keys --help\``)
  }
}
