// Small DOM helpers. Every string becomes a text node or an attribute value: nothing is ever
// parsed as HTML, so user-written text (titles, chat, names) cannot become markup.

let ids = 0

/** A unique element id with a readable prefix. */
export function uid(prefix = 'f') {
  ids += 1
  return `${prefix}-${ids}`
}

/**
 * Create an element. Props: `class`, `text`, `value`, `checked`, `on<event>` listeners, any
 * other attribute (true → present, null/false → absent). Children: nodes or strings (as text).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue
    if (key.startsWith('on')) {
      if (typeof value !== 'function') throw new Error(`h: ${key} must be a function`)
      el.addEventListener(key.slice(2).toLowerCase(), value)
    } else if (key === 'class') el.className = value
    else if (key === 'text') el.textContent = String(value)
    else if (key === 'value') el.value = String(value)
    else if (key === 'checked') el.checked = Boolean(value)
    else if (key === 'style' || /HTML$/.test(key)) throw new Error(`h: ${key} is not allowed`)
    else el.setAttribute(key, value === true ? '' : String(value))
  }
  append(el, children)
  return el
}

/** Append nodes or strings (as text) to `el`. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue
    el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return el
}

/** Replace the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren()
  return append(el, children)
}

/** A labelled form control: `<div><label for>Label</label><control id></div>`. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid(control.name || 'field')
  const parts = [h('label', { for: control.id }, label), control]
  if (hint) {
    const hintId = uid('hint')
    control.setAttribute('aria-describedby', hintId)
    parts.push(h('small', { id: hintId, class: 'hint' }, hint))
  }
  return h('div', { class: 'field' }, parts)
}

/** A `<select>` with options given as values or [value, label] pairs. */
export function select(props, options, selected) {
  return h(
    'select',
    props,
    options.map((option) => {
      const [value, label] = Array.isArray(option) ? option : [option, option]
      return h('option', { value, selected: value === selected }, label)
    }),
  )
}

/** Read a form's named controls into an object of trimmed strings (checkboxes as booleans). */
export function formData(form) {
  const out = {}
  for (const el of form.elements) {
    if (!el.name) continue
    out[el.name] = el.type === 'checkbox' ? el.checked : el.value.trim()
  }
  return out
}

/**
 * Handle `form`'s submit: `action(values)` gets its values (as `formData` reads them); a
 * failure is shown in `box`, which is cleared on each try.
 */
export function onSubmit(form, box, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    showError(box, null)
    try {
      await action(formData(form))
    } catch (failure) {
      showError(box, failure)
    }
  })
}

/** A short, readable local date and time. */
export function when(iso) {
  if (!iso) return ''
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleString()
}

/** An error paragraph announced to screen readers. */
export function errorBox() {
  return h('p', { class: 'error', role: 'alert', hidden: true })
}

/** Show `error` (an ApiError or any Error) in `box`, or hide it with null. */
export function showError(box, error) {
  if (!error) {
    box.hidden = true
    box.textContent = ''
    return
  }
  box.hidden = false
  const details = Array.isArray(error.details) ? error.details : []
  const lines = details.map((d) => (d && d.field ? `${d.field}: ${d.message}` : d && d.message)).filter(Boolean)
  box.textContent = [error.message || String(error), ...lines].join(' · ')
}

/**
 * A screen's refresh: `load()` draws and answers whether something is still under way; while
 * it is, and until the screen is left, it runs again every `ms`. Call the result to refresh
 * now (a refresh waiting is replaced).
 */
export function poller(onLeave, ms, load) {
  let timer = null
  let stopped = false
  onLeave(() => {
    stopped = true
    clearTimeout(timer)
  })
  const refresh = async () => {
    const busy = await load()
    clearTimeout(timer)
    if (busy && !stopped) timer = setTimeout(() => refresh().catch(() => {}), ms)
  }
  return refresh
}
