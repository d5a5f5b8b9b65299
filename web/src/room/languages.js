// The editor's syntax mode from the POC's language; plain text for the others.
import { css } from '@codemirror/lang-css'
import { go } from '@codemirror/lang-go'
import { html } from '@codemirror/lang-html'
import { java } from '@codemirror/lang-java'
import { javascript } from '@codemirror/lang-javascript'
import { markdown } from '@codemirror/lang-markdown'
import { python } from '@codemirror/lang-python'
import { rust } from '@codemirror/lang-rust'
import { sql } from '@codemirror/lang-sql'

const MODES = {
  python: () => python(),
  javascript: () => javascript(),
  typescript: () => javascript({ typescript: true }),
  java: () => java(),
  go: () => go(),
  rust: () => rust(),
  sql: () => sql(),
  html: () => html(),
  css: () => css(),
  markdown: () => markdown(),
}

/** The CodeMirror language extension for `language` (any case), or [] for plain text. */
export function languageMode(language) {
  const make = MODES[(language || '').toLowerCase()]
  return make ? make() : []
}

/** Whether `language` gets syntax highlighting. */
export function highlighted(language) {
  return Boolean(MODES[(language || '').toLowerCase()])
}
