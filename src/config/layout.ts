/**
 * Edits of outpost.yaml that keep the operator's layout (yaml's Document API keeps comments
 * on the nodes it does not touch; this covers the nodes it does):
 *
 *   removeKey  a removed key's comments (the line above it, the one after its value) stay
 *   render     flow collections stay on one line, with the file's own `{ a }` / `{a}` padding
 */
import { isDeepStrictEqual } from 'node:util'
import YAML, { isCollection, isMap, isScalar, visit, YAMLMap, type Document, type Node as YamlNode, type Pair } from 'yaml'

type YamlMap = YAML.YAMLMap<unknown, unknown>

const keyName = (pair: Pair): string => (isScalar(pair.key) ? String(pair.key.value) : String(pair.key))

/** The comments a pair carries: above its key, after its key or value, inside a collection value. */
function commentsOf(pair: Pair): string[] {
  const key = pair.key as YamlNode | null
  const value = pair.value as YamlNode | null
  const found = [key?.commentBefore, key?.comment, isCollection(value) ? value.commentBefore : undefined, value?.comment]
  return found.filter((c): c is string => c !== undefined && c !== null && c.trim() !== '')
}

const join = (parts: Array<string | null | undefined>): string | null => {
  const kept = parts.filter((c): c is string => c !== undefined && c !== null && c !== '')
  return kept.length === 0 ? null : kept.join('\n')
}

/**
 * Remove the key at `path`. Its comments move to the next key of its section, or to the end of
 * the section; a section left empty goes too unless comments remain in it, then it stays as
 * `delivery: {}` ("all defaults") with the comments above it. (A bare `delivery:` followed by
 * comments would not survive the next edit: YAML gives the comments after it, the next
 * section's heading too, to that empty value.)
 */
export function removeKey(doc: Document, path: readonly string[]): void {
  let at = [...path]
  let kept: string[] = []
  for (;;) {
    const parent = (at.length === 1 ? doc.contents : doc.getIn(at.slice(0, -1), true)) as unknown
    if (!isMap(parent)) return
    const i = parent.items.findIndex((pair) => keyName(pair) === at[at.length - 1])
    if (i < 0) return
    const [pair] = parent.items.splice(i, 1) as [Pair]
    kept = [...commentsOf(pair), ...kept]
    const spaceBefore = (pair.key as YamlNode | null)?.spaceBefore === true
    if (parent.items.length > 0 || at.length === 1) {
      place(parent, i, kept, spaceBefore)
      return
    }
    // The section is empty now.
    const rest = join([parent.commentBefore, ...kept, parent.comment])
    if (rest === null) { at = at.slice(0, -1); kept = []; continue }
    const section = at.slice(0, -1)
    const empty = new YAMLMap()
    empty.flow = true
    doc.setIn(section, empty)
    const outer = (section.length === 1 ? doc.contents : doc.getIn(section.slice(0, -1), true)) as unknown
    const key = isMap(outer) ? outer.items.find((p) => keyName(p) === section[section.length - 1])?.key : undefined
    if (isScalar(key)) key.commentBefore = join([key.commentBefore, rest])
    else empty.comment = rest
    return
  }
}

function place(map: YamlMap, i: number, comments: string[], spaceBefore: boolean): void {
  const next = map.items[i]
  const nextKey = next?.key as YamlNode | undefined
  if (map.flow) {
    // Comments inside a flow map would break it onto several lines: they follow it instead.
    map.comment = join([map.comment, ...comments])
  } else if (nextKey !== undefined && isScalar(nextKey)) {
    nextKey.commentBefore = join([...comments, nextKey.commentBefore])
    if (spaceBefore) nextKey.spaceBefore = true
  } else {
    map.comment = join([map.comment, ...comments])
  }
}

/**
 * The document as text: flow collections on one line and padded as the file had them, and each
 * line the edit left as it was (but for spacing) written back exactly as the file had it: yaml
 * re-renders the whole document, which loses the alignment of comments after values and the
 * padding of a flow map or list that differs from the file's majority.
 */
export function render(doc: Document, source: string): string {
  return keepSpacing(doc.toString({ lineWidth: 0, flowCollectionPadding: flowPadding(doc, source) }), source)
}

/** A line with its spacing (after the indentation) made uniform: `[ a ]` and `[a]`, `x  # c` and `x # c` are alike. */
function spacingless(line: string): string {
  const indent = /^\s*/.exec(line)![0]
  return indent + line.slice(indent.length).trimEnd().replace(/\s+/g, ' ').replace(/([[{]) /g, '$1').replace(/ ([\]}])/g, '$1')
}

/**
 * Put back the source's own line wherever the rendered line differs from it only in spacing.
 * A line alike two different source lines is left as rendered. Spacing can be part of a value
 * (inside quotes, in a block scalar): the result is kept only when it reads as the same values.
 */
export function keepSpacing(out: string, source: string): string {
  const own = new Map<string, string | null>()
  for (const line of source.split('\n')) {
    const key = spacingless(line)
    const seen = own.get(key)
    own.set(key, seen === undefined || seen === line ? line : null)
  }
  const kept = out.split('\n').map((line) => own.get(spacingless(line)) ?? line).join('\n')
  if (kept === out) return out
  try {
    return isDeepStrictEqual(YAML.parse(kept), YAML.parse(out)) ? kept : out
  } catch {
    return out
  }
}

/** Whether most flow collections of the file are written `{ a: 1 }` (yaml's default) or `{a: 1}`. */
function flowPadding(doc: Document, source: string): boolean {
  let padded = 0
  let tight = 0
  visit(doc, {
    Collection(_, node) {
      if (!node.flow || node.items.length === 0 || node.range === undefined || node.range === null) return
      if (source[node.range[0]] !== '{' && source[node.range[0]] !== '[') return // a collection the edit created
      const next = source[node.range[0] + 1] ?? ''
      if (next === '}' || next === ']') return // empty in the file (`{}`): it says nothing of the style
      if (/\s/.test(next)) padded++
      else tight++
    },
  })
  return tight === 0 || padded >= tight
}
