import { Decoder, Encoder, encode as mpEncode } from '@msgpack/msgpack'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  checkWire,
  decode,
  encode,
  makeAck,
  parseMessage,
  parseMessagesJson,
  stamp,
  type Envelope,
  type MessageDraft,
} from '../../src/wire/envelope'
import { SLAB, encodeEnvelope, retireSlab } from '../../src/wire/envelope-codec'
import { decodeWireEnvelope } from '../../src/wire/envelope-decode'
import { nativeMethodName } from '../../methods/index'
import { isOutpostError, type OutpostError } from '../../src/errors'
import { isUlid, ulid, ulidFactory } from '../../src/wire/ulid'
import { throwsCode } from '../helpers'

const ID = '01ARYZ6S41TSV4RRFFQ69G5FAV'


const invalid = (input: unknown, ...fragments: string[]): string => throwsCode(() => parseMessage(input), 'envelope_invalid', ...fragments)

// --- parseMessage: rejections -------------------------------------------------------------

test('envelope - refuses a message without method, naming the field', () => {
  invalid({ toNode: 'ship1' }, "'method'", 'required')
})

test('envelope - refuses a message without toNode or toNodes', () => {
  invalid({ method: 'cli.run' }, "'toNode'", 'toNodes', 'required')
  invalid({ method: 'cli.run', toNodes: [] }, "'toNode'", 'required')
})

test('envelope - refuses fields of the wrong type, naming the field', () => {
  const base = { method: 'cli.run', toNode: 'ship1' }
  invalid({ ...base, methodArgs: 'ls -l' }, "'methodArgs'", 'array of strings')
  invalid({ ...base, methodArgs: ['ls', 3] }, "'methodArgs[1]'", 'string', 'number 3')
  invalid({ ...base, toNodes: 'ship2' }, "'toNodes'", 'array of strings')
  invalid({ ...base, toNode: 7 }, "'toNode'", 'must be a string')
  invalid({ ...base, ackTimeout: -1 }, "'ackTimeout'", 'non-negative integer')
  invalid({ ...base, retries: 1.5 }, "'retries'", 'non-negative integer')
  invalid({ ...base, ttl: '60' }, "'ttl'", 'non-negative integer', '"60"')
  invalid({ ...base, exitCode: 'x' }, "'exitCode'", 'integer')
  invalid({ ...base, final: 'yes' }, "'final'", 'true or false')
  invalid({ ...base, data: 12 }, "'data'", 'string or bytes')
  invalid({ ...base, error: 'boom' }, "'error'", '{code, message}')
  invalid({ ...base, error: { code: 1, message: 'x' } }, "'error.code'", 'string')
  invalid({ ...base, error: { code: 'x' } }, "'error.message'", 'string')
  invalid({ ...base, replyMethodArgs: [null] }, "'replyMethodArgs[0]'")
})

test('envelope - refuses an unknown field, naming it', () => {
  invalid({ method: 'cli.run', toNode: 'ship1', mehtod: 'x' }, "unknown field 'mehtod'")
  invalid({ method: 'cli.run', toNode: 'ship1', ACKtimeouts: 5 }, "unknown field 'ACKtimeouts'")
})

test('envelope - matches field names in any letter case, as Go and steward do; exact names first', () => {
  const m = parseMessage({ ToNode: 'ship1', METHOD: 'REQCliCommand', methodargs: ['uptime'], replyMethodTimeOut: 7, ACKtimeout: 3, Directory: '/var/cli/command_result/', fileName: 'x.log' })
  assert.equal(m, { toNode: 'ship1', method: 'REQCliCommand', methodArgs: ['uptime'], replyMethodTimeout: 7, ackTimeout: 3, directory: '/var/cli/command_result/', fileName: 'x.log' })
  // steward's fields without meaning here are ignored in any case too; fromNode is still never taken.
  assert.equal(parseMessage({ toNode: 'ship1', method: 'node.ping', IsReply: false, FROMNODE: 'x' }), { toNode: 'ship1', method: 'node.ping' })
  // Native names keep working exactly; a field named twice is refused, naming both spellings.
  assert.is(parseMessage({ toNode: 'ship1', method: 'node.ping', methodTimeout: 4 }).methodTimeout, 4)
  invalid({ toNode: 'ship1', method: 'node.ping', methodTimeout: 4, MethodTimeout: 5 }, "'methodTimeout' and 'MethodTimeout'")
  invalid({ toNode: 'ship1', method: 'node.ping', replyMethodTimeOuts: 5 }, "unknown field 'replyMethodTimeOuts'")
  invalid({ toNode: 'ship1', method: 'node.ping', TOSTRING: 5 }, "unknown field 'TOSTRING'")
})

