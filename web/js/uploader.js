// One file's upload: hash (Web Worker) → declare (POST /v1/uploads) → send (single PUT, or the
// multipart plan's parts with bounded concurrency and per-part retries) → complete → follow the
// status to PROCESSED or QUARANTINED. A multipart upload's id is kept in localStorage (not a
// secret: useless without a token) so that after a reload, choosing the same file again resumes it:
// the file is hashed again, matched by subject, size and SHA-256, and only the parts storage does
// not hold (GET /v1/uploads/{id}/parts) are sent.
import { api, apiBase, ApiError } from './api.js';

export const PART_CONCURRENCY = 3;
const RETRIES = 5;
const PENDING = 'clinflow.pending-uploads';

// ---------------------------------------------------------------- pending multipart uploads

export function pendingUploads(subjectId) {
  let all = [];
  try { all = JSON.parse(localStorage.getItem(PENDING) || '[]'); } catch { all = []; }
  return subjectId ? all.filter((p) => p.subjectId === subjectId) : all;
}
function savePending(entry) {
  const all = pendingUploads().filter((p) => p.uploadId !== entry.uploadId);
  all.push(entry);
  localStorage.setItem(PENDING, JSON.stringify(all));
}
export function dropPending(uploadId) {
  localStorage.setItem(PENDING, JSON.stringify(pendingUploads().filter((p) => p.uploadId !== uploadId)));
}

// ---------------------------------------------------------------- hashing

let worker = null;
let nextJob = 0;
const jobs = new Map();
function hashWorker() {
  if (!worker) {
    worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    worker.onmessage = ({ data }) => {
      const job = jobs.get(data.id);
      if (!job) return;
      if (data.error) { jobs.delete(data.id); job.reject(new ApiError(0, 'Could not read the file', data.error)); return; }
      job.progress(data.progress);
      if (data.sha256) { jobs.delete(data.id); job.resolve(data.sha256); }
    };
  }
  return worker;
}
export function sha256(file, progress) {
  return new Promise((resolve, reject) => {
    const id = ++nextJob;
    jobs.set(id, { resolve, reject, progress });
    hashWorker().postMessage({ id, file });
  });
}

// ---------------------------------------------------------------- sending

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); reject(new DOMException('aborted', 'AbortError')); }, { once: true });
});

