// Exports of the subject's history (POST/GET /v1/subjects/{id}/exports, GET /v1/exports/{id}):
// request a PDF or a CSV, follow each export's status and progress, then fetch its download link.
//
// Polling reads the list (no links, not an audited read) and only while an export is QUEUED or
// RUNNING. The link is asked for only when the user clicks Download: each GET of a DONE export hands
// out a 10-minute link and is itself an audited read of the subject's data.
import { h, bytes, when } from '../dom.js';
import { api, problemElement } from '../api.js';

const ACTIVE = new Set(['QUEUED', 'RUNNING']);
const FIRST_POLL_MS = 1000;
const MAX_POLL_MS = 5000;

let state = null;

function progressText(e) {
  const { rowsDone, rowsTotal } = e.progress;
  if (e.status === 'QUEUED') return 'Waiting to start';
  if (e.status === 'RUNNING') return rowsTotal ? `${rowsDone} of ${rowsTotal} rows` : `${rowsDone} rows`;
  if (e.status === 'DONE') return `${rowsTotal ?? rowsDone} rows${e.sizeBytes !== undefined ? ` · ${bytes(e.sizeBytes)}` : ''}`;
  return e.reason || 'The export failed.';
}

function downloadCell(e) {
  const cell = h('td', { class: 'download' });
  if (e.status !== 'DONE') return cell;
  // The bucket keeps a file 30 days: past that there is no link to ask for.
  if (e.fileExpiresAt && Date.parse(e.fileExpiresAt) <= Date.now()) {
    cell.append(h('span', { class: 'muted' }, `File deleted ${when(e.fileExpiresAt)} (kept 30 days)`));
    return cell;
  }
  const button = h('button', { type: 'button', class: 'secondary', 'aria-label': `Download the ${e.format.toUpperCase()} of ${when(e.requestedAt)}` }, 'Download');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const full = await api('GET', `/v1/exports/${encodeURIComponent(e.exportId)}`);
      if (!full.download) throw new Error('No download link: the file is no longer kept.');
      const until = new Date(full.download.expiresAt).toLocaleTimeString(undefined, { timeStyle: 'short' });
      const link = h('a', { href: full.download.url, class: 'download-link', rel: 'noopener', download: '' },
        `Save the ${e.format.toUpperCase()}`);
      cell.replaceChildren(link, h('div', { class: 'muted' }, `link valid until ${until}`));
      link.focus();
      // An expired link is taken away: Download asks for a new one (audited again).
      setTimeout(() => { if (cell.isConnected) cell.replaceWith(downloadCell(e)); },
        Math.max(0, Date.parse(full.download.expiresAt) - Date.now()));
    } catch (err) {
      cell.replaceChildren(problemElement(err));
    }
  });
  cell.append(button);
  return cell;
}

function row(e) {
  const bar = e.status === 'RUNNING' && e.progress.rowsTotal
    ? h('progress', { max: e.progress.rowsTotal, value: e.progress.rowsDone, 'aria-label': `Progress of the ${e.format.toUpperCase()} export` })
    : '';
  return h('tr', { 'data-export-id': e.exportId, 'data-status': e.status, 'data-format': e.format },
    h('td', {}, e.format.toUpperCase()),
    h('td', {}, h('span', { class: `status ${e.status}` }, e.status), h('div', { class: 'muted progress-text' }, progressText(e)), bar),
    h('td', {}, when(e.requestedAt)),
    downloadCell(e));
}

function draw(list) {
  const { body } = state;
  // A row whose status has not changed keeps its element (and a link the user already fetched).
  const old = new Map([...body.querySelectorAll('tr[data-export-id]')].map((tr) => [tr.dataset.exportId, tr]));
  const rows = list.exports.map((e) => {
    const tr = old.get(e.exportId);
    if (tr && tr.dataset.status === e.status && !ACTIVE.has(e.status)) return tr;
    return row(e);
  });
  if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No exports yet.')));
  body.replaceChildren(...rows);
}

// One polling chain per rendered panel: a load started for a panel that has since been replaced
// (another subject, a re-render) or removed stops there.
async function load(ctx) {
  const mine = state;
  clearTimeout(mine.timer);
  mine.timer = null;
  try {
    const list = await api('GET', `/v1/subjects/${encodeURIComponent(ctx.subjectId)}/exports`);
    if (mine !== state || !mine.section.isConnected) return;
    draw(list);
    mine.status.replaceChildren();
    clearTimeout(mine.timer);
    if (list.exports.some((e) => ACTIVE.has(e.status))) {
      mine.timer = setTimeout(() => load(ctx), mine.delay);
      mine.delay = Math.min(MAX_POLL_MS, mine.delay * 1.5);
    } else {
      mine.timer = null;
      mine.delay = FIRST_POLL_MS;
    }
  } catch (err) {
    if (mine === state) mine.status.replaceChildren(problemElement(err));
  }
}

async function request(ctx, format, button) {
  button.disabled = true;
  state.status.replaceChildren(h('p', { class: 'muted' }, `Asking for the ${format.toUpperCase()}…`));
  try {
    await api('POST', `/v1/subjects/${encodeURIComponent(ctx.subjectId)}/exports`, { format });
    state.delay = FIRST_POLL_MS;
    await load(ctx);
  } catch (err) {
    state.status.replaceChildren(problemElement(err));
  } finally {
    button.disabled = false;
  }
}

export const exportsPanel = {
  column: 'right',
  render(ctx) {
    if (state?.timer) clearTimeout(state.timer);
    const body = h('tbody', {});
    const status = h('div', { 'aria-live': 'polite', id: 'exports-status' });
    const pdf = h('button', { type: 'button', id: 'export-pdf' }, 'Export PDF');
    const csv = h('button', { type: 'button', id: 'export-csv', class: 'secondary' }, 'Export CSV');
    pdf.addEventListener('click', () => request(ctx, 'pdf', pdf));
    csv.addEventListener('click', () => request(ctx, 'csv', csv));
    const section = h('section', { class: 'card', id: 'exports-panel', 'aria-labelledby': 'exports-h' },
      h('h2', { id: 'exports-h' }, 'Exports'),
      h('p', { class: 'muted' }, 'The subject\'s whole history as a PDF report or a CSV, built in the background. Each request and each download link is recorded in the audit trail.'),
      h('div', { class: 'picker start' }, pdf, csv),
      status,
      h('div', { class: 'table-wrap', 'aria-live': 'polite' }, h('table', { id: 'exports-table' },
        h('caption', { class: 'visually-hidden' }, 'The subject\'s exports, newest first'),
        h('thead', {}, h('tr', {}, h('th', {}, 'Format'), h('th', {}, 'Status'), h('th', {}, 'Requested'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Download')))),
        body)));
    state = { subjectId: ctx.subjectId, body, status, section, timer: null, delay: FIRST_POLL_MS };
    load(ctx);
    return section;
  },
};
