// Calls to the clinflow API. Every failure becomes an ApiError carrying the RFC 9457 problem's
// title and detail (or API Gateway's message): what the console shows, never a stack trace.
import { session, signOut } from './auth.js';

export let apiBase = '';
export function setApiBase(base) { apiBase = (base || '').replace(/\/$/, ''); }

export class ApiError extends Error {
  constructor(status, title, detail, type) {
    super(title);
    this.status = status;
    this.title = title;
    this.detail = detail || '';
    this.type = type || '';
  }
}

const FALLBACK = {
  0: ['Cannot reach the server', 'Check the network connection and try again.'],
  401: ['Your session has ended', 'Sign in again to continue.'],
  403: ['Not allowed', 'Your role may not do this.'],
  404: ['Not found', 'It does not exist, or it is outside your sites.'],
  429: ['Too many requests', 'Wait a moment and try again.'],
  500: ['Server error', 'Something went wrong on the server; try again shortly.'],
  503: ['Service unavailable', 'Try again shortly.'],
};

export async function problemOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  const [title, detail] = FALLBACK[response.status] || [`Request failed (${response.status})`, ''];
  if (body && typeof body.title === 'string') {
    return new ApiError(response.status, body.title, typeof body.detail === 'string' ? body.detail : '', body.type);
  }
  if (body && typeof body.message === 'string') {
    return new ApiError(response.status, title, body.message === title ? detail : `${body.message}. ${detail}`.trim());
  }
  return new ApiError(response.status, title, detail);
}

/** A JSON call to the API with the session's bearer token. */
export async function api(method, path, body, { signal } = {}) {
  const s = session();
  const headers = { accept: 'application/json, application/problem+json' };
  if (s) headers.authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(apiBase + path, {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, ...FALLBACK[0]);
  }
  if (response.status === 401) {
    const err = await problemOf(response);
    signOut('Your session has ended: sign in again. Unfinished uploads are kept and resume when you choose the files again.');
    throw err;
  }
  if (!response.ok) throw await problemOf(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** A problem as the page shows it: the title, then the detail. */
export function problemElement(err) {
  const box = document.createElement('div');
  box.className = 'problem';
  box.setAttribute('role', 'alert');
  const strong = document.createElement('strong');
  const title = err instanceof ApiError ? err.title : 'Something went wrong';
  const detail = err instanceof ApiError ? err.detail : 'Try again; if it keeps happening, tell your data manager.';
  strong.textContent = title;
  box.append(strong);
  if (detail) box.append(document.createTextNode(detail));
  return box;
}
