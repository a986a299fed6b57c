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
    try { draw(await api('GET', `/v1/subjects/${encodeURIComponent(ctx.subjectId)}/imaging`)); } catch (err) { box.replaceChildren(problemElement(err)); }
  },
};
