// The REST client. The access token lives in this module's memory only; the refresh token
// (with the user id) is kept in sessionStorage, this tab only, so a reload can ask for a new
// access token. Tokens are refreshed shortly before they expire and once after a 401.

const STORE = 'pocdojo.session'
const REFRESH_MARGIN_MS = 60_000

let auth = null // { token, refreshToken, userId, tenantId, role, username, expiresAt }
let refreshing = null
const listeners = new Set()

/** An API failure: HTTP status and the server's error code, message and details. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {}
    super(error.message || `request failed (${status})`)
    this.status = status
    this.code = error.code || 'http_error'
    this.details = error.details
  }
}

/** The signed-in user ({ userId, tenantId, role, username }) or null. */
export function me() {
  return auth && { userId: auth.userId, tenantId: auth.tenantId, role: auth.role, username: auth.username }
}

/** Be told when the user signs in or out. */
export function onAuthChange(listener) {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

function changed() {
  for (const listener of listeners) listener(me())
}

function remember() {
  if (auth) {
    sessionStorage.setItem(STORE, JSON.stringify({ refreshToken: auth.refreshToken, userId: auth.userId }))
  }
}

function forget() {
  auth = null
  sessionStorage.clear()
  changed()
}

async function call(method, path, body, token) {
  const headers = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (token) headers.Authorization = `Bearer ${token}`
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  })
  const text = await resp.text()
  let data = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = null
    }
  }
  if (!resp.ok) throw new ApiError(resp.status, data)
  return data
}

async function refresh() {
  if (!refreshing) {
    const current = auth
    refreshing = call('POST', '/v1/auth/refresh', { refreshToken: current.refreshToken, userId: current.userId })
      .then((answer) => {
        if (auth === current) {
          auth = {
            ...current,
            token: answer.token,
            refreshToken: answer.refreshToken,
            expiresAt: Date.now() + answer.expiresIn * 1000,
          }
          remember()
        }
      })
      .catch((error) => {
        if (auth === current) forget()
        throw error
      })
      .finally(() => {
        refreshing = null
      })
  }
  return refreshing
}

/**
 * Call the API as the signed-in user (or anonymously with `{ anonymous: true }`): JSON in,
 * JSON out, ApiError on failure.
 */
export async function api(method, path, body, { anonymous = false } = {}) {
  if (anonymous) return call(method, path, body)
  if (!auth) throw new ApiError(401, { error: { code: 'not_signed_in', message: 'please log in' } })
  if (Date.now() > auth.expiresAt - REFRESH_MARGIN_MS) await refresh()
  try {
    return await call(method, path, body, auth.token)
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401 || !auth) throw error
    await refresh()
    return call(method, path, body, auth.token)
  }
}

async function loadProfile(partial) {
  auth = partial
  const profile = await call('GET', '/v1/users/me', undefined, auth.token)
  auth = { ...auth, role: profile.role, username: profile.username, tenantId: profile.tenantId }
  remember()
  changed()
}

/** Log in; the tenant is its domain or id. */
export async function login(username, password, tenantId) {
  const answer = await call('POST', '/v1/auth/login', { username, password, tenantId })
  await loadProfile({
    token: answer.token,
    refreshToken: answer.refreshToken,
    userId: answer.userId,
    tenantId: answer.tenantId,
    role: answer.role,
    expiresAt: Date.now() + answer.expiresIn * 1000,
  })
}

/** Sign in again after a reload, from the refresh token this tab kept; false if none works. */
export async function resume() {
  const saved = sessionStorage.getItem(STORE)
  if (!saved) return false
  let stored
  try {
    stored = JSON.parse(saved)
  } catch {
    sessionStorage.removeItem(STORE)
    return false
  }
  try {
    const answer = await call('POST', '/v1/auth/refresh', stored)
    await loadProfile({
      token: answer.token,
      refreshToken: answer.refreshToken,
      userId: stored.userId,
      expiresAt: Date.now() + answer.expiresIn * 1000,
    })
    return true
  } catch {
    sessionStorage.removeItem(STORE)
    auth = null
    return false
  }
}

/** Log out: the server ends the login session; everything kept here is cleared. */
export async function logout() {
  const current = auth
  forget()
  if (current) {
    try {
      await call('POST', '/v1/auth/logout', { userId: current.userId, token: current.token })
    } catch {
      // Already gone on the server: nothing more to clear.
    }
  }
}

/** A query string from an object, leaving out empty values; arrays become comma lists. */
export function query(params) {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value == null || value === '' || (Array.isArray(value) && value.length === 0)) continue
    search.set(key, Array.isArray(value) ? value.join(',') : String(value))
  }
  const text = search.toString()
  return text ? `?${text}` : ''
}
