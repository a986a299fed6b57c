// The subject's imaging summary and studies (GET /v1/subjects/{id}/imaging).
import { h, when } from '../dom.js';
import { api, problemElement } from '../api.js';

let box = null;

function da(v) { return v && /^\d{8}$/.test(v) ? `${v.slice(0, 4)}-${v.slice(4, 6)}-${v.slice(6)}` : (v || '—'); }

function draw(imaging) {
  const s = imaging.summary;
  const count = (label, v, id) => h('div', {}, h('dt', {}, label), h('dd', { id }, String(v)));
  const studies = h('tbody', {});
  for (const st of imaging.studies) {
    studies.append(h('tr', {},
      h('td', {}, da(st.studyDate)), h('td', {}, st.modalities.join(', ')),
      h('td', { class: 'num' }, String(st.seriesCount)), h('td', { class: 'num' }, String(st.instanceCount)),
      h('td', {}, when(st.lastReceivedAt))));
  }
  if (!imaging.studies.length) studies.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No accepted images yet.')));
  box.replaceChildren(
    h('dl', { class: 'counts' },
      count('Studies', s.studies, 'count-studies'), count('Series', s.series, 'count-series'),
      count('Images', s.instances, 'count-instances'), count('Quarantined', s.quarantined, 'count-quarantined'),
      count('In progress', Math.max(0, s.pending), 'count-pending')),
    h('p', { class: 'muted' }, `Last study: ${da(s.lastStudyDate)} · by modality: ${Object.entries(s.instancesByModality).map(([k, v]) => `${k} ${v}`).join(', ') || '—'}`),
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Study date'), h('th', {}, 'Modality'), h('th', { class: 'num' }, 'Series'), h('th', { class: 'num' }, 'Images'), h('th', {}, 'Last received'))), studies)));
}

export const imagingPanel = {
  column: 'right',
  render(ctx) {
    box = h('div', { 'aria-live': 'polite' });
    draw(ctx.imaging);
    return h('section', { class: 'card', id: 'imaging-panel', 'aria-labelledby': 'imaging-h' }, h('h2', { id: 'imaging-h' }, 'Imaging'), box);
  },
  async refresh(ctx) {
    clearTimeout(again);
    tries = 0;
    await poll(ctx, box);
  },
};

// The summary is kept by its own consumer, a moment behind the upload's record: while it still
// counts uploads in progress, or fewer images than the studies list, it is read again (every 2 s,
// for a minute at most), so the page settles on what the pipeline settled on.
let again = null;
let tries = 0;
async function poll(ctx, target) {
  let imaging;
  try {
    imaging = await api('GET', `/v1/subjects/${encodeURIComponent(ctx.subjectId)}/imaging`);
  } catch (err) {
    if (target === box) box.replaceChildren(problemElement(err));
    return;
  }
  // Another subject opened meanwhile: its panel is not this one's to draw.
  if (target !== box) return;
  draw(imaging);
  const listed = imaging.studies.reduce((n, st) => n + st.instanceCount, 0);
  const behind = imaging.summary.pending > 0 || imaging.summary.instances < listed;
  if (behind && ++tries <= 30 && box.isConnected) again = setTimeout(() => poll(ctx, target), 2000);
}
