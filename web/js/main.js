// The console: sign-in, then a subject's page with its panels. Each panel is one API's view: upload,
// the risk report, the ePRO pain chart, the uploads list (left); imaging, exports (right).
import { api, setApiBase, apiBase, problemElement } from './api.js';
import { session, signOut, onSessionChange, takeNotice, devSignIn, oidcSignIn, oidcCallback } from './auth.js';
import { uploadPanel } from './panels/upload.js';
import { historyPanel } from './panels/history.js';
import { imagingPanel } from './panels/imaging.js';
import { drugPanel } from './panels/drug.js';
import { reportPanel } from './panels/report.js';
import { eproPanel } from './panels/epro.js';
import { exportsPanel } from './panels/exports.js';
import { h } from './dom.js';

const PANELS = [uploadPanel, reportPanel, eproPanel, historyPanel, imagingPanel, exportsPanel];
let config = { apiBase: '', auth: { mode: 'dev' } };
const main = document.getElementById('main');

function showNotice(text, kind = '') {
  const n = document.getElementById('notice');
  n.textContent = text;
  n.className = `notice ${kind}`;
  n.hidden = !text;
}

function header() {
  const s = session();
  document.getElementById('who').textContent = s ? `${s.user} · ${s.role.replace('_', ' ')} · ${s.sites.join(', ') || 'no sites'}` : '';
  document.getElementById('sign-out').hidden = !s;
}

function signInView() {
  const message = takeNotice();
  if (message) showNotice(message, 'info');
  if (config.auth.mode === 'oidc') {
    const go = h('button', { type: 'button', onclick: () => oidcSignIn(config.auth).catch((e) => showNotice(e.message)) }, 'Sign in with your organisation');
    main.replaceChildren(h('section', { class: 'card signin' }, h('h1', {}, 'Sign in'), h('p', {}, 'Use your site account.'), go));
    go.focus();
    return;
  }
  const role = h('select', { id: 'role', name: 'role' },
    h('option', { value: 'site_staff' }, 'Site staff (uploads scans)'),
    h('option', { value: 'monitor' }, 'Monitor (reads, never sees file names)'),
    h('option', { value: 'sponsor_admin' }, 'Sponsor admin'));
  const sites = h('input', { id: 'sites', name: 'sites', type: 'text', value: 'SITE-BOS-01', autocomplete: 'off' });
  const trials = h('input', { id: 'trials', name: 'trials', type: 'text', value: '', autocomplete: 'off' });
  const errors = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card signin', id: 'sign-in' },
    h('h1', {}, 'Sign in (local development)'),
    h('p', { class: 'muted' }, 'The local stack signs a token for the role and sites you pick. A deployment signs in through your organisation instead.'),
    h('div', { class: 'field' }, h('label', { for: 'role' }, 'Role'), role),
    h('div', { class: 'field' }, h('label', { for: 'sites' }, 'Sites ', h('span', { class: 'hint' }, '(comma-separated)')), sites),
    h('div', { class: 'field' }, h('label', { for: 'trials' }, 'Trials ', h('span', { class: 'hint' }, '(sponsor admins; comma-separated)')), trials),
    errors,
    h('button', { type: 'submit', id: 'sign-in-button' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    try {
      const list = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);
      await devSignIn(apiBase, { role: role.value, sites: list(sites.value), trials: list(trials.value) });
    } catch (err) {
      errors.replaceChildren(problemElement(err));
    }
  });
  main.replaceChildren(form);
  role.focus();
}

function subjectPicker() {
  const input = h('input', { id: 'subject-id', name: 'subject', type: 'text', placeholder: 'SUBJ-0001', autocomplete: 'off', required: true, pattern: '[A-Za-z0-9_.\\-]+' });
  const form = h('form', { class: 'inline', id: 'open-subject' },
    h('div', {}, h('label', { for: 'subject-id' }, 'Subject ID'), input),
    h('button', { type: 'submit' }, 'Open subject'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `#/subjects/${encodeURIComponent(input.value.trim())}`;
  });
  return { form, input };
}

function homeView() {
  const { form, input } = subjectPicker();
  main.replaceChildren(
    h('h1', {}, 'Subjects'),
    h('section', { class: 'card' }, h('h2', {}, 'Open a subject'), h('p', { class: 'muted' }, 'Enter the subject ID from the visit sheet to upload scans or review them.'), form),
    drugPanel.render(),
  );
  input.focus();
}

async function subjectView(subjectId) {
  const { form, input } = subjectPicker();
  input.value = subjectId;
  const title = h('h1', { id: 'subject-title' }, `Subject ${subjectId}`);
  const status = h('div', { id: 'subject-status', 'aria-live': 'polite' });
  const left = h('div', {});
  const right = h('div', {});
  main.replaceChildren(h('section', { class: 'card' }, form), title, status, h('div', { class: 'grid' }, left, right));
  main.focus();
  // One read says whether the subject exists within the caller's sites (404 otherwise, exactly
  // like a subject that does not exist); the panels render only then.
  let imaging;
  try {
    imaging = await api('GET', `/v1/subjects/${encodeURIComponent(subjectId)}/imaging`);
  } catch (err) {
    status.replaceChildren(problemElement(err));
    return;
  }
  title.textContent = `Subject ${subjectId}`;
  status.replaceChildren(h('p', { class: 'muted' }, `Trial ${imaging.trialId} · Site ${imaging.siteId}`));
  const ctx = { subjectId, session: session(), imaging, refresh: () => PANELS.forEach((p) => p.refresh?.(ctx)) };
  for (const panel of PANELS) {
    if (panel.visible && !panel.visible(ctx)) continue;
    (panel.column === 'right' ? right : left).append(panel.render(ctx));
  }
  right.append(drugPanel.render());
}

function route() {
  header();
  showNotice('');
  if (!session()) { signInView(); return; }
  const m = location.hash.match(/^#\/subjects\/([^/]+)$/);
  if (m) subjectView(decodeURIComponent(m[1]));
  else homeView();
}

async function start() {
  try {
    const r = await fetch('config.json', { cache: 'no-store' });
    if (r.ok) config = await r.json();
  } catch { /* defaults: the local stack */ }
  setApiBase(config.apiBase || '');
  if (config.auth?.mode === 'oidc') {
    try { await oidcCallback(config.auth); } catch (e) { showNotice(e.message); }
  }
  document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));
  onSessionChange(() => route());
  window.addEventListener('hashchange', route);
  route();
}

start();
