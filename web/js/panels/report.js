// The subject's risk report (GET /v1/subjects/{id}/report): level, score and the reasons with
// their points; a section the report could not read is marked with why, and the score is then a
// lower bound (risk.complete false). Every report answered is an audited read: it is asked for when
// the subject opens and when the user refreshes, never polled.
import { h, when } from '../dom.js';
import { api, problemElement } from '../api.js';

const SECTIONS = { edc: 'EDC forms', epro: 'ePRO diary', imaging: 'Imaging' };
const WHY = {
  timeout: 'it did not answer in time',
  unavailable: 'it failed or answered outside its contract',
  circuit_open: 'it kept failing, so it was not asked this time',
};

let panelBox = null;

function n(count, one, many = `${one}s`) { return `${count} ${count === 1 ? one : many}`; }

function num(v, digits = 1) { return v === null || v === undefined ? '—' : Number(v).toFixed(digits); }

function sectionSummary(key, s) {
  if (!s || s.available === false) {
    return h('li', { class: 'degraded', 'data-section': key, 'data-available': 'false' },
      h('strong', {}, `${SECTIONS[key]}: not available`), ` — ${WHY[s?.reason] || 'unknown reason'} (${s?.reason || '?'}).`);
  }
  let text = '';
  if (key === 'edc') {
    const serious = s.adverseEvents.filter((a) => a.serious).length;
    const flagged = s.labs.filter((l) => l.flag).length;
    text = `${n(s.adverseEvents.length, 'adverse event')} (${serious} serious) · ${n(s.labs.length, 'lab result')} (${flagged} out of range) · ${n(s.vitalSigns.length, 'vital signs record')} · ${n(s.medications.length, 'medication')}`;
  } else if (key === 'epro') {
    text = `${s.daysWithCompletedDiary} of ${s.daysAssessed} days with a completed diary (${s.from || '—'} to ${s.to || '—'}) · mean pain last 7 days ${num(s.painMeanLast7Days)}, the 7 before ${num(s.painMeanPrevious7Days)}`;
  } else {
    text = `${n(s.studies, 'study', 'studies')} · ${n(s.instances, 'image')} · ${s.pending} in progress · ${s.quarantined} quarantined · ${s.failed} failed`;
  }
  return h('li', { 'data-section': key, 'data-available': 'true' }, h('strong', {}, `${SECTIONS[key]}: `), text);
}

function draw(box, r) {
  const risk = r.risk;
  const reasons = h('tbody', {});
  for (const reason of risk.reasons) {
    reasons.append(h('tr', { class: 'reason-row', 'data-code': reason.code },
      h('td', {}, reason.text), h('td', { class: 'num' }, `+${reason.points}`)));
  }
  if (!risk.reasons.length) reasons.append(h('tr', {}, h('td', { colspan: 2, class: 'muted' }, 'Nothing adds to the score.')));
  const d = r.demographics;
  box.replaceChildren(
    h('div', { class: 'risk-head' },
      h('span', { id: 'risk-level', class: `level ${risk.level}`, 'data-level': risk.level }, risk.level),
      h('span', {}, 'Score ', h('strong', { id: 'risk-score' }, String(risk.score)), risk.complete ? '' : ' or more')),
    risk.complete ? '' : h('p', { class: 'lower-bound', id: 'risk-lower-bound', role: 'note' },
      h('strong', {}, 'Lower bound. '),
      `Not assessed: ${risk.unassessed.map((k) => SECTIONS[k] || k).join(', ')}. The score covers only what arrived; the real score may be higher.`),
    h('div', { class: 'table-wrap' }, h('table', { id: 'risk-reasons' },
      h('caption', { class: 'visually-hidden' }, 'Reasons for the risk score, highest points first'),
      h('thead', {}, h('tr', {}, h('th', {}, 'Reason'), h('th', { class: 'num' }, 'Points'))), reasons)),
    h('ul', { class: 'sections', id: 'report-sections' }, Object.keys(SECTIONS).map((k) => sectionSummary(k, r[k]))),
    h('p', { class: 'muted' },
      `Subject key ${d.subjectKey} · ${{ F: 'female', M: 'male', U: 'sex unknown' }[d.sex]} · ${d.ageYears}+ years · enrolled ${d.enrolledOn} · ${d.status.toLowerCase()} · report of ${when(r.generatedAt)}`));
  box.dataset.degraded = String(r.degraded);
}

// Each load writes into the panel it was started for (a panel replaced meanwhile is detached).
async function load(ctx) {
  const box = panelBox;
  box.setAttribute('aria-busy', 'true');
  try {
    draw(box, await api('GET', `/v1/subjects/${encodeURIComponent(ctx.subjectId)}/report`));
  } catch (err) {
    box.replaceChildren(problemElement(err));
  } finally {
    box.removeAttribute('aria-busy');
  }
}

export const reportPanel = {
  column: 'left',
  render(ctx) {
    const box = h('div', { id: 'report-body', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading the report…'));
    panelBox = box;
    const refresh = h('button', { type: 'button', class: 'link', onclick: () => load(ctx) }, 'Refresh report');
    load(ctx);
    return h('section', { class: 'card', id: 'report-panel', 'aria-labelledby': 'report-h' },
      h('div', { class: 'row' }, h('h2', { id: 'report-h' }, 'Risk report'), h('span', { class: 'spacer' }), refresh), box);
  },
};
