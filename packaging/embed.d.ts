/** Virtual modules that packaging/bundle.mjs resolves to embedded bytes (esbuild `binary` loader). */
declare module 'outpost-embed:sql-wasm' {
  const bytes: Uint8Array
  export default bytes
}
declare module 'outpost-embed:pty-addon' {
  /** Empty when this architecture's binary has no pty addon. */
  const bytes: Uint8Array
  export default bytes
}
