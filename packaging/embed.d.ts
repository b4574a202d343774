/** The virtual module packaging/bundle.mjs resolves to the console's files, read from the build's pack. */
declare module 'outpost-embed:console' {
  /** The console's built files by URL path (src/console/assets.ts). */
  const files: Record<string, { type: string; body: string }>
  export { files }
}
