// Each user's cursor colour, from their id: dark enough for white name labels to be legible.
const PALETTE = ['#1a5fb4', '#a51d2d', '#26734d', '#613583', '#8f4400', '#0b6e75', '#a3006b', '#4d5a00']

/** `{ color, colorLight }` for a user id, the light one for selections behind text. */
export function userColor(userId) {
  let hash = 0
  for (const ch of userId || '') hash = (hash * 31 + ch.charCodeAt(0)) >>> 0
  const color = PALETTE[hash % PALETTE.length]
  return { color, colorLight: `${color}33` }
}

const COLOR = /^#[0-9a-f]{3,8}$/i
const DECLARATION = /(background-color|border-color)\s*:\s*([^;]+)/gi

/**
 * Remote cursors and selections carry their colour in a `style` attribute, which the page's
 * Content-Security-Policy does not apply (no inline style). Apply those colours through the
 * CSSOM instead, which the policy allows, for the cursor and selection elements only, and
 * only when the value is a plain hex colour.
 */
export function applyCursorColors(root) {
  const paint = (el) => {
    const attr = el.getAttribute('style') || ''
    for (const [, property, raw] of attr.matchAll(DECLARATION)) {
      const value = raw.trim()
      if (!COLOR.test(value)) continue
      const name = property.toLowerCase()
      if (el.style.getPropertyValue(name) !== value) el.style.setProperty(name, value)
    }
  }
  const selector = '.cm-ySelectionCaret, .cm-ySelection, .cm-yLineSelection'
  const sweep = () => root.querySelectorAll(selector).forEach(paint)
  const observer = new MutationObserver(sweep)
  observer.observe(root, { subtree: true, childList: true, attributes: true, attributeFilter: ['style'] })
  sweep()
  return () => observer.disconnect()
}
