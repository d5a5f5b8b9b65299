// Builds the app into ../pocdojo/web/static: hashed assets under assets/ and an index.html
// naming them. The output depends only on the sources and the pinned packages (no
// timestamps, files written in sorted order), so a rebuild is byte-for-byte identical.
import { build } from 'esbuild'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, '..', 'pocdojo', 'web', 'static')
const assets = join(out, 'assets')

rmSync(out, { recursive: true, force: true })
mkdirSync(assets, { recursive: true })

const result = await build({
  absWorkingDir: here,
  entryPoints: ['src/main.js'],
  bundle: true,
  splitting: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  legalComments: 'none',
  charset: 'utf8',
  outdir: assets,
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  write: false,
  logLevel: 'warning',
})

const files = [...result.outputFiles].sort((a, b) => (a.path < b.path ? -1 : 1))
for (const file of files) writeFileSync(file.path, file.contents)

const outputs = result.metafile.outputs
const entry = Object.keys(outputs).find((name) => outputs[name].entryPoint === 'src/main.js')
const script = basename(entry)
const style = outputs[entry].cssBundle ? basename(outputs[entry].cssBundle) : null

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pocdojo</title>
${style ? `<link rel="stylesheet" href="/assets/${style}">\n` : ''}<script type="module" src="/assets/${script}"></script>
</head>
<body>
<noscript>pocdojo needs JavaScript.</noscript>
</body>
</html>
`
writeFileSync(join(out, 'index.html'), html)
console.log(`built ${files.length} assets; entry ${script}${style ? `, ${style}` : ''}`)
