// Log in, and sign up a company (its tenant and first admin).
import { api, login } from '../api.js'
import { errorBox, field, h, onSubmit, select } from '../dom.js'
import { navigate } from '../router.js'

function nextPath(query) {
  const next = query.get('next') || ''
  return next.startsWith('/') && !next.startsWith('//') ? next : '/pocs'
}

export function loginScreen({ query }) {
  const error = errorBox()
  const form = h(
    'form',
    { class: 'card narrow' },
    field('Company domain', h('input', { name: 'tenant', required: true, autocomplete: 'organization', value: query.get('tenant') })),
    field('Username', h('input', { name: 'username', required: true, autocomplete: 'username' })),
    field('Password', h('input', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' })),
    error,
    h('button', { type: 'submit' }, 'Log in'),
  )
  onSubmit(form, error, async (data) => {
    await login(data.username, form.elements.password.value, data.tenant)
    navigate(nextPath(query))
  })
  return h(
    'section',
    null,
    h('h1', null, 'Log in'),
    form,
    h('p', null, 'New here? ', h('a', { href: '/signup' }, 'Sign up your company')),
  )
}

export function signupScreen() {
  const error = errorBox()
  const form = h(
    'form',
    { class: 'card narrow' },
    h(
      'fieldset',
      null,
      h('legend', null, 'Company'),
      field('Company name', h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'organization' })),
      field('Domain', h('input', { name: 'domain', required: true, placeholder: 'acme.example' }), 'You log in with it.'),
      field('Contact email', h('input', { name: 'contactEmail', type: 'email', required: true, autocomplete: 'email' })),
      field('Plan', select({ name: 'plan' }, [['standard', 'Standard'], ['premium', 'Premium'], ['enterprise', 'Enterprise']], 'standard')),
    ),
    h(
      'fieldset',
      null,
      h('legend', null, 'First administrator'),
      field('Full name', h('input', { name: 'fullName', required: true, autocomplete: 'name' })),
      field('Username', h('input', { name: 'username', required: true, autocomplete: 'username' }), '3 to 50 letters, digits, dots, dashes or underscores.'),
      field('Email', h('input', { name: 'email', type: 'email', required: true })),
      field('Password', h('input', { name: 'password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }), 'At least 8 characters.'),
    ),
    error,
    h('button', { type: 'submit' }, 'Sign up'),
  )
  onSubmit(form, error, async (data) => {
    const password = form.elements.password.value
    await api(
      'POST',
      '/v1/tenants',
      {
        name: data.name,
        domain: data.domain,
        contactEmail: data.contactEmail,
        plan: data.plan,
        admin: { username: data.username, email: data.email, fullName: data.fullName, password },
      },
      { anonymous: true },
    )
    await login(data.username, password, data.domain)
    navigate('/pocs')
  })
  return h('section', null, h('h1', null, 'Sign up your company'), form, h('p', null, 'Already signed up? ', h('a', { href: '/login' }, 'Log in')))
}