test('envelope - refuses fields named like Object.prototype members', () => {
  for (const key of ['toString', 'constructor', 'hasOwnProperty', 'valueOf']) {
    invalid({ method: 'cli.run', toNode: 'ship1', [key]: 'x' }, `unknown field '${key}'`)
  }
})

test('envelope - refuses an operation.opArg no receiver could decode: nested too deep, or a __proto__ key', () => {
  const op = (opArg: unknown): unknown => ({ toNode: 'a', method: 'op.stop', operation: { opCmd: 'stopProc', opArg } })
  const nest = (n: number): unknown => JSON.parse('['.repeat(n) + ']'.repeat(n))
  assert.equal(parseMessage(op(nest(14))).operation?.opArg, nest(14))
  invalid(op(nest(15)), "'operation.opArg'", 'deeper than 14')
  // Deeper than the encoder's own limit (100) was a TypeError-like crash of the submission.
  invalid(op(nest(5000)), "'operation.opArg'", 'deeper than 14')
  invalid(op(JSON.parse('{"a":[{"__proto__":{"x":1}}]}')), "'operation.opArg'", '__proto__')
  assert.equal(decode(encode(stamp(parseMessage(op({ pid: 12, names: ['a', { b: 1 }] })), { fromNode: 'b' })[0]!)).operation, { opCmd: 'stopProc', opArg: { pid: 12, names: ['a', { b: 1 }] } })
})

test('envelope - refuses an id that is not a ULID', () => {
  invalid({ id: 'abc', method: 'cli.run', toNode: 'ship1' }, "'id'", 'ULID', '"abc"')
  invalid({ id: ID.toLowerCase(), method: 'cli.run', toNode: 'ship1' }, "'id'", 'ULID')
  invalid({ id: ID.slice(1), method: 'cli.run', toNode: 'ship1' }, "'id'")
})

test('envelope - refuses a node name that is not a node name', () => {
  for (const name of ['ship 1', 'ship/1', '-ship', '', 'a'.repeat(64), 'ship.1', '../etc']) {
    invalid({ method: 'cli.run', toNode: name }, "'toNode'", 'node name')
  }
  invalid({ method: 'cli.run', toNodes: ['ship1', 'bad name'] }, "'toNode'", '"bad name"')
  assert.is(parseMessage({ method: 'cli.run', toNode: 'a'.repeat(63) }).toNode, 'a'.repeat(63))
})

test('envelope - refuses a malformed method name; whether a node has a method is for the receiver to say', () => {
  invalid({ method: 'cli run; rm', toNode: 'ship1' }, "'method'", 'method name')
  invalid({ method: 'cli.run', replyMethod: '../reply', toNode: 'ship1' }, "'replyMethod'", 'method name')
  // A method only newer nodes have passes input as it is: the receiver runs it or answers method_unknown.
  assert.is(parseMessage({ method: 'file.put', toNode: 'ship1' }).method, 'file.put')
  assert.is(parseMessage({ method: 'cli.run', replyMethod: 'reply.somewhere', toNode: 'ship1' }).replyMethod, 'reply.somewhere')
})

test('envelope - refuses input that is not an object', () => {
  for (const v of ['cli.run', null, [], 5, true]) invalid(v, 'must be a JSON object')
})

test('envelope - parseMessagesJson names the index of the bad message', () => {
  const text = JSON.stringify([{ method: 'cli.run', toNode: 'ship1' }, { method: 'cli.run', toNode: 'ship1', ttl: -5 }])
  throwsCode(() => parseMessagesJson(text), 'envelope_invalid', 'messages[1]', "'ttl'")
  throwsCode(() => parseMessagesJson(text, 'msgs.json'), 'envelope_invalid', 'msgs.json[1]')
})

test('envelope - parseMessagesJson refuses text that is not JSON', () => {
  throwsCode(() => parseMessagesJson('[{"method": '), 'envelope_invalid', 'not valid JSON')
})

test('envelope - parseMessagesJson reads one object or an array of them', () => {
  const one = parseMessagesJson('{"method":"cli.run","toNode":"ship1","methodArgs":["uptime"]}')
  assert.equal(one, [{ method: 'cli.run', toNode: 'ship1', methodArgs: ['uptime'] }])
  const two = parseMessagesJson('[{"method":"info.os","toNode":"a"},{"method":"node.ping","toNode":"b"}]')
  assert.equal(two.map((m) => [m.method, m.toNode]), [['info.os', 'a'], ['node.ping', 'b']])
})

