// Client-side routes over the History API. Each route's view returns the screen's node (or a
// promise of it) and may register a cleanup for when the user leaves (a dojo closes its
// sockets). The server answers every one of these paths with the app's page
// (pocdojo/web/pages.py lists them).

import { h, replace } from './dom.js'

const routes = []
let cleanups = []
let rendering = 0
let outlet = null
let fallback = null

/** Add a route: `pattern` like '/pocs/:pocId'; `view({ params, query, onLeave })`. */
export function route(pattern, view, { title, open = false } = {}) {
  const names = []
  const source = pattern.replace(/:(\w+)/g, (_, name) => {
    names.push(name)
    return '([^/]+)'
  })
  routes.push({ regex: new RegExp(`^${source}/?$`), names, view, title, open })
}

/** Go to `path` (pushing a history entry unless `replace`). */
export function navigate(path, { replace: replaceEntry = false } = {}) {
  if (replaceEntry) history.replaceState(null, '', path)
  else history.pushState(null, '', path)
  return render()
}

function match(pathname) {
  for (const candidate of routes) {
    const found = candidate.regex.exec(pathname)
    if (found) {
      const params = {}
      candidate.names.forEach((name, i) => {
        params[name] = decodeURIComponent(found[i + 1])
      })
      return { ...candidate, params }
    }
  }
  return null
}

/** Render the screen for the current location into the outlet. */
export async function render() {
  const ticket = ++rendering
  for (const cleanup of cleanups.splice(0)) cleanup()
  const found = match(location.pathname)
  const query = new URLSearchParams(location.search)
  const leaving = []
  let node
  let title = 'Not found'
  if (!found) {
    node = h('section', null, h('h1', { tabindex: '-1' }, 'Page not found'), h('p', null, h('a', { href: '/pocs' }, 'Go to the POCs')))
  } else {
    const blocked = fallback && fallback(found)
    if (blocked) return navigate(blocked, { replace: true })
    title = found.title || 'pocdojo'
    try {
      node = await found.view({ params: found.params, query, onLeave: (fn) => leaving.push(fn) })
    } catch (error) {
      node = h('section', null, h('h1', { tabindex: '-1' }, 'Something went wrong'), h('p', { role: 'alert' }, error.message || String(error)))
    }
  }
  if (ticket !== rendering) {
    for (const fn of leaving) fn()
    return
  }
  cleanups = leaving
  document.title = `${title} · pocdojo`
  replace(outlet, node)
  const heading = outlet.querySelector('h1')
  if (heading) {
    heading.setAttribute('tabindex', '-1')
    heading.focus({ preventScroll: true })
  }
}

/**
 * Start routing into `element`; `guard(route)` may answer a path to go to instead (a
 * screen that needs a login when nobody is signed in).
 */
export function start(element, guard) {
  outlet = element
  fallback = guard
  window.addEventListener('popstate', () => render())
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) return
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
    const link = event.target.closest && event.target.closest('a[href]')
    if (!link || link.target || link.hasAttribute('download')) return
    if (link.origin !== location.origin || link.pathname.startsWith('/v1/')) return
    if (!match(link.pathname)) return
    event.preventDefault()
    navigate(link.pathname + link.search)
  })
  return render()
}
