/**
 * xterm.js styles its rows with `<style>` elements it writes at run time and, for 24-bit
 * colours, with `style` attributes. The console's Content-Security-Policy (style-src 'self', no
 * 'unsafe-inline') refuses both. This keeps the policy strict and gives xterm.js the same
 * styles through the CSSOM, which the policy does not govern:
 *
 *   document.createElement('style') ─▶ an inert <template> whose textContent feeds a
 *                                      constructed CSSStyleSheet in document.adoptedStyleSheets
 *   el.setAttribute('style', css)    ─▶ el.style.cssText = css
 *
 * Nothing else in the console makes `<style>` elements or style attributes (Preact sets styles
 * through the CSSOM already).
 */
let installed = false

export function cspSafeStyles(doc: Document = document): void {
  if (installed) return
  installed = true
  const create = doc.createElement.bind(doc) as (tag: string, o?: ElementCreationOptions) => HTMLElement
  doc.createElement = ((tag: string, o?: ElementCreationOptions) => {
    if (tag.toLowerCase() !== 'style') return create(tag, o)
    const el = create('template')
    const sheet = new CSSStyleSheet()
    let text = ''
    doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet]
    Object.defineProperty(el, 'textContent', {
      get: () => text,
      set: (v: string | null) => { text = v ?? ''; sheet.replaceSync(text) },
    })
    const remove = el.remove.bind(el)
    el.remove = () => { doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet); remove() }
    return el
  }) as typeof doc.createElement
  const setAttribute = Element.prototype.setAttribute
  Element.prototype.setAttribute = function (this: Element, name: string, value: string): void {
    if (name.toLowerCase() === 'style' && this instanceof HTMLElement) this.style.cssText = value
    else setAttribute.call(this, name, value)
  }
}