test('envelope - keeps method names as given (the submitting node maps the aliases it knows)', () => {
  const m = parseMessage({
    method: 'sync.bash',
    toNode: 'ship1',
    replyMethod: 'REQToFileAppend',
    methodArgs: ['echo', 'hi'],
    ackTimeout: 0,
    data: 'x',
  })
  assert.equal(m, { method: 'sync.bash', toNode: 'ship1', replyMethod: 'REQToFileAppend', methodArgs: ['echo', 'hi'], ackTimeout: 0, data: 'x' })
})

// --- steward compatibility ------------------------------------------------------------------

// As steward's README writes them, and as Go's encoding/json writes a whole Message.
const STEWARD_FILE = `[
    {
        "directory":"cli-command-executed-result",
        "fileName": "some.log",
        "toNode": "ship1",
        "method":"REQCliCommand",
        "methodArgs": ["bash","-c","sleep 3 & tree ./"],
        "replyMethod":"REQToFileAppend",
        "ACKTimeout":10,
        "retries":3,
        "replyACKTimeout":7,
        "replyRetries":2,
        "methodTimeout": 4
    },
    {
        "id": 1000,
        "toNode": "",
        "toNodes": ["central", "ship2"],
        "fromNode": "ship9",
        "data": "",
        "method": "REQHttpGet",
        "methodArgs": ["https://example.net"],
        "argSignature": null,
        "replyMethod": "",
        "replyMethodArgs": null,
        "isReply": false,
        "ACKTimeout": 5,
        "retryWait": 0,
        "retries": 3,
        "replyACKTimeout": 0,
        "replyRetries": 0,
        "methodTimeout": 5,
        "replyMethodTimeout": 0,
        "directory": "httpget",
        "fileName": "",
        "schedule": null,
        "relayViaNode": "",
        "relayOriginalViaNode": "",
        "relayFromNode": "",
        "relayToNode": "",
        "relayOriginalMethod": "",
        "relayReplyMethod": "",
        "PreviousMessage": null
    }
]`

test('envelope - reads a JSON array in steward format as it is', () => {
  const [a, b] = parseMessagesJson(STEWARD_FILE)
  assert.equal(a, {
    directory: 'cli-command-executed-result',
    fileName: 'some.log',
    toNode: 'ship1',
    method: 'REQCliCommand',
    methodArgs: ['bash', '-c', 'sleep 3 & tree ./'],
    replyMethod: 'REQToFileAppend',
    ackTimeout: 10,
    retries: 3,
    replyAckTimeout: 7,
    replyRetries: 2,
    methodTimeout: 4,
  })
  assert.ok(b !== undefined)
  assert.is(b.method, 'REQHttpGet')
  assert.equal(b.toNodes, ['central', 'ship2'])
})

test('envelope - maps steward ACKTimeout to ackTimeout', () => {
  const m = parseMessage({ method: 'REQCliCommand', toNode: 'ship1', ACKTimeout: 12 })
  assert.is(m.ackTimeout, 12)
  assert.not.ok('ACKTimeout' in m)
  // 0 is a value (an event), not an empty field.
  assert.is(parseMessage({ method: 'REQHello', toNode: 'central', ACKTimeout: 0 }).ackTimeout, 0)
})

test('envelope - maps steward replyACKTimeout to replyAckTimeout', () => {
  const m = parseMessage({ method: 'REQCliCommand', toNode: 'ship1', replyACKTimeout: 9 })
  assert.is(m.replyAckTimeout, 9)
  assert.not.ok('replyACKTimeout' in m)
})

test("envelope - steward's REQ method names are the methods' aliases (the node maps them when the message is submitted)", () => {
  const pairs: Array<[string, string]> = [
    ['REQCliCommand', 'cli.run'],
    ['REQnCliCommand', 'cli.run'],
    ['REQCliCommandCont', 'cli.stream'],
    ['REQTailFile', 'file.tail'],
    ['REQHttpGet', 'http.get'],
    ['REQHello', 'node.hello'],
    ['REQToFileAppend', 'reply.file.append'],
    ['REQToFile', 'reply.file'],
    ['REQErrorLog', 'error.log'],
  ]
  for (const [steward, native] of pairs) {
    assert.is(parseMessage({ method: steward, toNode: 'ship1', ACKTimeout: 5 }).method, steward)
    // node.hello is the node's own method (node.ts), not a module of methods/.
    if (native !== 'node.hello') assert.is(nativeMethodName(steward), native, steward)
  }
})

test("envelope - ignores steward's numeric id and gives the message a ULID", () => {
  const m = parseMessage({ id: 1000, method: 'REQCliCommand', toNode: 'ship1', methodArgs: ['uptime'] })
  assert.is(m.id, undefined)
  const [env] = stamp(m, { fromNode: 'central' })
  assert.ok(env !== undefined && isUlid(env.id), `not a ULID: ${env?.id}`)
})

