import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { isUlid, ulid, ulidFactory, ulidTime, type UlidSource } from '../../src/wire/ulid'

const CROCKFORD = /^[0-9A-HJKMNP-TV-Z]{26}$/

/** A source whose clock reads from a list (the last value repeats) and whose randomness is a fixed fill. */
function source(times: number[], fill = 0): UlidSource & { randomCalls: number } {
  let i = 0
  const src = {
    randomCalls: 0,
    now: (): number => times[Math.min(i++, times.length - 1)] ?? 0,
    random: (bytes: Uint8Array): void => {
      src.randomCalls++
      bytes.fill(fill)
    },
  }
  return src
}

test('ulid - makes 26 characters of Crockford base32', () => {
  const seen = new Set<string>()
  for (let i = 0; i < 2000; i++) {
    const id = ulid()
    assert.ok(CROCKFORD.test(id), `not Crockford base32: ${id}`)
    assert.not.match(id, /[ILOU]/)
    seen.add(id)
  }
  assert.is(seen.size, 2000)
})

test('ulid - the default factory stamps the current time and sorts in creation order', () => {
  const before = Date.now()
  const ids = Array.from({ length: 500 }, () => ulid())
  const after = Date.now()
  for (const id of ids) {
    const t = ulidTime(id)
    assert.ok(t >= before && t <= after, `time ${t} outside [${before}, ${after}]`)
  }
  assert.equal([...ids].sort(), ids)
})

test('ulid - encodes the time in the first 10 characters, most significant first', () => {
  // The example of the ULID specification: 1469918176385 is 01ARYZ6S41.
  assert.is(ulidFactory(source([1469918176385]))().slice(0, 10), '01ARYZ6S41')
  assert.is(ulidFactory(source([0]))().slice(0, 10), '0000000000')
  assert.is(ulidFactory(source([2 ** 48 - 1]))().slice(0, 10), '7ZZZZZZZZZ')
})

test('ulid - encodes the 80 random bits in the last 16 characters', () => {
  assert.is(ulidFactory(source([5], 0))().slice(10), '0000000000000000')
  assert.is(ulidFactory(source([5], 0xff))().slice(10), 'ZZZZZZZZZZZZZZZZ')
  const first = ulidFactory({ now: () => 5, random: (b) => { b.fill(0); b[0] = 0x01 } })()
  // 0x01 then zeros: bits 00000 00100 00000… → "04" then zeros.
  assert.is(first.slice(10), '0400000000000000')
})

test('ulid - stays monotonic within the same millisecond', () => {
  const src = source([1700000000000], 0x5a)
  const next = ulidFactory(src)
  const ids = Array.from({ length: 1000 }, () => next())
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} !< ${ids[i]}`)
  assert.ok(ids.every((id) => id.slice(0, 10) === ids[0]!.slice(0, 10)), 'time part changed')
  assert.is(src.randomCalls, 1, 'randomness is drawn once per millisecond')
})

test('ulid - adds one to the random part for each id of the same millisecond', () => {
  const next = ulidFactory(source([42], 0))
  assert.is(next().slice(10), '0000000000000000')
  assert.is(next().slice(10), '0000000000000001')
  assert.is(next().slice(10), '0000000000000002')
})

test('ulid - draws fresh randomness when the millisecond changes', () => {
  const src = source([10, 10, 11])
  const next = ulidFactory(src)
  const [a, b, c] = [next(), next(), next()]
  assert.is(src.randomCalls, 2)
  assert.is(ulidTime(a), 10)
  assert.is(ulidTime(b), 10)
  assert.is(ulidTime(c), 11)
  assert.ok(a < b && b < c)
})

test('ulid - stays monotonic when the clock goes backwards', () => {
  const next = ulidFactory(source([1000, 999, 998, 1000]))
  const ids = [next(), next(), next(), next()]
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} !< ${ids[i]}`)
  assert.equal(ids.map(ulidTime), [1000, 1000, 1000, 1000])
})

test('ulid - stays monotonic when the random part overflows within a millisecond', () => {
  const next = ulidFactory(source([7000], 0xff))
  const a = next()
  const b = next()
  const c = next()
  assert.is(ulidTime(a), 7000)
  assert.is(a.slice(10), 'ZZZZZZZZZZZZZZZZ')
  assert.ok(a < b, `${a} !< ${b}`)
  assert.ok(b < c, `${b} !< ${c}`)
  assert.ok(isUlid(b) && isUlid(c))
})

test('ulid - ulidTime reads back the time an id was made with', () => {
  for (const t of [0, 1, 31, 32, 1469918176385, Date.now(), 2 ** 48 - 1]) {
    assert.is(ulidTime(ulidFactory(source([t]))()), t, `time ${t}`)
  }
  assert.is(ulidTime('01ARYZ6S41TSV4RRFFQ69G5FAV'), 1469918176385)
})

test('ulid - isUlid accepts ids and refuses everything else', () => {
  assert.ok(isUlid(ulid()))
  assert.ok(isUlid('01ARYZ6S41TSV4RRFFQ69G5FAV'))
  assert.ok(isUlid('7ZZZZZZZZZZZZZZZZZZZZZZZZZ'))
  for (const bad of [
    '',
    '01ARYZ6S41TSV4RRFFQ69G5FA', // 25 characters
    '01ARYZ6S41TSV4RRFFQ69G5FAVX', // 27 characters
    '01aryz6s41tsv4rrffq69g5fav', // lower case
    '01ARYZ6S41TSV4RRFFQ69G5FAI', // I is not Crockford base32
    '01ARYZ6S41TSV4RRFFQ69G5FAL',
    '01ARYZ6S41TSV4RRFFQ69G5FAO',
    '01ARYZ6S41TSV4RRFFQ69G5FAU',
    '01ARYZ6S41-SV4RRFFQ69G5FAV',
    ' 01ARYZ6S41TSV4RRFFQ69G5FA',
    '8ZZZZZZZZZZZZZZZZZZZZZZZZZ', // time beyond 48 bits
  ]) {
    assert.not.ok(isUlid(bad), `accepted ${JSON.stringify(bad)}`)
  }
})

test.run()