/** PUTs a body to a presigned request with exactly its signed headers; resolves with the ETag. */
function put(request, body, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(request.method || 'PUT', request.url);
    for (const [k, v] of Object.entries(request.headers || {})) {
      // The browser sets Content-Length (and Host) itself.
      if (!['content-length', 'host'].includes(k.toLowerCase())) xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) { resolve(xhr.getResponseHeader('ETag')); return; }
      // S3 answers XML: <Error><Code>…</Code><Message>…</Message></Error>.
      const said = (xhr.responseText || '').match(/<Message>(?:<!\[CDATA\[)?([^<\]]*)/);
      reject(new ApiError(xhr.status, 'Storage refused the file',
        `${said ? `${said[1]}. ` : ''}(HTTP ${xhr.status}) Try again; if it keeps happening, tell your data manager.`));
    };
    xhr.onerror = () => reject(new ApiError(0, 'Cannot reach storage', 'The connection dropped while sending. Check the network and try again: what was sent is kept.'));
    xhr.onabort = () => reject(new DOMException('aborted', 'AbortError'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

/** Retries with exponential backoff (0.5 s, 1 s, 2 s, … ±20 %); `refresh` gives a fresh URL after a 403 (expired). */
async function withRetries(attempt, { signal, refresh, onRetry }) {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (e) {
      if (e.name === 'AbortError' || i >= RETRIES) throw e;
      const retriable = e.status === 0 || e.status === 403 || e.status === 408 || e.status === 429 || e.status >= 500;
      if (!retriable) throw e;
      onRetry?.(i + 1, e);
      await sleep(500 * 2 ** i * (0.8 + Math.random() * 0.4), signal);
      if (e.status === 403 && refresh) await refresh();
    }
  }
}

/** All URLs of the missing parts, following `next` pages. */
async function missingParts(uploadId, signal) {
  let page = await api('GET', `/v1/uploads/${uploadId}/parts`, undefined, { signal });
  const first = page;
  const missing = [...page.missing];
  while (page.next) {
    page = await api(page.next.method, page.next.path, undefined, { signal });
    missing.push(...page.missing);
  }
  return { ...first, missing };
}

/**
 * Runs one upload. `ui` gets callbacks: phase(name, text), hashProgress(done, total),
 * sendProgress(done, total), status(record), resumed(info), declared(record).
 */
export class Upload {
  constructor(file, subjectId, ui) {
    this.file = file;
    this.subjectId = subjectId;
    this.ui = ui;
    this.controller = new AbortController();
    this.uploadId = null;
    this.cancelled = false;
  }

  async run() {
    const { file, ui } = this;
    const signal = this.controller.signal;
    try {
      ui.phase('HASHING', 'Computing the SHA-256 fingerprint');
      const digest = await sha256(file, (done) => ui.hashProgress(done, file.size));
      ui.hashProgress(file.size, file.size);
      if (this.cancelled) throw new DOMException('aborted', 'AbortError');

      const pending = pendingUploads(this.subjectId).find((p) => p.sha256 === digest && p.sizeBytes === file.size);
      let record = null;
      if (pending) record = await this.resume(pending, signal);
      if (!record) record = await this.fresh(digest, signal);
      ui.phase('WAITING', 'Received; checking the file (malware scan, DICOM header)');
      return await this.follow(record.uploadId, signal);
    } catch (e) {
      if (e.name === 'AbortError' || this.cancelled) { ui.phase('ABORTED', 'Cancelled'); return null; }
      throw e;
    }
  }

  async fresh(digest, signal) {
    const { file, ui } = this;
    ui.phase('SENDING', 'Declaring the upload');
    const created = await api('POST', '/v1/uploads', {
      subjectId: this.subjectId,
      fileName: file.name || 'scan.dcm',
      contentType: 'application/dicom',
      sizeBytes: file.size,
      sha256: digest,
    }, { signal });
    this.uploadId = created.uploadId;
    ui.declared(created);
    const plan = created.upload;
    if (plan.mode === 'single') {
      ui.phase('SENDING', 'Sending');
      await withRetries(() => put(plan, file, (n) => ui.sendProgress(n, file.size), signal), {
        signal, onRetry: (n) => ui.phase('SENDING', `Sending (retry ${n})`),
      });
      ui.sendProgress(file.size, file.size);
      return created;
    }
    savePending({
      uploadId: created.uploadId, subjectId: this.subjectId, fileName: file.name, sizeBytes: file.size,
      sha256: digest, partCount: plan.partCount, createdAt: new Date().toISOString(),
    });
    let parts = [...plan.parts];
    let next = plan.next;
    while (next) {
      const page = await api(next.method, next.path, undefined, { signal });
      parts.push(...page.missing);
      next = page.next;
    }
    await this.sendParts(parts, [], plan.partSize, plan.complete, signal);
    return created;
  }

  /** Resumes a pending multipart upload; null if it cannot be (expired, aborted, gone). */
  async resume(pending, signal) {
    const { ui } = this;
    this.uploadId = pending.uploadId;
    let state;
    try {
      state = await missingParts(pending.uploadId, signal);
    } catch (e) {
      if (e instanceof ApiError && [404, 409].includes(e.status)) { dropPending(pending.uploadId); this.uploadId = null; return null; }
      throw e;
    }
    if (state.status !== 'AWAITING_UPLOAD') { dropPending(pending.uploadId); return { uploadId: pending.uploadId }; }
    ui.resumed({ uploadId: pending.uploadId, held: state.received.length, partCount: state.partCount });
    ui.declared({ uploadId: pending.uploadId });
    await this.sendParts(state.missing, state.received, state.partSize, state.complete, signal);
    return { uploadId: pending.uploadId };
  }

  async sendParts(toSend, held, partSize, complete, signal) {
    const { file, ui } = this;
    const etags = new Map(held.map((p) => [p.partNumber, p.etag]));
    const sent = new Map(held.map((p) => [p.partNumber, p.size]));
    const total = file.size;
    const report = () => ui.sendProgress([...sent.values()].reduce((a, b) => a + b, 0), total);
    report();
    ui.phase('SENDING', held.length ? `Resuming: ${held.length} part(s) already stored` : 'Sending');
    const queue = [...toSend].sort((a, b) => a.partNumber - b.partNumber);
    const urls = new Map(queue.map((p) => [p.partNumber, p]));
    const refresh = async (partNumber) => {
      const page = await api('GET', `/v1/uploads/${this.uploadId}/parts?from=${partNumber}`, undefined, { signal });
      for (const p of page.missing) urls.set(p.partNumber, p);
    };
    const worker = async () => {
      for (;;) {
        const part = queue.shift();
        if (!part) return;
        const n = part.partNumber;
        const start = (n - 1) * partSize;
        const blob = file.slice(start, Math.min(start + partSize, total));
        const etag = await withRetries(() => put(urls.get(n), blob, (b) => { sent.set(n, b); report(); }, signal), {
          signal,
          refresh: () => refresh(n),
          onRetry: (i) => ui.phase('SENDING', `Part ${n}: retry ${i}`),
        });
        etags.set(n, etag);
        sent.set(n, blob.size);
        report();
        ui.partDone?.(etags.size, Math.ceil(total / partSize));
      }
    };
    await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, queue.length) }, worker));
    ui.phase('SENDING', 'Assembling the parts');
    const parts = [...etags.entries()].sort((a, b) => a[0] - b[0]).map(([partNumber, etag]) => ({ partNumber, etag }));
    await api(complete.method, complete.path, { parts }, { signal });
    dropPending(this.uploadId);
  }

  /** Polls the record until processing ends (1 s, slowing to 5 s). */
  async follow(uploadId, signal) {
    let delay = 1000;
    for (;;) {
      const record = await api('GET', `/v1/uploads/${uploadId}`, undefined, { signal });
      this.ui.status(record);
      if (['PROCESSED', 'QUARANTINED', 'FAILED', 'ABORTED'].includes(record.status)) return record;
      await sleep(delay, signal);
      delay = Math.min(5000, delay * 1.3);
    }
  }

  /** Cancel: stops sending and aborts the upload (DELETE), which frees what storage holds. */
  async cancel() {
    this.cancelled = true;
    this.controller.abort();
    if (this.uploadId) {
      dropPending(this.uploadId);
      try {
        const record = await api('DELETE', `/v1/uploads/${this.uploadId}`);
        this.ui.status(record);
      } catch (e) {
        this.ui.error(e);
      }
    }
  }
}