test('envelope - skips the empty fields steward writes', () => {
  const [, b] = parseMessagesJson(STEWARD_FILE)
  assert.equal(b, {
    toNodes: ['central', 'ship2'],
    method: 'REQHttpGet',
    methodArgs: ['https://example.net'],
    ackTimeout: 5,
    retries: 3,
    replyAckTimeout: 0,
    replyRetries: 0,
    methodTimeout: 5,
    replyMethodTimeout: 0,
    directory: 'httpget',
  } satisfies MessageDraft)
  // An empty methodArgs list is kept: "run with no arguments" is a value.
  assert.equal(parseMessage({ method: 'REQHello', toNode: 'central', methodArgs: [], ACKTimeout: 0 }).methodArgs, [])
})

test('envelope - a steward message still refuses fields steward does not have', () => {
  invalid({ method: 'REQCliCommand', toNode: 'ship1', ACKTimeout: 5, bogus: '' }, "unknown field 'bogus'")
  invalid({ method: 'REQCliCommand', toNode: 'ship1', ACKTimeout: 'soon' }, "'ackTimeout'", 'non-negative integer')
})

test('envelope - never trusts fromNode from input', () => {
  const native = parseMessage({ method: 'cli.run', toNode: 'ship1', fromNode: 'central' })
  assert.not.ok('fromNode' in native)
  const steward = parseMessage({ method: 'REQCliCommand', toNode: 'ship1', fromNode: 'central', FromNode: 'central', ACKTimeout: 5 })
  assert.not.ok('fromNode' in steward)
  assert.not.ok('FromNode' in steward)
  const [, b] = parseMessagesJson(STEWARD_FILE)
  assert.ok(b !== undefined)
  for (const env of stamp(b, { fromNode: 'me' })) assert.is(env.fromNode, 'me')
  assert.is(stamp(native, { fromNode: 'me' })[0]?.fromNode, 'me')
})

// --- stamp ----------------------------------------------------------------------------------

test('envelope - stamp gives a ULID id, fromNode and createdAt', () => {
  const [env, ...rest] = stamp(parseMessage({ method: 'info.os', toNode: 'ship1' }), { fromNode: 'central', now: () => 1234 })
  assert.is(rest.length, 0)
  assert.ok(env !== undefined)
  assert.ok(isUlid(env.id), env.id)
  assert.equal(env, { id: env.id, method: 'info.os', toNode: 'ship1', fromNode: 'central', createdAt: 1234 })
  const before = Date.now()
  const [late] = stamp({ method: 'info.os', toNode: 'ship1' }, { fromNode: 'central' })
  assert.ok(late !== undefined && late.createdAt >= before && late.createdAt <= Date.now())
})

test('envelope - stamp keeps an id and createdAt the sender set', () => {
  const [env] = stamp({ id: ID, method: 'info.os', toNode: 'ship1', createdAt: 99 }, { fromNode: 'central', now: () => 1 })
  assert.is(env?.id, ID)
  assert.is(env?.createdAt, 99)
})

test('envelope - stamp uses the injected id source', () => {
  const make = ulidFactory({ now: () => 5000, random: (b) => { b.fill(0) } })
  const envs = stamp({ method: 'info.os', toNodes: ['a', 'b'] }, { fromNode: 'c', ulid: make })
  assert.equal(envs.map((e) => e.id), ['00000004W80000000000000000', '00000004W80000000000000001'])
})

test('envelope - stamp fans toNodes out into one envelope per node with distinct ids', () => {
  const draft = parseMessage({ method: 'cli.run', methodArgs: ['uptime'], toNodes: ['ship1', 'ship2', 'ship3'], ttl: 60 })
  const envs = stamp(draft, { fromNode: 'central', now: () => 7 })
  assert.equal(envs.map((e) => e.toNode), ['ship1', 'ship2', 'ship3'])
  assert.is(new Set(envs.map((e) => e.id)).size, 3)
  for (const e of envs) {
    assert.ok(isUlid(e.id))
    assert.not.ok('toNodes' in e, 'toNodes is not carried into the envelopes')
    assert.is(e.fromNode, 'central')
    assert.is(e.method, 'cli.run')
    assert.equal(e.methodArgs, ['uptime'])
    assert.is(e.ttl, 60)
    assert.is(e.createdAt, 7)
  }
})

