// The app's entry: the page layout, the navigation and the routes. The dojo room (editor,
// Yjs) is a separate chunk, loaded when a room is opened.
import './style.css'

import { logout, me, onAuthChange, resume } from './api.js'
import { h, replace } from './dom.js'
import { navigate, route, start } from './router.js'
import { loginScreen, signupScreen } from './screens/auth.js'
import { dojoListScreen, dojoNewScreen, dojoRoomScreen } from './screens/dojos.js'
import { favoritesScreen } from './screens/favorites.js'
import { pocDetailScreen, pocEditScreen, pocNewScreen, pocSearchScreen } from './screens/pocs.js'
import { recordingsScreen, replayScreen } from './screens/recordings.js'
import { reportsScreen } from './screens/reports.js'

route('/', () => navigate(me() ? '/pocs' : '/login', { replace: true }).then(() => document.createTextNode('')), { open: true })
route('/login', loginScreen, { title: 'Log in', open: true })
route('/signup', signupScreen, { title: 'Sign up your company', open: true })
route('/pocs', pocSearchScreen, { title: 'POCs' })
route('/pocs/new', pocNewScreen, { title: 'New POC' })
route('/pocs/:pocId', pocDetailScreen, { title: 'POC' })
route('/pocs/:pocId/edit', pocEditScreen, { title: 'Edit POC' })
route('/favorites', favoritesScreen, { title: 'Favorites' })
route('/reports', reportsScreen, { title: 'Reports and videos' })
route('/dojos', dojoListScreen, { title: 'Dojos' })
route('/dojos/new', dojoNewScreen, { title: 'New dojo' })
route('/dojos/:sessionId', dojoRoomScreen, { title: 'Dojo' })
route('/dojos/:sessionId/recordings', recordingsScreen, { title: 'Recordings' })
route('/dojos/:sessionId/recordings/:recordingId', replayScreen, { title: 'Replay' })

const nav = h('nav', { 'aria-label': 'Main' })
const main = h('main', { id: 'main' })

function renderNav(user) {
  if (!user) {
    replace(nav, h('ul', null, h('li', null, h('a', { href: '/login' }, 'Log in')), h('li', null, h('a', { href: '/signup' }, 'Sign up'))))
    return
  }
  const out = h('button', { type: 'button', class: 'link' }, 'Log out')
  out.addEventListener('click', async () => {
    await logout()
    navigate('/login')
  })
  replace(
    nav,
    h(
      'ul',
      null,
      h('li', null, h('a', { href: '/pocs' }, 'POCs')),
      h('li', null, h('a', { href: '/pocs/new' }, 'New POC')),
      h('li', null, h('a', { href: '/favorites' }, 'Favorites')),
      h('li', null, h('a', { href: '/reports' }, 'Reports')),
      h('li', null, h('a', { href: '/dojos' }, 'Dojos')),
      h('li', { class: 'who' }, h('span', null, `Signed in as ${user.username || ''}`)),
      h('li', null, out),
    ),
  )
}

async function boot() {
  document.body.replaceChildren(
    h('a', { href: '#main', class: 'skip' }, 'Skip to content'),
    h('header', null, h('a', { href: '/', class: 'brand' }, 'pocdojo'), nav),
    main,
  )
  onAuthChange(renderNav)
  await resume()
  renderNav(me())
  onAuthChange((user) => {
    if (!user && !['/login', '/signup'].includes(location.pathname)) navigate('/login')
  })
  await start(main, (found) => {
    if (found.open || me()) return null
    const back = location.pathname + location.search
    return `/login?next=${encodeURIComponent(back)}`
  })
}

boot()
