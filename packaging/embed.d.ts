/** Virtual modules that packaging/bundle.mjs resolves to embedded files as base64 (esbuild `base64` loader). */
declare module 'outpost-embed:sql-wasm' {
  const base64: string
  export default base64
}
declare module 'outpost-embed:pty-addon' {
  /** Empty when this architecture's binary has no pty addon. */
  const base64: string
  export default base64
}
declare module 'outpost-embed:console' {
  /** The console's built files by URL path (src/console/assets.ts). */
  const files: Record<string, { type: string; body: string }>
  export { files }
}