test('envelope - stamp sends once to a node named more than once', () => {
  const envs = stamp({ method: 'info.os', toNode: 'ship1', toNodes: ['ship2', 'ship1', 'ship2'] }, { fromNode: 'central' })
  assert.equal(envs.map((e) => e.toNode), ['ship1', 'ship2'])
  assert.is(new Set(envs.map((e) => e.id)).size, 2)
})

test('envelope - stamp gives a fixed id only to the first fan-out copy', () => {
  const envs = stamp({ id: ID, method: 'info.os', toNodes: ['a', 'b'] }, { fromNode: 'c' })
  assert.is(envs[0]?.id, ID)
  assert.is.not(envs[1]?.id, ID)
  assert.ok(isUlid(envs[1]?.id ?? ''))
})

// --- MessagePack ----------------------------------------------------------------------------

const FULL: Envelope = {
  id: ID,
  toNode: 'central',
  fromNode: 'ship1',
  method: 'reply.file.append',
  methodArgs: ['a', ''],
  replyMethod: 'reply.console',
  replyMethodArgs: ['{{DATA}}'],
  data: new Uint8Array([0, 1, 2, 0xfe, 0xff]),
  stderr: new Uint8Array([0x65, 0x72, 0x72]),
  exitCode: -1,
  error: { code: 'method_failed', message: 'exit status 1' },
  ackTimeout: 5,
  retries: 3,
  replyAckTimeout: 0,
  replyRetries: 1,
  methodTimeout: 10,
  replyMethodTimeout: 2,
  ttl: 86400,
  directory: 'uptime',
  fileName: 'ship1.log',
  inReplyTo: '01ARYZ6S41TSV4RRFFQ69G5FAW',
  seq: 3,
  final: true,
  createdAt: 1700000000123,
  operation: { opCmd: 'stopProc', opArg: { pid: 12 } },
}

test('envelope - MessagePack round trip keeps every field, bytes and the error object', () => {
  const back = decode(encode(FULL))
  assert.equal(back, FULL)
  assert.instance(back.data, Uint8Array)
  assert.instance(back.stderr, Uint8Array)
  assert.equal(Array.from(back.data as Uint8Array), [0, 1, 2, 0xfe, 0xff])
  assert.equal(back.error, { code: 'method_failed', message: 'exit status 1' })
})

test('envelope - MessagePack round trip keeps string data a string and omits absent fields', () => {
  const env: Envelope = { id: ID, toNode: 'a', fromNode: 'b', method: 'cli.run', data: 'héllo ✓', createdAt: 1 }
  const back = decode(encode(env))
  assert.equal(back, env)
  assert.type(back.data, 'string')
  assert.equal(Object.keys(back).sort(), ['createdAt', 'data', 'fromNode', 'id', 'method', 'toNode'])
  const withUndefined = { ...env, ttl: undefined } as unknown as Envelope
  assert.not.ok('ttl' in decode(encode(withUndefined)))
})

test('envelope - decode of garbage bytes gives envelope_decode', () => {
  const good = encode(FULL)
  const cases: Array<[string, Uint8Array]> = [
    ['a reserved type byte', new Uint8Array([0xc1])],
    ['no bytes', new Uint8Array(0)],
    ['a truncated envelope', good.subarray(0, good.length - 3)],
    ['trailing bytes', new Uint8Array([...good, 0x00])],
    ['text', new TextEncoder().encode('{"id":"x"}')],
    ['a number', mpEncode(42)],
    ['a list', mpEncode([ID, 'a', 'b', 'cli.run'])],
    ['bytes', mpEncode(new Uint8Array([1, 2, 3]))],
  ]
  for (const [what, bytes] of cases) {
    try {
      decode(bytes)
      assert.unreachable(`decoded ${what}`)
    } catch (err) {
      assert.ok(isOutpostError(err, 'envelope_decode'), `${what}: ${String(err)}`)
    }
  }
})

test('envelope - decode refuses a map without the required fields, naming the field', () => {
  for (const f of ['id', 'toNode', 'fromNode', 'method'] as const) {
    const { [f]: _dropped, ...rest } = FULL
    throwsCode(() => decode(mpEncode(rest)), 'envelope_invalid', `'${f}'`, 'required')
  }
  throwsCode(() => decode(mpEncode({ ...FULL, method: '' })), 'envelope_invalid', "'method'")
})

test('envelope - checkWire drops unknown fields and keeps known ones', () => {
  const env = checkWire({
    id: ID,
    toNode: 'a',
    fromNode: 'b',
    method: 'some.future.method',
    ttl: 30,
    futureField: { x: 1 },
    toNodes: ['c', 'd'],
    replyMethod: null,
    toString: 'shadow',
    constructor: 1,
    createdAt: 5,
  })
  assert.equal(env, { id: ID, toNode: 'a', fromNode: 'b', method: 'some.future.method', ttl: 30, createdAt: 5 })
  assert.not.ok(Object.hasOwn(env, 'toString'))
  assert.not.ok(Object.hasOwn(env, 'constructor'))
  assert.is(`${env}`, '[object Object]')
})

