/**
 * Every error outpost raises carries one of these codes. docs/errors.md lists each of them
 * (test/errors.test.ts fails when one is missing), so operators can look a code up.
 */
export const ERROR_CODES = {
  usage: 'bad command-line usage: unknown command, flag or missing argument',
  config_not_found: 'no config file where the lookup order (--config, $OUTPOST_CONFIG, $CONFIG, ./outpost.yaml, /etc/outpost/outpost.yaml) points',
  config_parse: 'the config file is not valid YAML',
  config_unreadable: 'the config file is there but cannot be read (its permissions, or a directory by that name); the message names it and why',
  config_invalid: 'a config key is unknown or its value has the wrong type or range',
  config_key: 'config get/set/unset named a key that does not exist',
  envelope_invalid: 'a message failed validation: a field is missing, unknown or of the wrong type',
  fan_out_too_large: 'a request addresses more nodes (toNode and toNodes of its messages) than delivery.maxFanOut; nothing was accepted',
  node_unknown: 'a request names a node that the node list has never heard of; nothing was accepted (allowUnknown / --allow-unknown sends anyway)',
  selector_invalid: 'a selector in toNodes (--to) does not parse: the message names the term that is wrong; nothing was accepted',
  selector_no_match: 'a selector in toNodes (--to) matches no node in central\'s list, or was given to a node that keeps no node list (not central); nothing was accepted',
  envelope_decode: 'bytes received are not a MessagePack envelope',
  outbox_full: 'the outbox holds delivery.maxOutboxBytes already; the message was not accepted',
  outbox_closed: 'the outbox was used after close()',
  outbox_corrupt: 'an outbox snapshot, journal or body file could not be read, or a stored body failed its CRC (the file named in the message)',
  outbox_format: 'the outbox store was written by a newer outpost, in a format this one cannot read',
  outbox_duplicate: 'a message with this id is already in the outbox',
  locked: 'the data directory is in use by another running outpost process',
  data_dir_unwritable: 'the data directory cannot be created or is not writable (read-only file system, permissions, a file in its path); the message names it',
  frame_too_large: 'a TCP frame announced more than 8190 bytes of body (2 + N must stay within 8192)',
  frame_invalid: 'a TCP frame body is not MessagePack, has an unknown type `t` or is missing a field',
  compressed_too_large: 'a compressed payload would inflate past its limit (tcp: a zbatch frame past 8190 bytes, whose sender the hub disconnects; MQTT and NATS: a payload past 64 KiB, which the receiver drops alone with a warning, its messages unacknowledged): refused as a decompression bomb',
  message_too_large: 'an envelope is larger than the per-message cap (16 MiB by default)',
  auth_failed: 'the hub refused the node: unknown node name or wrong token',
  hello_timeout: 'the hub closed a connection that had not been welcomed within hub.helloTimeout (no hello, or no TLS handshake, in time)',
  hub_busy: 'the hub closed a new connection at once: hub.maxPendingPerAddress connections from that address were waiting for their hello already',
  not_connected: 'the transport has no connection right now (the message stays in the outbox)',
  agent_not_running: 'no outpost agent answers on the local socket of this config and data directory (send, nodes, status need one: start `outpost agent` or `outpost up`)',
  agent_lost: 'the local agent closed its socket before its answer was complete (it stopped or crashed): what it accepted stays in its outbox and goes on when it runs again',
  not_delivered: 'the message ran out of attempts (retries) without an ACK',
  ttl_expired: 'the message waited longer than its ttl without being delivered',
  withdrawn: 'the message was taken back from the sender\'s outbox before it was ever sent (Ctrl-C on outpost send, a job cancelled): it never reached its node and did not run',
  denied: "the receiver's methods.allow does not let the sender call this method",
  method_unknown: 'the receiver has no method of that name',
  method_disabled: 'the method is switched off on the receiver (methods.enabled or op.stop)',
  method_failed: 'the method threw or could not start (the message says why)',
  method_timeout: 'the method ran past methodTimeout and was stopped',
  cancelled: 'the method was stopped by op.cancel before it finished, or the file transfer by outpost cp --cancel (its partial file deleted, the target left as it was)',
  method_args: 'the method was given arguments it does not take (the message shows the usage)',
  command_unknown: 'cli.named was asked for a name that is not in the receiver\'s methods.commands',
  not_permitted: 'the method needs a privilege the node lacks (cli.run --user/--group need root)',
  not_found: 'what a method was asked about does not exist on the node (a user, a group)',
  url_invalid: 'http.get was given something that is not an http:// or https:// URL',
  dns_failed: 'http.get could not resolve the host name',
  connection_refused: 'http.get: the server refused the connection (nothing listens on that port)',
  http_failed: 'http.get failed after connecting (reset, TLS error, bad response)',
  interrupted: 'the receiving node stopped while the method ran; it is not run again',
  sink_interrupted: 'logged at a restart (and sent to central\'s error.log): requests to sinks (error.log, node.pong, reply.* as requests) were received, ACKed and taken as started when the node stopped, and some may not have run; they are not run again. At most one piece (127) of them: the message counts them by method and sender',
  path_outside: "a reply file path would leave the data directory (.., absolute path or symlink) or land among outpost's own files there (outbox/, logs/, replies/, audit.log …)",
  api_bad_request: 'a local API request is not valid JSON or not a known request',
  api_unauthorized: 'the HTTP API request had no bearer token or a wrong one (401; nothing else is said or done)',
  api_not_found: 'the HTTP API has no such route, or no record of that message id',
  api_method_not_allowed: 'the HTTP API route exists but not for this HTTP method (405; the Allow header names the right one)',
  api_forbidden: 'a console request that changes something came without its session\'s CSRF token or from another origin or site (403; nothing was done)',
  api_too_large: 'the HTTP API request body is larger than its limit (1 MiB); larger messages go through the socket API',
  disk_full: 'the disk holding the data directory is full (or a quota or file-size limit was hit); nothing already accepted is lost',
  io: 'a file or socket operation failed (the cause is attached)',
  upgrade_unavailable: 'self-upgrade needs the single binary and upgrade.url: this is the checkout (node bin/outpost.cjs) or no endpoint is configured',
  upgrade_insecure: 'the version endpoint or a download URL is plain http:// and upgrade.allowHttp is false',
  upgrade_fetch: 'the version endpoint or the binary could not be downloaded (HTTP status or network error in the message)',
  upgrade_bad_release: 'the version endpoint did not answer a valid version.json (version, assets, signature)',
  upgrade_no_asset: 'the release has no binary for this platform (linux-x64, linux-arm64, linux-ppc64le)',
  upgrade_signature: 'upgrade.publicKey is set and the release signature is missing or does not verify',
  upgrade_hash_mismatch: 'the downloaded binary does not match the SHA-256 of the release; it was deleted',
  upgrade_downgrade: 'the release is older than the running version; --force installs it anyway',
  upgrade_disk_space: 'not enough free space beside the binary for the new one and the kept .previous',
  upgrade_smoke_failed: 'the downloaded binary did not run `version` and report the release version; nothing was replaced',
  upgrade_replace: 'the running binary could not be replaced (permissions, read-only file system); it is unchanged',
  config_readonly: 'remote configuration has no file to write on this node (it runs inside `outpost up` from another node\'s file)',
  config_node_mismatch: 'config.deploy was given a document for another node: its node.name differs from the receiver\'s',
  restart_unavailable: 'agent.restart: this process cannot restart itself (it runs inside `outpost up`); restart it by hand',
  pid_file_in_use: '--pid-file names a file holding the pid of a live process: another agent or hub runs with it',
  key_invalid: 'a key file cannot be read or holds no ed25519 private key, or a public key is not ed25519:<base64 of 32 bytes>',
  key_exists: 'keys gen: the key file exists already (--force overwrites it)',
  signature_required: "the receiver's security.requireSignatures covers this method and the message carries no operator signature; nothing ran",
  signature_invalid: 'the signature does not match the message (a field was changed on its way, or it was signed for another node or id); nothing ran',
  signature_expired: 'the signed message reached the receiver after its expiresAt (or before its notBefore); nothing ran',
  key_not_allowed: "the key that signed the message is not in the receiver's security.trustedKeys, or not for this method; nothing ran",
  reply_forged: "central dropped a reply whose signature does not verify against the key it pinned for the node the reply claims to come from (logged and in the audit log); it was not taken as the reply",
  session_lost: 'a shell or tunnel ended because nothing was heard from the other node for sessions.grace (link down too long, or that node restarted); the remote process group was killed',
  session_timeout: 'a shell or tunnel ended at the remote node\'s sessions.idleTimeout (no bytes either way) or sessions.maxDuration; its process group was killed',
  session_closed: 'the other side ended a shell or tunnel early: its node stopped, or its client went away (the message says which)',
  tunnel_denied: 'tunnel.open named a HOST:PORT that the receiving node\'s tunnels.allow does not list (the default lists none)',
  tunnel_listen_denied: 'tunnel.listen (outpost tunnel -R) named a port that the receiving node\'s tunnels.listen does not list (the default lists none); nothing was opened there',
  pty_unavailable: 'session.open: the pty addon cannot load on the receiving node (no prebuilt addon for the platform, or glibc too old)',
  key_changed: "central refused a node.hello carrying another public key than the one pinned for that node (first seen, or security.nodeKeys)",
  not_selected: 'the receiver no longer matches the selector central resolved to address it (its labels changed meanwhile); nothing ran',
  job_unknown: 'central keeps no job of that id (outpost jobs lists them)',
  events_dropped: 'the outbox was full and delivery.whenFull is dropOldestEvents: the oldest events were dropped to make room (logged, and reported to central in its errors.log)',
  file_outside: 'a file path lies outside files.roots (writing) or files.read (reading), is not absolute, or a symlink on it leads out of them; nothing was written',
  file_too_large: 'the file is larger than files.maxBytes on the receiving node; nothing was written',
  file_no_space: 'the receiving node has not enough free space for the file (and its reserve); nothing was written',
  file_not_found: 'the file to send does not exist or is not a regular file, or the target directory does not exist (--mkdir creates it)',
  file_hash_mismatch: 'a transferred file did not match its sha256 at the end; the partial file was deleted and the target left as it was',
  file_source_changed: 'the file being sent changed on the sending node while it was sent (written to since the transfer started, or a chunk read again no longer matches its sha256); the receiver deleted its partial file; send it again',
  file_transfer_ended: 'outpost cp --cancel names a transfer that has ended already (done, failed or cancelled); nothing changed',
  file_transfer_unknown: 'a chunk or commit names a transfer the receiver has no record of (it was finished, failed or never opened)',
} as const satisfies Record<string, string>

