/**
 * The release file (SPEC §7 `version.json`) and its signature.
 *
 * Canonical form, the exact bytes the ed25519 signature covers (UTF-8, each line ending in \n):
 *
 *   outpost-release-v1
 *   version <version>
 *   <platform> <sha256 hex, lower case>     one line per asset, sorted by platform name
 *
 * URLs and sizes are not signed, so a release can be mirrored anywhere: a binary is accepted
 * only when its SHA-256 matches a signed line. `signature` is the base64 of the 64-byte
 * signature. Keys: the public key is the base64 of its 32 raw bytes (or a PEM SPKI block), the
 * private key a PEM PKCS#8 block (`node --import tsx packaging/sign.ts --gen-key DIR` makes both).
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { OutpostError } from '../errors'
import { putOwn } from '../lib/own'

export interface ReleaseAsset { url: string; sha256: string; size?: number }
export interface Release { version: string; assets: Record<string, ReleaseAsset>; signature?: string }

export function canonicalRelease(r: Pick<Release, 'version' | 'assets'>): string {
  const lines = ['outpost-release-v1', `version ${r.version}`]
  for (const platform of Object.keys(r.assets).sort()) lines.push(`${platform} ${r.assets[platform]!.sha256.toLowerCase()}`)
  return lines.join('\n') + '\n'
}

/** DER prefix that turns 32 raw ed25519 public key bytes into an SPKI structure. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export function publicKeyFrom(text: string): KeyObject {
  const t = text.trim()
  try {
    if (t.includes('BEGIN PUBLIC KEY')) return createPublicKey(t)
    const raw = Buffer.from(t, 'base64')
    if (raw.length !== 32) throw new Error(`expected 32 bytes, got ${raw.length}`)
    return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
  } catch (err) {
    throw new OutpostError('config_invalid', `upgrade.publicKey is not an ed25519 public key (base64 of 32 bytes, or PEM): ${(err as Error).message}`, { cause: err })
  }
}

export function signRelease(r: Pick<Release, 'version' | 'assets'>, privateKeyPem: string): string {
  return sign(null, Buffer.from(canonicalRelease(r)), createPrivateKey(privateKeyPem)).toString('base64')
}

export function verifyRelease(r: Release, publicKey: KeyObject): boolean {
  if (typeof r.signature !== 'string' || r.signature === '') return false
  try {
    return verify(null, Buffer.from(canonicalRelease(r)), publicKey, Buffer.from(r.signature, 'base64'))
  } catch {
    return false
  }
}

/** Validates the parsed JSON of a version endpoint. */
export function parseRelease(json: unknown, from: string): Release {
  const bad = (why: string): never => { throw new OutpostError('upgrade_bad_release', `${from}: ${why}`) }
  if (json === null || typeof json !== 'object') return bad('not a JSON object')
  const r = json as Record<string, unknown>
  if (typeof r.version !== 'string' || !/^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/.test(r.version)) return bad('"version" must be a version like 1.2.3')
  if (r.assets === null || typeof r.assets !== 'object') return bad('"assets" must be an object keyed by platform (linux-x64, …)')
  const assets: Record<string, ReleaseAsset> = {}
  for (const [k, v] of Object.entries(r.assets as Record<string, unknown>)) {
    const a = v as Record<string, unknown> | null
    if (!a || typeof a.url !== 'string' || typeof a.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(a.sha256)) return bad(`assets.${k} needs "url" and a 64-hex-digit "sha256"`)
    putOwn(assets, k, { url: a.url, sha256: a.sha256.toLowerCase(), ...(typeof a.size === 'number' ? { size: a.size } : {}) })
  }
  if (r.signature !== undefined && typeof r.signature !== 'string') return bad('"signature" must be a base64 string')
  return { version: r.version, assets, ...(typeof r.signature === 'string' ? { signature: r.signature } : {}) }
}

/** Compares dotted versions numerically (a pre-release sorts before its release). */
export function compareVersions(a: string, b: string): number {
  const split = (v: string): [number[], string] => {
    const [core, pre = ''] = v.split(/[-+]/, 2) as [string, string?]
    return [core.split('.').map((n) => Number.parseInt(n, 10) || 0), pre]
  }
  const [ca, pa] = split(a)
  const [cb, pb] = split(b)
  for (let i = 0; i < Math.max(ca.length, cb.length); i++) {
    const d = (ca[i] ?? 0) - (cb[i] ?? 0)
    if (d !== 0) return Math.sign(d)
  }
  if (pa === pb) return 0
  if (pa === '') return 1
  if (pb === '') return -1
  return pa < pb ? -1 : 1
}

/** The asset key for this machine: linux-x64, linux-arm64, linux-ppc64le. */
export function platformKey(platform: string = process.platform, arch: string = process.arch): string {
  return `${platform}-${arch === 'ppc64' ? 'ppc64le' : arch}`
}
