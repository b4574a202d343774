/**
 * Labels and facts: what a node says about itself in node.hello, so central can address nodes
 * by what they are. Labels come from the config (node.labels); facts a node works out itself.
 * Both are flat tables of name → value. Central keeps what a hello carries (node-list.ts).
 */
import fs from 'node:fs'
import os from 'node:os'
import { putOwn } from './lib/own'
import { VERSION } from './version'

/** A label's name: a letter first, then letters, digits, `_`, `.` and `-`; at most 63 characters. */
export const LABEL_KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/
/** A label's value: a letter or digit first, then letters, digits, `_`, `.`, `-` and `+`; at most 63 characters. */
export const LABEL_VALUE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}$/
/** The facts a node works out itself; a label may not take one of these names. */
export const FACT_NAMES = ['os', 'osVersion', 'arch', 'version', 'hostname', 'kernel'] as const
/** Most labels (or facts) central keeps from one hello. */
export const MAX_LABELS = 64

/** What is wrong with one label (config check), or undefined. */
export function labelProblem(key: string, value: string): string | undefined {
  if (!LABEL_KEY.test(key)) return 'is not a label name: a letter first, then letters, digits, _ . and -, at most 63 characters'
  if ((FACT_NAMES as readonly string[]).includes(key)) return `is a built-in fact (${FACT_NAMES.join(', ')}): pick another label name`
  if (!LABEL_VALUE.test(value)) return `has ${JSON.stringify(value)}, not a label value: a letter or digit first, then letters, digits, _ . + and -, at most 63 characters`
  return undefined
}

/** Where the facts come from, injectable for tests. */
export interface FactSources {
  platform: string
  arch: string
  hostname: () => string
  release: () => string
  osRelease: () => string
}

const SYSTEM: FactSources = {
  platform: process.platform, arch: process.arch, hostname: () => os.hostname(), release: () => os.release(),
  osRelease: () => fs.readFileSync('/etc/os-release', 'utf8'),
}

/**
 * This node's facts. One it cannot determine is absent, never an empty string; values are cut
 * to the label value shape where a system reports something longer or odder.
 */
export function facts(src: FactSources = SYSTEM): Record<string, string> {
  const out: Record<string, string> = {}
  const put = (k: string, v: string | undefined): void => {
    const clean = v?.trim().replace(/[^A-Za-z0-9_.+-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63)
    if (clean !== undefined && clean !== '') out[k] = clean
  }
  put('os', src.platform)
  put('osVersion', src.platform === 'linux' ? attempt(() => /^VERSION_ID=["']?([^"'\n]*)/m.exec(src.osRelease())?.[1]) : undefined)
  put('arch', src.arch)
  put('version', VERSION)
  put('hostname', attempt(src.hostname))
  put('kernel', attempt(src.release))
  return out
}

function attempt(fn: () => string | undefined): string | undefined {
  try {
    return fn()
  } catch {
    return undefined
  }
}

/**
 * A label table from the wire (another node's hello), or undefined when it has none: only
 * string values under well-formed names are kept, at most MAX_LABELS of them.
 */
export function wireLabels(v: unknown): Record<string, string> | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
  const out: Record<string, string> = {}
  let n = 0
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (n >= MAX_LABELS) break
    if (typeof val !== 'string' || !LABEL_KEY.test(k) || !LABEL_VALUE.test(val)) continue
    putOwn(out, k, val)
    n++
  }
  return out
}
