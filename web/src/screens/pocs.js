// POCs: search (name with typos, language, tags with facet counts, sort, pages), detail,
// create, edit, delete, favorite.
import { ApiError, api, me, query as qs } from '../api.js'
import { errorBox, field, formData, h, onSubmit, replace, select, showError, when } from '../dom.js'
import { navigate } from '../router.js'

let languages = null

/** The languages a POC may declare (asked once). */
export async function languageList() {
  if (!languages) languages = (await api('GET', '/v1/languages')).languages
  return languages
}

/** The caller's favorites as a map pocId → favoriteId. */
export async function favoriteIds() {
  const user = me()
  const found = new Map()
  for (let page = 1; page <= 10; page += 1) {
    const answer = await api('GET', `/v1/favorites/user/${user.userId}${qs({ page, limit: 100 })}`)
    for (const fav of answer.favorites) found.set(fav.pocId, fav.favoriteId)
    if (page >= answer.totalPages) break
  }
  return found
}

/** A button that adds or removes one POC from the caller's favorites. */
export function favoriteButton(pocId, title, favorites, onChange) {
  const button = h('button', { type: 'button', class: 'secondary' })
  const paint = () => {
    const on = favorites.has(pocId)
    button.textContent = on ? 'Unfavorite' : 'Favorite'
    button.setAttribute('aria-pressed', on ? 'true' : 'false')
    button.setAttribute('aria-label', `${on ? 'Unfavorite' : 'Favorite'} ${title}`)
  }
  paint()
  button.addEventListener('click', async () => {
    button.disabled = true
    try {
      if (favorites.has(pocId)) {
        await api('DELETE', `/v1/favorites/${favorites.get(pocId)}`)
        favorites.delete(pocId)
      } else {
        const added = await api('POST', '/v1/favorites', { pocId, userId: me().userId })
        favorites.set(pocId, added.favoriteId)
      }
      if (onChange) onChange()
    } finally {
      button.disabled = false
      paint()
    }
  })
  return button
}

function tagList(tags) {
  if (!tags.length) return null
  return h('ul', { class: 'tags', 'aria-label': 'Tags' }, tags.map((tag) => h('li', null, tag)))
}

function pocCard(poc, favorites) {
  return h(
    'li',
    { class: 'card' },
    h('h2', null, h('a', { href: `/pocs/${poc.pocId}` }, poc.title)),
    h('p', { class: 'meta' }, `${poc.language} · ${poc.status} · created ${when(poc.createdAt)}`),
    poc.description ? h('p', null, poc.description.slice(0, 280)) : null,
    tagList(poc.tags),
    favoriteButton(poc.pocId, poc.title, favorites),
  )
}

const SORTS = [
  ['relevance', 'Relevance'],
  ['created', 'Newest'],
  ['title', 'Title'],
  ['popularity', 'Popularity'],
]

export async function pocSearchScreen({ query }) {
  const params = {
    name: query.get('name') || '',
    q: query.get('q') || '',
    language: query.get('language') || '',
    tags: query.get('tags') || '',
    tagsMode: query.get('tagsMode') || 'any',
    sort: query.get('sort') || 'relevance',
    page: Number(query.get('page') || 1),
  }
  const [langs, favorites] = await Promise.all([languageList(), favoriteIds()])
  const go = (changes) => navigate(`/pocs${qs({ ...params, tagsMode: null, ...changes, page: changes.page || null })}`)
  const form = h(
    'form',
    { class: 'search', role: 'search', 'aria-label': 'Search POCs' },
    field('Name', h('input', { name: 'name', type: 'search', value: params.name }), 'Typos are forgiven.'),
    field('Text', h('input', { name: 'q', type: 'search', value: params.q })),
    field('Language', select({ name: 'language' }, [['', 'Any language'], ...langs], params.language)),
    field('Tags', h('input', { name: 'tags', value: params.tags }), 'Comma-separated.'),
    field('Sort by', select({ name: 'sort' }, SORTS, params.sort)),
    h('button', { type: 'submit' }, 'Search'),
  )
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const data = formData(form)
    go({ name: data.name, q: data.q, language: data.language, tags: data.tags, sort: data.sort, page: null })
  })
  const results = h('div', { class: 'results' })
  const error = errorBox()
  let answer = null
  try {
    answer = await api('GET', `/v1/pocs/search${qs({ ...params, tagsMode: params.tags ? params.tagsMode : null, limit: 10 })}`)
  } catch (failure) {
    showError(error, failure)
  }
  if (answer) {
    const facetButtons = (label, items, key) =>
      h(
        'div',
        { class: 'facet' },
        h('h2', null, label),
        items.length
          ? h(
              'ul',
              null,
              items.map((facet) =>
                h('li', null, h('button', { type: 'button', class: 'link', onclick: () => go({ [key]: facet.value, page: null }) }, `${facet.value} (${facet.count})`)),
              ),
            )
          : h('p', { class: 'meta' }, 'None'),
      )
    const pages = h('nav', { class: 'pages', 'aria-label': 'Pages' })
    if (answer.totalPages > 1) {
      append(pages, params.page > 1 ? h('button', { type: 'button', onclick: () => go({ page: params.page - 1 }) }, 'Previous page') : null)
      append(pages, h('span', null, `Page ${answer.page} of ${answer.totalPages}`))
      append(pages, params.page < answer.totalPages ? h('button', { type: 'button', onclick: () => go({ page: params.page + 1 }) }, 'Next page') : null)
    }
    replace(
      results,
      h(
        'aside',
        { class: 'facets', 'aria-label': 'Refine' },
        facetButtons('Languages', answer.facets.languages, 'language'),
        facetButtons('Tags', answer.facets.tags, 'tags'),
      ),
      h(
        'section',
        { 'aria-label': 'Results' },
        h('p', { role: 'status' }, `${answer.totalCount} POC${answer.totalCount === 1 ? '' : 's'} found`),
        answer.pocs.length ? h('ul', { class: 'cards' }, answer.pocs.map((poc) => pocCard(poc, favorites))) : null,
        pages,
      ),
    )
  }
  return h('section', null, h('div', { class: 'title-row' }, h('h1', null, 'POCs'), h('a', { href: '/pocs/new', class: 'button' }, 'New POC')), form, error, results)
}

