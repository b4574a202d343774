/**
 * Every error outpost raises carries one of these codes. The README lists each of them
 * (test/errors.test.ts fails when one is missing), so operators can look a code up.
 */
export const ERROR_CODES = {
  usage: 'bad command-line usage: unknown command, flag or missing argument',
  config_not_found: 'no config file where the lookup order (--config, $OUTPOST_CONFIG, $CONFIG, ./outpost.yaml, /etc/outpost/outpost.yaml) points',
  config_parse: 'the config file is not valid YAML',
  config_invalid: 'a config key is unknown or its value has the wrong type or range',
  config_key: 'config get/set/unset named a key that does not exist',
  envelope_invalid: 'a message failed validation: a field is missing, unknown or of the wrong type',
  envelope_decode: 'bytes received are not a MessagePack envelope',
  outbox_full: 'the outbox holds delivery.maxOutboxBytes already; the message was not accepted',
  outbox_closed: 'the outbox was used after close()',
  outbox_corrupt: 'an outbox snapshot or journal could not be read (the file named in the message)',
  outbox_duplicate: 'a message with this id is already in the outbox',
  locked: 'the data directory is in use by another running outpost process',
  io: 'a file or socket operation failed (the cause is attached)',
  not_implemented: 'the command exists in the contract but is not built yet in this version',
} as const satisfies Record<string, string>

export type ErrorCode = keyof typeof ERROR_CODES

export class OutpostError extends Error {
  override readonly name = 'OutpostError'
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message }
  }
}

export function isOutpostError(err: unknown, code?: ErrorCode): err is OutpostError {
  return err instanceof OutpostError && (code === undefined || err.code === code)
}
