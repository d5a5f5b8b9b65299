// Reports (request, progress, download) and the yearly video (request, progress, preview,
// download). Jobs are polled until they finish.
import { api, me, query as qs } from '../api.js'
import { errorBox, field, h, onSubmit, poller, replace, select, when } from '../dom.js'
import { languageList } from './pocs.js'

const POLL_MS = 1000

function progress(label, job) {
  return h(
    'div',
    { class: 'progress' },
    h('progress', { max: 100, value: job.progress, 'aria-label': `${label} progress` }),
    h('span', null, `${job.status} · ${job.progress}%`),
  )
}

/** One job's card: what it is, its progress or error, and what it produced once done. */
function jobCard(label, job, result) {
  return h(
    'li',
    { class: 'card' },
    h('h3', null, label),
    h('p', { class: 'meta' }, `requested ${when(job.createdAt)}${job.pocCount != null ? ` · ${job.pocCount} POCs` : ''}`),
    progress(label, job),
    job.error ? h('p', { class: 'error' }, job.error) : null,
    job.downloadUrl ? result : null,
  )
}

function reportRow(report) {
  const label = `${report.reportType} report (${report.format}), ${report.startDate} to ${report.endDate}`
  return jobCard(label, report, h('a', { href: report.downloadUrl, download: `report.${report.format}`, class: 'button' }, `Download ${label}`))
}

function videoRow(video) {
  const label = `${video.year} video (${video.template})`
  return jobCard(
    label,
    video,
    h(
      'div',
      null,
      h('video', { controls: true, preload: 'metadata', src: video.downloadUrl, poster: video.thumbnailUrl, 'aria-label': `Preview of the ${label}`, width: 480 }),
      h('p', null, h('a', { href: video.downloadUrl, download: `pocdojo-${video.year}.mp4`, class: 'button' }, `Download ${label}`)),
    ),
  )
}

export async function reportsScreen({ onLeave }) {
  const langs = await languageList()
  const today = new Date().toISOString().slice(0, 10)
  const yearStart = `${today.slice(0, 4)}-01-01`
  const reports = h('ul', { class: 'cards', 'aria-label': 'Reports' })
  const videos = h('ul', { class: 'cards', 'aria-label': 'Videos' })
  const refresh = poller(onLeave, POLL_MS, async () => {
    const [r, v] = await Promise.all([api('GET', `/v1/reports${qs({ limit: 10 })}`), api('GET', `/v1/videos${qs({ limit: 10 })}`)])
    replace(reports, r.reports.length ? r.reports.map(reportRow) : h('li', null, 'No reports yet.'))
    replace(videos, v.videos.length ? v.videos.map(videoRow) : h('li', null, 'No videos yet.'))
    return [...r.reports, ...v.videos].some((job) => job.status === 'queued' || job.status === 'processing')
  })

  const reportError = errorBox()
  const reportForm = h(
    'form',
    { class: 'card', 'aria-label': 'Request a report' },
    field('Report type', select({ name: 'reportType' }, [['summary', 'Summary'], ['detailed', 'Detailed'], ['analytics', 'Analytics'], ['usage', 'Usage']], 'summary')),
    field('Format', select({ name: 'format' }, [['pdf', 'PDF'], ['xlsx', 'Excel (xlsx)'], ['csv', 'CSV'], ['json', 'JSON']], 'pdf')),
    field('From', h('input', { name: 'startDate', type: 'date', value: yearStart, required: true })),
    field('To', h('input', { name: 'endDate', type: 'date', value: today, required: true })),
    field('Only language', select({ name: 'language' }, [['', 'Any language'], ...langs], '')),
    reportError,
    h('button', { type: 'submit' }, 'Request report'),
  )
  onSubmit(reportForm, reportError, async (data) => {
    await api('POST', '/v1/reports/generate', {
      reportType: data.reportType,
      format: data.format,
      dateRange: { startDate: data.startDate, endDate: data.endDate },
      filters: data.language ? { language: data.language } : {},
    })
    await refresh()
  })

  const videoError = errorBox()
  const videoForm = h(
    'form',
    { class: 'card', 'aria-label': 'Request a yearly video' },
    field('Year', h('input', { name: 'year', type: 'number', min: 2000, max: 2100, value: today.slice(0, 4), required: true })),
    field('Template', select({ name: 'template' }, [['default', 'Dark'], ['minimal', 'Light']], 'default')),
    h('div', { class: 'field check' }, h('input', { type: 'checkbox', name: 'includeMetrics', id: 'include-metrics', checked: true }), h('label', { for: 'include-metrics' }, 'Include metrics')),
    videoError,
    h('button', { type: 'submit' }, 'Request video'),
  )
  onSubmit(videoForm, videoError, async (data) => {
    await api('POST', '/v1/videos/generate-yearly', { userId: me().userId, year: Number(data.year), template: data.template, includeMetrics: data.includeMetrics })
    await refresh()
  })

  await refresh()
  return h(
    'section',
    null,
    h('h1', null, 'Reports and videos'),
    h('div', { class: 'columns' }, h('section', { 'aria-labelledby': 'reports-h' }, h('h2', { id: 'reports-h' }, 'Reports'), reportForm, reports), h('section', { 'aria-labelledby': 'videos-h' }, h('h2', { id: 'videos-h' }, 'Yearly video'), videoForm, videos)),
  )
}
