// The ePRO pain chart (GET /v1/subjects/{id}/epro, every page of the last 90 days): the mean pain
// per UTC day as an inline SVG line (no chart library), with a <title>/<desc> and the same numbers
// as a table for screen readers and for anyone who prefers them. Reading the diary is audited: it is
// read when the subject opens and on refresh, never polled.
import { h } from '../dom.js';
import { api, problemElement } from '../api.js';

const DAYS = 90;
const PAGE = 500;
const MAX_PAGES = 20;
const SVG = 'http://www.w3.org/2000/svg';

let panelBox = null;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Entries → [{ day: 'YYYY-MM-DD', mean, min, max, entries }] by UTC day, oldest first. */
export function perDay(entries) {
  const days = new Map();
  for (const e of entries) {
    const day = new Date(e.recordedAt).toISOString().slice(0, 10);
    const d = days.get(day) || { day, sum: 0, entries: 0, min: 10, max: 0 };
    d.sum += e.painScore; d.entries += 1;
    d.min = Math.min(d.min, e.painScore); d.max = Math.max(d.max, e.painScore);
    days.set(day, d);
  }
  return [...days.values()].sort((a, b) => a.day.localeCompare(b.day))
    .map((d) => ({ day: d.day, mean: d.sum / d.entries, min: d.min, max: d.max, entries: d.entries }));
}

function chart(points, subjectId) {
  const W = 640; const H = 220; const L = 36; const R = 12; const T = 12; const B = 34;
  const t0 = Date.parse(points[0].day); const t1 = Date.parse(points[points.length - 1].day);
  const span = Math.max(t1 - t0, 86_400_000);
  const x = (day) => L + ((Date.parse(day) - t0) / span) * (W - L - R);
  const y = (pain) => T + (1 - pain / 10) * (H - T - B);
  const first = points[0]; const last = points[points.length - 1];
  const svg = s('svg', { id: 'pain-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'pain-title', 'aria-describedby': 'pain-desc', class: 'chart', preserveAspectRatio: 'xMidYMid meet' },
    s('title', { id: 'pain-title' }, `Pain per day, subject ${subjectId}`),
    s('desc', { id: 'pain-desc' }, `Mean pain score (0 to 10) on ${points.length} diary days from ${first.day} to ${last.day}: ${num(first.mean)} on the first, ${num(last.mean)} on the last, highest ${Math.max(...points.map((p) => p.max))}. The table below lists every day.`));
  for (const v of [0, 2, 4, 6, 8, 10]) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid-line' }));
    svg.append(s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, v));
  }
  svg.append(s('text', { x: L, y: H - 8, class: 'axis' }, first.day));
  if (points.length > 1) svg.append(s('text', { x: W - R, y: H - 8, 'text-anchor': 'end', class: 'axis' }, last.day));
  svg.append(s('polyline', { class: 'pain-line', fill: 'none', points: points.map((p) => `${x(p.day).toFixed(1)},${y(p.mean).toFixed(1)}`).join(' ') }));
  for (const p of points) {
    svg.append(s('circle', { class: 'pain-point', cx: x(p.day).toFixed(1), cy: y(p.mean).toFixed(1), r: 4, 'data-day': p.day, 'data-pain': num(p.mean) },
      s('title', {}, `${p.day}: pain ${num(p.mean)}${p.entries > 1 ? ` (mean of ${p.entries}, ${p.min}–${p.max})` : ''}`)));
  }
  return svg;
}

function num(v) { return Number.isInteger(v) ? String(v) : v.toFixed(1); }

function table(points) {
  const body = h('tbody', {});
  for (const p of [...points].reverse()) {
    body.append(h('tr', { 'data-day': p.day }, h('td', {}, p.day), h('td', { class: 'num' }, num(p.mean)),
      h('td', { class: 'num' }, p.entries > 1 ? `${p.min}–${p.max}` : String(p.min)), h('td', { class: 'num' }, String(p.entries))));
  }
  return h('details', { class: 'chart-table' }, h('summary', {}, 'The numbers, day by day'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'pain-table' },
      h('caption', { class: 'visually-hidden' }, 'Pain per diary day, newest first'),
      h('thead', {}, h('tr', {}, h('th', {}, 'Day (UTC)'), h('th', { class: 'num' }, 'Mean pain'), h('th', { class: 'num' }, 'Range'), h('th', { class: 'num' }, 'Entries'))),
      body)));
}

// Each load writes into the panel it was started for (a panel replaced meanwhile is detached).
async function load(ctx) {
  const box = panelBox;
  box.setAttribute('aria-busy', 'true');
  try {
    const since = new Date(Date.now() - DAYS * 86_400_000).toISOString();
    const entries = [];
    let cursor = null;
    let pages = 0;
    do {
      const q = new URLSearchParams({ since, limit: String(PAGE) });
      if (cursor) q.set('cursor', cursor);
      const page = await api('GET', `/v1/subjects/${encodeURIComponent(ctx.subjectId)}/epro?${q}`);
      entries.push(...page.entries);
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor && pages < MAX_PAGES);
    const points = perDay(entries);
    if (!points.length) {
      box.replaceChildren(h('p', { class: 'muted', id: 'pain-empty' }, `No diary entries in the last ${DAYS} days.`));
      return;
    }
    box.replaceChildren(
      chart(points, ctx.subjectId),
      h('p', { class: 'muted' }, `${entries.length} entries on ${points.length} days in the last ${DAYS} days${cursor ? ' (the oldest not shown)' : ''}; a point is the day's mean (UTC days).`),
      table(points));
  } catch (err) {
    box.replaceChildren(problemElement(err));
  } finally {
    box.removeAttribute('aria-busy');
  }
}

export const eproPanel = {
  column: 'left',
  render(ctx) {
    const box = h('div', { id: 'pain-body', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading the diary…'));
    panelBox = box;
    const refresh = h('button', { type: 'button', class: 'link', onclick: () => load(ctx) }, 'Refresh diary');
    load(ctx);
    return h('section', { class: 'card', id: 'pain-panel', 'aria-labelledby': 'pain-h' },
      h('div', { class: 'row' }, h('h2', { id: 'pain-h' }, 'ePRO pain'), h('span', { class: 'spacer' }), refresh), box);
  },
};
