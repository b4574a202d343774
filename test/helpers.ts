import fs from 'node:fs'
import * as assert from 'uvu/assert'
import { isOutpostError, type ErrorCode } from '../src/errors'

/** Run fn, expect an OutpostError with this code whose message contains every fragment. */
export function throwsCode(fn: () => unknown, code: ErrorCode, ...fragments: string[]): string {
  try {
    fn()
  } catch (err) {
    return checkError(err, code, fragments)
  }
  assert.unreachable(`expected ${code}`)
  return ''
}

/** Await p, expect it to reject with an OutpostError of this code. */
export async function rejectsCode(p: Promise<unknown>, code: ErrorCode, ...fragments: string[]): Promise<string> {
  try {
    await p
  } catch (err) {
    return checkError(err, code, fragments)
  }
  assert.unreachable(`expected a rejection with ${code}`)
  return ''
}

function checkError(err: unknown, code: ErrorCode, fragments: string[]): string {
  assert.ok(isOutpostError(err), `expected an OutpostError, got ${String(err)}`)
  assert.is(err.code, code, err.message)
  for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`)
  return err.message
}

/** Poll until fn returns a value that is not undefined, or fail after ms naming what was awaited. */
export async function eventually<T>(what: string, fn: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = fn()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** A file's text, or '' while it does not exist. */
export function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}