test('envelope - checkWire still checks the types of known fields', () => {
  throwsCode(() => checkWire({ id: ID, toNode: 'a', fromNode: 'b', method: 'cli.run', ttl: -1 }), 'envelope_invalid', "'ttl'")
  throwsCode(() => checkWire({ id: ID, toNode: 'a', fromNode: 'b', method: 'cli.run', data: 5 }), 'envelope_invalid', "'data'")
  throwsCode(() => checkWire('not a map'), 'envelope_decode', 'must be a map')
})

test('envelope - checkWire gives a missing createdAt the value 0', () => {
  assert.is(checkWire({ id: ID, toNode: 'a', fromNode: 'b', method: 'cli.run' }).createdAt, 0)
})

// --- ACK and subjects -----------------------------------------------------------------------

test('envelope - makeAck answers the sender with an event that names the acknowledged id', () => {
  const msg: Envelope = { id: ID, toNode: 'ship1', fromNode: 'central', method: 'cli.run', ackTimeout: 5, createdAt: 1 }
  const ack = makeAck(msg, '01ARYZ6S41TSV4RRFFQ69G5FAX', 777)
  assert.equal(ack, {
    id: '01ARYZ6S41TSV4RRFFQ69G5FAX',
    toNode: 'central',
    fromNode: 'ship1',
    method: 'ack',
    inReplyTo: ID,
    ackTimeout: 0,
    createdAt: 777,
  })
  assert.equal(decode(encode(ack)), ack)
})

test('envelope - refuses deeply nested MessagePack from the wire before decoding it', () => {
  // A 1 MB body of nested arrays took the decoder 1.5 s and 190 MB; refused at once now.
  const body = new Uint8Array(1_000_000).fill(0x91)
  const t = Date.now()
  throwsCode(() => decode(body), 'envelope_decode', 'nested deeper')
  assert.ok(Date.now() - t < 1000)
  // An envelope with its ordinary depth still decodes.
  const env = { id: '01ARYZ6S41TSV4RRFFQ69G5FAV', toNode: 'a', fromNode: 'b', method: 'node.ping', createdAt: 1, error: { code: 'x', message: 'y' }, methodArgs: ['1'] }
  assert.is(decode(encode(env as Envelope)).error?.code, 'x')
})


