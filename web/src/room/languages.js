// The editor's syntax mode from the POC's language; plain text for the others. Each mode is
// its own chunk, loaded when a room needs it.

const MODES = {
  python: () => import('@codemirror/lang-python').then((m) => m.python()),
  javascript: () => import('@codemirror/lang-javascript').then((m) => m.javascript()),
  typescript: () => import('@codemirror/lang-javascript').then((m) => m.javascript({ typescript: true })),
  java: () => import('@codemirror/lang-java').then((m) => m.java()),
  go: () => import('@codemirror/lang-go').then((m) => m.go()),
  rust: () => import('@codemirror/lang-rust').then((m) => m.rust()),
  sql: () => import('@codemirror/lang-sql').then((m) => m.sql()),
  html: () => import('@codemirror/lang-html').then((m) => m.html()),
  css: () => import('@codemirror/lang-css').then((m) => m.css()),
  markdown: () => import('@codemirror/lang-markdown').then((m) => m.markdown()),
}

/** The CodeMirror language extension for `language` (any case); [] (plain text) otherwise. */
export async function loadLanguage(language) {
  const load = MODES[(language || '').toLowerCase()]
  return load ? load() : []
}

/** Whether `language` gets syntax highlighting. */
export function highlighted(language) {
  return Boolean(MODES[(language || '').toLowerCase()])
}
