/**
 * A name pattern of the config (methods.allow, methods.enabled, audit.exclude, hub.redirect):
 * "*", an exact name, or a prefix ending in "*" such as "info.*" or "ship*".
 */
export function matches(pattern: string, name: string): boolean {
  return pattern === '*' || pattern === name || (pattern.endsWith('*') && name.startsWith(pattern.slice(0, -1)))
}
