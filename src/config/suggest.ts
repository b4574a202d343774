/** What a config key that does not exist was likely meant to be. */
import { SCHEMA, specAt, type Fields } from './schema'

/** ` (did you mean 'x'?)` for a name within two edits of a field's, else the fields known there. */
export function suggest(key: string, fields: Fields): string {
  const near = nearName(key, fields)
  return near === undefined ? ` (known: ${Object.keys(fields).join(', ')})` : ` (did you mean '${near}'?)`
}

/** For a dotted key that is not one: ` (did you mean 'delivery.retries'?)` when one part is near a field there, else ''. */
export function nearKey(parts: readonly string[]): string {
  let i = 0 // parts[0..i) name a section
  while (i < parts.length - 1 && specAt(parts.slice(0, i + 1))?.t === 'object') i++
  const at = i === 0 ? SCHEMA : specAt(parts.slice(0, i))
  if (at?.t !== 'object' || parts[i] === undefined || parts[i] === '') return ''
  const near = nearName(parts[i]!, at.fields)
  if (near === undefined) return ''
  const fixed = [...parts.slice(0, i), near, ...parts.slice(i + 1)]
  return specAt(fixed) === undefined ? '' : ` (did you mean '${fixed.join('.')}'?)`
}

function nearName(key: string, fields: Fields): string | undefined {
  const lower = key.toLowerCase()
  return Object.keys(fields).find((f) => f.toLowerCase() === lower || editDistance(f.toLowerCase(), lower) <= 2)
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return row[b.length]!
}
