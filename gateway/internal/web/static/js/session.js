// The signed-in user: the token lives in sessionStorage (this tab only, gone
// when it closes), is renewed before it expires, and is revoked on sign-out.
import { call, ApiError } from './api.js';

const KEY = 'parley.session';
const RETRY_MS = 30_000;

export class Session extends EventTarget {
  #token = '';
  #expire = 0; // ms since the epoch
  #user = null;
  #timer = 0;

  constructor() {
    super();
    try {
      const saved = JSON.parse(sessionStorage.getItem(KEY) || 'null');
      if (saved && saved.token && Date.parse(saved.expireTime) > Date.now() + 5_000) {
        this.#token = saved.token;
        this.#expire = Date.parse(saved.expireTime);
        this.#user = saved.user;
        this.#schedule();
      }
    } catch { sessionStorage.removeItem(KEY); }
    // Timers sleep in background tabs: check again when the tab wakes.
    const wake = () => { if (this.signedIn && Date.now() >= this.#renewAt()) this.renew(); };
    document.addEventListener('visibilitychange', wake);
    window.addEventListener('online', wake);
  }

  get signedIn() { return !!this.#token; }
  get token() { return this.#token; }
  get user() { return this.#user; }

  async signIn(username, password) {
    const r = await call('POST', '/v1/auth/sign-in', { body: { username, password } });
    this.#set(r.token, r.expireTime, r.user);
  }

  async signUp(username, password, displayName) {
    const body = { username, password };
    if (displayName) body.displayName = displayName;
    await call('POST', '/v1/users', { body });
    await this.signIn(username, password);
  }

  /** Revokes the token on the server (best effort) and forgets it. */
  async signOut() {
    const token = this.#token;
    this.#clear();
    this.dispatchEvent(new CustomEvent('signedout', { detail: { reason: '' } }));
    if (token) {
      try { await call('POST', '/v1/auth/sign-out', { token, body: {} }); } catch { /* gone anyway */ }
    }
  }

  /** The server refused the token: forget it and ask to sign in again. */
  expired(reason = 'Your session has ended. Please sign in again.') {
    if (!this.signedIn) return;
    this.#clear();
    this.dispatchEvent(new CustomEvent('signedout', { detail: { reason } }));
  }

  /** Replaces the token with a fresh one. */
  async renew() {
    if (!this.signedIn) return;
    const token = this.#token;
    try {
      const r = await call('POST', '/v1/auth/renew', { token, body: {} });
      if (this.#token === token) this.#set(r.token, r.expireTime, this.#user);
    } catch (err) {
      if (this.#token !== token) return;
      if (err instanceof ApiError && err.status === 401) {
        this.expired();
      } else {
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => this.renew(), RETRY_MS);
      }
    }
  }

  #set(token, expireTime, user) {
    this.#token = token;
    this.#expire = Date.parse(expireTime);
    this.#user = user;
    sessionStorage.setItem(KEY, JSON.stringify({ token, expireTime, user }));
    this.#schedule();
    this.dispatchEvent(new CustomEvent('token'));
  }

  #clear() {
    clearTimeout(this.#timer);
    this.#token = '';
    this.#user = null;
    this.#expire = 0;
    sessionStorage.removeItem(KEY);
  }

  // Renew when three quarters of the lifetime left are gone, and a minute
  // before expiry at the latest, but not before half of it (short-lived
  // tokens).
  #renewAt() {
    const left = this.#expire - this.#issued;
    return this.#issued + Math.max(left * 0.5, Math.min(left * 0.75, left - 60_000));
  }
  #issued = Date.now();

  #schedule() {
    clearTimeout(this.#timer);
    this.#issued = Date.now();
    // setTimeout holds at most 2^31-1 ms.
    const delay = Math.min(Math.max(1_000, this.#renewAt() - Date.now()), 2 ** 31 - 1);
    this.#timer = setTimeout(() => this.renew(), delay);
  }
}
