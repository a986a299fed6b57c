// The subject's uploads (GET /v1/uploads?subjectId=), newest first, a page at a time.
import { h, bytes, when } from '../dom.js';
import { api, problemElement } from '../api.js';
import { plainReason } from '../uploader.js';

let body = null;
let more = null;

async function load(ctx, cursor) {
  const q = new URLSearchParams({ subjectId: ctx.subjectId, limit: '20' });
  if (cursor) q.set('cursor', cursor);
  try {
    const page = await api('GET', `/v1/uploads?${q}`);
    if (!cursor) body.replaceChildren();
    for (const u of page.items) {
      body.append(h('tr', { 'data-upload-id': u.uploadId, 'data-status': u.status },
        h('td', {}, u.fileName ?? h('span', { class: 'muted' }, 'hidden')),
        h('td', {}, h('span', { class: `status ${u.status}` }, u.status.replace('_', ' ')), h('div', { class: 'muted' }, plainReason(u))),
        h('td', { class: 'num' }, bytes(u.sizeBytes)),
        h('td', {}, when(u.createdAt))));
    }
    if (!page.items.length && !cursor) body.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No uploads yet.')));
    more.hidden = !page.nextCursor;
    more.onclick = () => load(ctx, page.nextCursor);
  } catch (err) {
    body.replaceChildren(h('tr', {}, h('td', { colspan: 4 }, problemElement(err))));
  }
}

export const historyPanel = {
  column: 'left',
  render(ctx) {
    body = h('tbody', {});
    more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older uploads');
    const refresh = h('button', { type: 'button', class: 'link', onclick: () => load(ctx) }, 'Refresh');
    load(ctx);
    return h('section', { class: 'card', id: 'history-panel', 'aria-labelledby': 'history-h' },
      h('div', { class: 'row' }, h('h2', { id: 'history-h' }, 'Uploads'), h('span', { class: 'spacer' }), refresh),
      h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'File'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Size'), h('th', {}, 'Started'))), body)),
      more);
  },
  refresh(ctx) { if (body) load(ctx); },
};
