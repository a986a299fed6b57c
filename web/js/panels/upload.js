// Upload panel: drop files or a folder (or pick them); each file is hashed, sent and followed to
// its outcome, two files at a time. Site staff only (monitors and sponsor admins read).
import { h, bytes } from '../dom.js';
import { api, problemElement } from '../api.js';
import { Upload, pendingUploads, dropPending, plainReason } from '../uploader.js';

const FILES_AT_ONCE = 2;

/** Files of a drop, folders walked (hidden files and DICOMDIR indexes left out). */
async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files];
  const out = [];
  const walk = async (entry) => {
    if (entry.isFile) {
      out.push(await new Promise((res, rej) => entry.file(res, rej)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}

const wanted = (f) => !f.name.startsWith('.') && f.name.toUpperCase() !== 'DICOMDIR' && f.size > 0;

function meter(label, id) {
  const bar = h('progress', { id, max: 100, value: 0, 'aria-label': label });
  const pct = h('span', { class: 'pct' }, '0 %');
  return { row: h('div', { class: 'meter' }, h('span', {}, label), bar, pct), bar, pct };
}

function item(file, subjectId, onDone) {
  const badge = h('span', { class: 'status HASHING' }, 'HASHING');
  const phase = h('span', { class: 'muted phase' }, 'Waiting');
  const hashing = meter('Fingerprint', undefined);
  const sending = meter('Sending', undefined);
  const reason = h('p', { class: 'reason', 'aria-live': 'polite' });
  const cancel = h('button', { type: 'button', class: 'danger cancel' }, 'Cancel');
  const li = h('li', { class: 'upload', 'data-file': file.name },
    h('div', { class: 'row' }, h('span', { class: 'name' }, file.name), h('span', { class: 'muted' }, bytes(file.size)), h('span', { class: 'spacer' }), badge, cancel),
    phase, hashing.row, sending.row, reason);
  const set = (m, done, total) => {
    const p = total ? Math.floor((done / total) * 100) : 100;
    m.bar.value = p; m.pct.textContent = `${p} %`;
  };
  const setBadge = (s) => { badge.textContent = s.replace('_', ' '); badge.className = `status ${s}`; li.dataset.status = s; };
  const ui = {
    phase: (name, text) => { setBadge(name); phase.textContent = text; },
    hashProgress: (d, t) => set(hashing, d, t),
    sendProgress: (d, t) => set(sending, d, t),
    declared: (rec) => { li.dataset.uploadId = rec.uploadId; },
    resumed: ({ held, partCount }) => { li.dataset.resumed = 'true'; phase.textContent = `Resuming: ${held} of ${partCount} parts already stored`; },
    partDone: (done, total) => { li.dataset.partsDone = String(done); phase.textContent = `Sent ${done} of ${total} parts`; },
    status: (rec) => {
      setBadge(rec.status);
      phase.textContent = { AWAITING_UPLOAD: 'Waiting for the bytes', RECEIVED: 'Received', PROCESSING: 'Checking the file', PROCESSED: 'Done', QUARANTINED: 'Held back', FAILED: 'Failed', ABORTED: 'Cancelled' }[rec.status] || rec.status;
      reason.textContent = plainReason(rec);
      if (['PROCESSED', 'QUARANTINED', 'FAILED', 'ABORTED'].includes(rec.status)) cancel.remove();
    },
    error: (err) => { setBadge('ERROR'); phase.textContent = ''; reason.replaceChildren(problemElement(err)); cancel.remove(); },
  };
  const upload = new Upload(file, subjectId, ui);
  cancel.addEventListener('click', () => { cancel.disabled = true; upload.cancel(); });
  const run = async () => {
    try { await upload.run(); } catch (e) { ui.error(e); }
    onDone();
  };
  return { li, run };
}

function resumeList(subjectId) {
  const pending = pendingUploads(subjectId);
  if (!pending.length) return null;
  const list = h('ul', {});
  for (const p of pending) {
    const discard = h('button', { type: 'button', class: 'link' }, 'Discard');
    const li = h('li', { 'data-upload-id': p.uploadId }, h('strong', {}, p.fileName), ` (${bytes(p.sizeBytes)}, started ${new Date(p.createdAt).toLocaleString()}) `, discard);
    discard.addEventListener('click', async () => {
      discard.disabled = true;
      try { await api('DELETE', `/v1/uploads/${p.uploadId}`); } catch (e) { if (e.status !== 404 && e.status !== 409) { li.append(problemElement(e)); return; } }
      dropPending(p.uploadId);
      li.remove();
    });
    list.append(li);
  }
  return h('div', { class: 'resume', id: 'resume', role: 'status' },
    h('strong', {}, 'Unfinished uploads'), h('p', { class: 'muted' }, 'Choose or drop the same file again to resume it: only the parts not yet stored are sent.'), list);
}

export const uploadPanel = {
  column: 'left',
  visible: (ctx) => ctx.session?.role === 'site_staff',
  render(ctx) {
    const queue = h('ul', { class: 'queue', id: 'queue', 'aria-label': 'Uploads in progress' });
    const files = h('input', { type: 'file', id: 'file-input', multiple: true, class: 'visually-hidden', accept: '.dcm,application/dicom,*/*' });
    const folder = h('input', { type: 'file', id: 'folder-input', multiple: true, class: 'visually-hidden', webkitdirectory: true });
    const drop = h('div', { class: 'drop', id: 'drop' },
      h('p', {}, h('strong', {}, 'Drop DICOM files or a folder here')),
      h('p', { class: 'muted' }, 'Each file is fingerprinted (SHA-256) on this computer, sent, then checked for malware and read.'),
      h('div', { class: 'picker' },
        h('label', { for: 'file-input', class: 'button', tabindex: 0, role: 'button' }, 'Choose files'),
        h('label', { for: 'folder-input', class: 'button secondary-label', tabindex: 0, role: 'button' }, 'Choose a folder')),
      files, folder);
    let waiting = [];
    let running = 0;
    const pump = () => {
      while (running < FILES_AT_ONCE && waiting.length) {
        const next = waiting.shift();
        running++;
        next.run();
      }
    };
    const add = (list) => {
      for (const f of list.filter(wanted)) {
        const it = item(f, ctx.subjectId, () => { running--; pump(); ctx.refresh(); resume.replaceChildren(resumeList(ctx.subjectId) || ''); });
        queue.prepend(it.li);
        waiting.push(it);
      }
      pump();
    };
    files.addEventListener('change', () => { add([...files.files]); files.value = ''; });
    folder.addEventListener('change', () => { add([...folder.files]); folder.value = ''; });
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', async (e) => { e.preventDefault(); drop.classList.remove('over'); add(await droppedFiles(e.dataTransfer)); });
    for (const label of drop.querySelectorAll('label[role=button]')) {
      label.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); label.click(); } });
    }
    const resume = h('div', {}, resumeList(ctx.subjectId) || '');
    window.addEventListener('beforeunload', (e) => { if (running) { e.preventDefault(); } });
    return h('section', { class: 'card', id: 'upload-panel', 'aria-labelledby': 'upload-h' }, h('h2', { id: 'upload-h' }, 'Upload scans'), drop, resume, queue);
  },
};