function append(el, child) {
  if (child) el.append(child)
}

async function pocForm(poc, save, submitLabel) {
  const langs = await languageList()
  const error = errorBox()
  const form = h(
    'form',
    { class: 'card' },
    field('Title', h('input', { name: 'title', required: true, maxlength: 200, value: poc.title })),
    field('Description', h('textarea', { name: 'description', rows: 4, maxlength: 10000 }, poc.description || '')),
    field('Language', select({ name: 'language', required: true }, langs, poc.language || 'Python')),
    field('Tags', h('input', { name: 'tags', value: (poc.tags || []).join(', ') }), 'Comma-separated, at most 20.'),
    field('Repository URL', h('input', { name: 'repositoryUrl', type: 'url', value: poc.repositoryUrl || '' })),
    field('Documentation', h('textarea', { name: 'documentation', rows: 6 }, poc.documentation || '')),
    error,
    h('button', { type: 'submit' }, submitLabel),
  )
  onSubmit(form, error, async (data) => {
    const body = {
      title: data.title,
      description: data.description,
      language: data.language,
      tags: data.tags.split(',').map((t) => t.trim()).filter(Boolean),
      repositoryUrl: data.repositoryUrl || null,
      documentation: data.documentation || null,
    }
    await save(body)
  })
  return form
}

export async function pocNewScreen() {
  const form = await pocForm({}, async (body) => {
    const user = me()
    const created = await api('POST', '/v1/pocs', { ...body, userId: user.userId, tenantId: user.tenantId })
    navigate(`/pocs/${created.pocId}`)
  }, 'Create POC')
  return h('section', null, h('h1', null, 'New POC'), form)
}

export async function pocEditScreen({ params }) {
  const poc = await api('GET', `/v1/pocs/${params.pocId}`)
  const form = await pocForm(poc, async (body) => {
    await api('PUT', `/v1/pocs/${poc.pocId}`, body)
    navigate(`/pocs/${poc.pocId}`)
  }, 'Save changes')
  return h('section', null, h('h1', null, `Edit ${poc.title}`), form)
}

function safeUrl(url) {
  try {
    const parsed = new URL(url)
    return ['http:', 'https:'].includes(parsed.protocol) ? parsed.href : null
  } catch {
    return null
  }
}

export async function pocDetailScreen({ params }) {
  let poc
  try {
    poc = await api('GET', `/v1/pocs/${params.pocId}`)
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 404) {
      return h('section', null, h('h1', null, 'POC not found'), h('p', null, h('a', { href: '/pocs' }, 'Back to the POCs')))
    }
    throw failure
  }
  const favorites = await favoriteIds()
  const user = me()
  const mayChange = user.userId === poc.userId || user.role === 'admin'
  const error = errorBox()
  const actions = h('div', { class: 'actions' }, favoriteButton(poc.pocId, poc.title, favorites), h('a', { href: `/dojos/new?poc=${poc.pocId}`, class: 'button' }, 'Start a dojo'))
  if (mayChange) {
    actions.append(h('a', { href: `/pocs/${poc.pocId}/edit`, class: 'button secondary' }, 'Edit'))
    const confirm = h('button', { type: 'button', class: 'danger', hidden: true }, `Yes, delete ${poc.title}`)
    const remove = h('button', { type: 'button', class: 'danger', 'aria-expanded': 'false' }, 'Delete')
    remove.addEventListener('click', () => {
      confirm.hidden = !confirm.hidden
      remove.setAttribute('aria-expanded', String(!confirm.hidden))
      if (!confirm.hidden) confirm.focus()
    })
    confirm.addEventListener('click', async () => {
      try {
        await api('DELETE', `/v1/pocs/${poc.pocId}`)
        navigate('/pocs')
      } catch (failure) {
        showError(error, failure)
      }
    })
    actions.append(remove, confirm)
  }
  const repo = poc.repositoryUrl && safeUrl(poc.repositoryUrl)
  return h(
    'article',
    null,
    h('h1', null, poc.title),
    h('p', { class: 'meta' }, `${poc.language} · ${poc.status} · created ${when(poc.createdAt)} · ${poc.metrics ? `${poc.metrics.views ?? 0} views` : ''}`),
    tagList(poc.tags),
    actions,
    error,
    poc.description ? h('section', null, h('h2', null, 'Description'), h('p', { class: 'prose' }, poc.description)) : null,
    repo ? h('p', null, 'Repository: ', h('a', { href: repo, rel: 'noopener noreferrer' }, repo)) : null,
    poc.documentation ? h('section', null, h('h2', null, 'Documentation'), h('pre', { class: 'doc', tabindex: '0' }, poc.documentation)) : null,
  )
}
