// The caller's favorite POCs.
import { api, me, query as qs } from '../api.js'
import { h, when } from '../dom.js'

export async function favoritesScreen({ query }) {
  const page = Number(query.get('page') || 1)
  const answer = await api('GET', `/v1/favorites/user/${me().userId}${qs({ page, limit: 20 })}`)
  const list = h('ul', { class: 'cards' })
  for (const fav of answer.favorites) {
    const remove = h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove ${fav.pocTitle} from favorites` }, 'Remove')
    const item = h(
      'li',
      { class: 'card' },
      h('h2', null, h('a', { href: `/pocs/${fav.pocId}` }, fav.pocTitle)),
      h('p', { class: 'meta' }, `${fav.language} · added ${when(fav.addedAt)}`),
      fav.tags.length ? h('ul', { class: 'tags', 'aria-label': 'Tags' }, fav.tags.map((tag) => h('li', null, tag))) : null,
      remove,
    )
    remove.addEventListener('click', async () => {
      remove.disabled = true
      await api('DELETE', `/v1/favorites/${fav.favoriteId}`)
      item.remove()
    })
    list.append(item)
  }
  const pages = h('nav', { class: 'pages', 'aria-label': 'Pages' })
  if (page > 1) pages.append(h('a', { href: `/favorites?page=${page - 1}` }, 'Previous page'))
  if (answer.totalPages > 1) pages.append(h('span', null, `Page ${page} of ${answer.totalPages}`))
  if (page < answer.totalPages) pages.append(h('a', { href: `/favorites?page=${page + 1}` }, 'Next page'))
  return h(
    'section',
    null,
    h('h1', null, 'Favorites'),
    answer.favorites.length ? list : h('p', null, 'No favorites yet. ', h('a', { href: '/pocs' }, 'Find POCs to keep.')),
    pages,
  )
}