test('envelope - the hand-written codec writes what the MessagePack encoder writes and reads what it reads', () => {
  let s = 11
  const rand = (): number => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32 }
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!
  const texts = ['', 'a', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(255), 'w'.repeat(256), 'v'.repeat(70_000), 'grüße ✓ 🚀', '\ud800 lone', 'tail \udc00']
  const numbers = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -1, -32, -33, -128, -129, -32_768, -32_769, -(2 ** 31), -(2 ** 31) - 1, 1.5, -0.25]
  const general = new Encoder({ ignoreUndefined: true })
  for (let k = 0; k < 2000; k++) {
    const env: Record<string, unknown> = { id: ulid(), toNode: 'ship1', fromNode: 'central', method: pick(['cli.run', 'ack', 'node.pong']), createdAt: Date.now() }
    if (rand() < 0.5) env.data = rand() < 0.5 ? pick(texts) : new Uint8Array(pick([0, 3, 255, 256, 70_000])).map(() => Math.floor(rand() * 256))
    if (rand() < 0.4) env.methodArgs = Array.from({ length: pick([0, 1, 15, 16, 40]) }, () => pick(texts.slice(0, 6)))
    if (rand() < 0.4) env.exitCode = pick(numbers)
    if (rand() < 0.4) env.seq = pick(numbers.filter((n) => n >= 0 && Number.isInteger(n)))
    if (rand() < 0.3) env.final = rand() < 0.5
    if (rand() < 0.3) env.inReplyTo = ulid()
    if (rand() < 0.2) env.ackTimeout = undefined
    if (rand() < 0.1) env.error = { code: 'method_failed', message: pick(texts.slice(0, 4)) }
    if (rand() < 0.05) env.somethingNew = 1
    const mine = encodeEnvelope(env)
    const theirs = general.encode(env)
    if (mine !== undefined) assert.equal(Buffer.from(mine).equals(Buffer.from(theirs)), true, `envelope ${k}: ${JSON.stringify(Object.keys(env))}`)
    // Whoever encoded it, decode gives what the general Decoder plus checkWire give.
    let expected: unknown
    try { expected = checkWire(new Decoder().decode(theirs)) } catch (err) { expected = (err as OutpostError).code }
    let got: unknown
    try { got = decode(theirs) } catch (err) { got = (err as OutpostError).code }
    assert.equal(got, expected, `envelope ${k}`)
  }
  // The cases it leaves to the general codec are left, not mangled.
  assert.is(encodeEnvelope({ id: 'x', error: { code: 'a', message: 'b' } }), undefined)
  assert.is(encodeEnvelope({ id: 'x', unknownField: 1 }), undefined)
  assert.is(encodeEnvelope({ id: 'x', data: 'lone \ud800' }), undefined)
  const head = [0x84, 0xa2, ...Buffer.from('id'), 0xa1, 0x78, 0xa6, ...Buffer.from('toNode'), 0xa1, 0x61, 0xa8, ...Buffer.from('fromNode'), 0xa1, 0x62]
  const method = [0xa6, ...Buffer.from('method'), 0xa1, 0x6d]
  assert.equal(decodeWireEnvelope(new Uint8Array([...head, ...method])), { id: 'x', toNode: 'a', fromNode: 'b', method: 'm', createdAt: 0 })
  assert.is(decodeWireEnvelope(new Uint8Array([...head, ...method, 0x00])), undefined) // trailing byte
  assert.is(decodeWireEnvelope(new Uint8Array([...head, ...method.slice(0, -1)])), undefined) // truncated
  assert.is(decodeWireEnvelope(new Uint8Array([...head, 0xa6, ...Buffer.from('method'), 0xa0])), undefined) // an empty method: the general path says why
  // Millisecond times are 64-bit integers on the wire: read on the fast path.
  const stamped = { id: ID, toNode: 'a', fromNode: 'b', method: 'ack', createdAt: 1_790_000_000_123 }
  assert.equal(decodeWireEnvelope(encode(stamped)), stamped)
  const exit = (key: string): Uint8Array => new Uint8Array([0x85, ...head.slice(1), ...method, 0xa0 | key.length, ...Buffer.from(key), 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])
  assert.is(decodeWireEnvelope(exit('exitCod')), undefined) // not a field name
  assert.equal(decodeWireEnvelope(exit('exitCode'))?.exitCode, -2)
})

test('envelope codec - bodies are cut from slabs that are not malloc\'s (a WebAssembly.Memory\'s buffer), and keep their bytes', () => {
  // glibc's mmap threshold rises to the largest mapped block freed (up to 32 MiB), after which a
  // slab from malloc comes from the heap and stays there once freed: a slab is a wasm memory's
  // buffer, which V8 maps and unmaps itself. Such a buffer is the one kind that cannot be
  // transferred (detached), which is how a test can tell it from a Buffer's.
  const envs = Array.from({ length: 20_000 }, (_, i) => ({ id: ulid(), toNode: 'ship1', fromNode: 'central', method: 'node.ping', createdAt: i, data: 'x'.repeat(120) + i }))
  const bodies = envs.map((env) => encodeEnvelope(env)!)
  const slabs = new Map<ArrayBufferLike, number>()
  for (const b of bodies) slabs.set(b.buffer, Math.max(slabs.get(b.buffer) ?? 0, b.byteOffset + b.byteLength))
  assert.ok(slabs.size >= 2, `20k bodies of ~230 bytes span more than one slab (${slabs.size})`)
  const [first, end] = [...slabs][0]!
  assert.is(first.byteLength, SLAB)
  assert.ok(end <= SLAB)
  // Each body decodes to its own envelope: none overlaps another.
  bodies.forEach((b, i) => {
    const got = decode(b) as unknown as { id: string; createdAt: number; data: string }
    assert.equal([got.id, got.createdAt, got.data], [envs[i]!.id, i, envs[i]!.data], `body ${i}`)
  })
  // Last, as it would take a Buffer's bytes away: a transfer leaves a wasm memory's buffer whole
  // (Node 22 refuses it, Node 20 copies).
  try { structuredClone(first, { transfer: [first as ArrayBuffer] }) } catch { /* Node 22: not detachable */ }
  assert.is(first.byteLength, SLAB, 'a wasm memory\'s buffer cannot be detached')
})

test('envelope codec - after retireSlab the next body is cut from a new slab (the old one can go once its bodies do)', () => {
  const env = { id: ulid(), toNode: 'ship1', fromNode: 'central', method: 'node.ping', createdAt: 1 }
  const a = encodeEnvelope(env)!
  const b = encodeEnvelope(env)!
  assert.is(a.buffer, b.buffer)
  retireSlab()
  const c = encodeEnvelope(env)!
  assert.is.not(c.buffer, a.buffer)
  assert.is(c.byteOffset, 0)
})