/** What a status reason means, in plain words for the person who uploaded the file. */
export function plainReason(record) {
  const reason = record.statusReason || '';
  if (record.status === 'PROCESSED') {
    const mismatch = record.processing?.patientMismatch;
    if (mismatch) return 'Accepted, but flagged for review: the patient in the file may not be this subject.';
    if (record.processing?.instance === 'duplicate') return 'Accepted: this exact image was already on file.';
    return 'Accepted: the scan passed the malware scan and its DICOM header was read.';
  }
  if (record.status === 'ABORTED') return 'Cancelled; nothing was kept.';
  let m;
  if ((m = reason.match(/^malware: (.+)$/))) return `Quarantined: the malware scan found "${m[1]}". The file is not in the subject's record; tell your data manager and do not upload it again.`;
  if ((m = reason.match(/^unscannable: (.+)$/))) return `Quarantined: the file could not be scanned for malware (${m[1]}), so it was held back.`;
  if ((m = reason.match(/^size_mismatch: declared (\d+) bytes, received (\d+)$/))) return `Quarantined: ${m[2]} bytes arrived but the file has ${m[1]}; the transfer was incomplete. Upload it again.`;
  if (reason === 'checksum_mismatch') return 'Quarantined: the bytes that arrived differ from the file on this computer (SHA-256 mismatch). Upload it again.';
  if (reason === 'not_dicom') return 'Quarantined: this is not a DICOM file. Check that you picked the scan itself, not a report or a shortcut.';
  if ((m = reason.match(/^malformed: (.+)$/))) return `Quarantined: the DICOM file is damaged or incomplete (${m[1]}).`;
  if (record.status === 'FAILED') return `Processing failed${reason ? ` (${reason})` : ''}; your data manager has been alerted.`;
  return reason;
}

export { apiBase };