export type ErrorCode = keyof typeof ERROR_CODES

/**
 * The exit status of a command that ends in an error with this code, the one table for the CLI
 * and for the error replies `send` waits on: 2 the command, its input or the config was wrong;
 * 3 the message was not delivered or not let in; every other code is 1 (something failed).
 */
const EXIT_STATUS: Partial<Record<ErrorCode, 2 | 3>> = {
  usage: 2, config_not_found: 2, config_parse: 2, config_unreadable: 2, config_invalid: 2, config_key: 2, config_readonly: 2, config_node_mismatch: 2,
  envelope_invalid: 2, fan_out_too_large: 2, node_unknown: 2, selector_invalid: 2, selector_no_match: 2, agent_not_running: 2, upgrade_unavailable: 2, upgrade_insecure: 2, data_dir_unwritable: 2,
  key_invalid: 2, key_exists: 2,
  not_selected: 3, job_unknown: 2,
  file_outside: 3, file_too_large: 3, file_no_space: 3,
  not_connected: 3, not_delivered: 3, ttl_expired: 3, withdrawn: 3, denied: 3, signature_required: 3, signature_invalid: 3, signature_expired: 3, key_not_allowed: 3, outbox_full: 3, method_unknown: 3, method_disabled: 3, command_unknown: 3, tunnel_denied: 3, tunnel_listen_denied: 3,
}

export function exitCodeFor(code: string): 1 | 2 | 3 {
  return Object.hasOwn(EXIT_STATUS, code) ? EXIT_STATUS[code as ErrorCode]! : 1
}

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
