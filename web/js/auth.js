// Sign-in. Locally (config.json says mode "dev"): a role/site picker that asks the local stack's
// dev-only route for a token. In production (mode "oidc"): the OpenID Connect authorization-code
// flow with PKCE against the issuer the deployment names. The token lives in sessionStorage (this
// tab only, gone when it closes; it survives a reload, which an upload's resume needs) and never
// in localStorage.

const KEY = 'clinflow.session';
const PKCE = 'clinflow.pkce';
let listeners = [];
let notice = '';

export function onSessionChange(fn) { listeners.push(fn); }

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (s && s.token && (!s.expiresAt || Date.parse(s.expiresAt) > Date.now())) return s;
  } catch { /* ignore */ }
  return null;
}

function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch { return {}; }
}

function splitList(v) {
  if (Array.isArray(v)) return v;
  return String(v || '').replace(/^\[|\]$/g, '').split(/[\s,]+/).filter(Boolean);
}

function save(token, extra = {}) {
  const c = claims(token);
  const s = {
    token,
    user: extra.user || c.email || c.name || c.sub || 'user',
    role: extra.role || c.role || c['custom:role'] || '',
    sites: extra.sites || splitList(c.sites || c['custom:sites']),
    trials: extra.trials || splitList(c.trials || c['custom:trials']),
    expiresAt: c.exp ? new Date(c.exp * 1000).toISOString() : extra.expiresAt,
  };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  listeners.forEach((fn) => fn(s));
  return s;
}

export function signOut(message = '') {
  sessionStorage.removeItem(KEY);
  notice = message;
  listeners.forEach((fn) => fn(null));
}

/** A message for the sign-in screen (why the session ended), read once. */
export function takeNotice() { const n = notice; notice = ''; return n; }

// ---------------------------------------------------------------- dev (local stack only)

export async function devSignIn(apiBase, { role, sites, trials }) {
  const response = await fetch(`${apiBase}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ role, sites, trials }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = new Error(body.title || 'Sign-in failed');
    err.title = body.title || 'Sign-in failed';
    err.detail = body.detail || '';
    throw err;
  }
  return save(body.token, { role: body.role, sites: body.sites, trials: body.trials, user: body.user, expiresAt: body.expiresAt });
}

// ---------------------------------------------------------------- OIDC authorization code + PKCE

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function discover(issuer) {
  const r = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!r.ok) throw new Error(`The identity provider's discovery document answered ${r.status}`);
  return r.json();
}

function redirectUri(oidc) {
  return oidc.redirectUri || `${location.origin}${location.pathname}`;
}

/** Sends the browser to the identity provider. */
export async function oidcSignIn(oidc) {
  const meta = await discover(oidc.issuer);
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE, JSON.stringify({ verifier, state, hash: location.hash }));
  const url = new URL(meta.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: oidc.clientId,
    redirect_uri: redirectUri(oidc),
    scope: oidc.scope || 'openid',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/** Back from the identity provider with ?code=&state=: exchanges the code for tokens. */
export async function oidcCallback(oidc) {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return null;
  const saved = JSON.parse(sessionStorage.getItem(PKCE) || 'null');
  sessionStorage.removeItem(PKCE);
  history.replaceState(null, '', `${location.pathname}${saved && saved.hash ? saved.hash : ''}`);
  if (params.has('error')) throw new Error(params.get('error_description') || params.get('error'));
  if (!saved || saved.state !== params.get('state')) throw new Error('The sign-in answer does not match the request; sign in again.');
  const meta = await discover(oidc.issuer);
  const r = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code'),
      redirect_uri: redirectUri(oidc),
      client_id: oidc.clientId,
      code_verifier: saved.verifier,
    }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error_description || body.error || `The token endpoint answered ${r.status}`);
  // The token the API's JWT authorizer takes: its `aud` must be the template's JwtAudience.
  const token = body[oidc.tokenField || 'access_token'];
  if (!token) throw new Error('The identity provider returned no token');
  return save(token);
}