test('envelope - the hand-written decoder takes or leaves malformed envelopes exactly as the general path decides', () => {
  let s = 7
  const rand = (): number => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32 }
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!
  const general = new Encoder({ ignoreUndefined: false })
  // Each field given values of every kind, nil included, and names that are not fields.
  const values: unknown[] = [null, '', 'ship1', 'grüße', 0, 7, -1, 2 ** 40, 1.5, true, false, new Uint8Array([1, 2]), [], ['a', 'b'], ['a', 3], { code: 'x', message: 'y' }]
  const fields = ['id', 'toNode', 'fromNode', 'method', 'toNodes', 'methodArgs', 'data', 'stderr', 'exitCode', 'ackTimeout', 'ttl', 'final', 'createdAt', 'inReplyTo', 'ids', 'error', 'keyFingerprint', 'idx', 'Method', 'seq']
  for (let k = 0; k < 4000; k++) {
    const env: Record<string, unknown> = { id: ulid(), toNode: 'ship1', fromNode: 'central', method: 'node.pong', createdAt: 5 }
    for (let j = 0; j < 1 + Math.floor(rand() * 3); j++) env[pick(fields)] = pick(values)
    const bytes = general.encode(env)
    let expected: unknown
    try { expected = checkWire(new Decoder().decode(bytes)) } catch (err) { expected = (err as OutpostError).code }
    let got: unknown
    try { got = decode(bytes) } catch (err) { got = (err as OutpostError).code }
    assert.equal(got, expected, `envelope ${k}: ${JSON.stringify(env)}`)
  }
  // A field given twice, the second time nil: the general Decoder keeps the nil (absent).
  const twice = new Uint8Array([0x85, 0xa2, ...Buffer.from('id'), 0xa1, 0x78, 0xa6, ...Buffer.from('toNode'), 0xa1, 0x61, 0xa8, ...Buffer.from('fromNode'), 0xa1, 0x62,
    0xa6, ...Buffer.from('method'), 0xa1, 0x6d, 0xa6, ...Buffer.from('method'), 0xc0])
  throwsCode(() => decode(twice), 'envelope_invalid', "'method'")
  // Names repeat between messages and come from a cache: a different name of the same length is not taken for it.
  const named = (to: string): Envelope => decode(encode({ id: ID, toNode: to, fromNode: 'central', method: 'node.pong', createdAt: 1 }))
  assert.equal([named('shipA').toNode, named('shipB').toNode, named('shipA').toNode, named('shïp').toNode], ['shipA', 'shipB', 'shipA', 'shïp'])
})

test('envelope - the decoder\'s guesses from the envelope before (a field at its place, a name as it was) never stand in for other bytes', () => {
  // A field name of one byte per character (fixstr), a value as raw bytes (fixstr).
  const kv = (k: string, v: number[]): number[] => [0xa0 | k.length, ...Buffer.from(k, 'latin1'), 0xa0 | v.length, ...v]
  const env = (to: number[], order = ['id', 'toNode', 'fromNode', 'method']): Uint8Array => {
    const vals: Record<string, number[]> = { id: [...Buffer.from('x')], toNode: to, fromNode: [...Buffer.from('b')], method: [...Buffer.from('m')] }
    return new Uint8Array([0x84, ...order.flatMap((k) => kv(k, vals[k]!))])
  }
  const viaGeneral = (b: Uint8Array): unknown => { try { return checkWire(new Decoder().decode(b)) } catch (err) { return (err as OutpostError).code } }
  const got = (b: Uint8Array): unknown => { try { return decode(b) } catch (err) { return (err as OutpostError).code } }
  const cases = [
    env([...Buffer.from('shïp')]), // a name that is not ASCII (its UTF-8 is 5 bytes, its string 4 characters)
    env([0x73, 0x68, 0xef, 0x70]), // 4 bytes that are not UTF-8 (ï as latin1): not the name before
    env([...Buffer.from('é')]), // 2 bytes, 1 character
    env([0xe9]), // 1 byte, not UTF-8, the character before's code
    env([...Buffer.from('ship')]), env([...Buffer.from('shiq')]), env([...Buffer.from('ship')]),
    env([...Buffer.from('ship')], ['method', 'fromNode', 'toNode', 'id']), // the same fields at other places
    env([...Buffer.from('ship')], ['id', 'toNode', 'method', 'fromNode']),
  ]
  for (const [k, b] of cases.entries()) assert.equal(got(b), viaGeneral(b), `case ${k}`)
  assert.equal((got(cases[7]!) as Envelope).toNode, 'ship')
})

test.run()
