// A live feed of one log: a room, or the signed-in user's direct messages.
//
// It reads the log after a cursor (the highest sequence number seen) over
// the best transport that works, and resumes after that cursor whenever the
// connection drops, so nothing is missed or seen twice:
//   1. WebSocket  GET {base}:ws?after_sequence=N, token in Sec-WebSocket-Protocol
//   2. a fetch() stream of newline-delimited JSON  GET {base}:subscribe?afterSequence=N
//   3. the long poll  GET {base}/events?after=N&timeout=25
// (EventSource cannot send the Authorization header, so SSE is not used.)
//
// Sends go into an outbox with an idempotency key each and are sent again,
// with the same key, after every reconnect until the server acknowledges
// them: a dropped connection neither loses nor doubles a message.
import { call, enc, errorFrom, networkError, seqOf, ApiError } from './api.js';

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const ACK_TIMEOUT_MS = 10_000;   // an unanswered frame means a dead socket
const FIRST_WRITE_MS = 10_000;   // a stream that says nothing is buffered
const POLL_TIMEOUT_S = 25;

let refs = 0;
const nextRef = () => `r${++refs}`;

const uuid = () => (crypto.randomUUID ? crypto.randomUUID()
  : ([1e7] + -1e3 + -4e3 + -8e3 + -1e11).replace(/[018]/g,
    (c) => (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16)));

/**
 * @param {object} o
 * @param {import('./session.js').Session} o.session
 * @param {string} [o.room]   the room's UUID; absent: the direct-message inbox
 * @param {number} o.after    resume after this sequence number
 * @param {(ev: object) => void} o.onEvent      every new event, in order
 * @param {(state: string, info: object) => void} o.onState  connecting | live | reconnecting | offline | closed
 * @param {() => void} o.onOutbox               the outbox changed
 * @param {(item: object, ev: object) => void} o.onAck  a send was committed
 * @param {(err: ApiError) => void} o.onFatal   no point retrying (401, 403, 404)
 */
export class Feed {
  constructor(o) {
    this.session = o.session;
    this.room = o.room || '';
    this.cursor = o.after || 0;
    this.cb = o;
    this.transport = 'ws';
    this.state = 'idle';
    this.outbox = [];          // pending sends, oldest first
    this.calls = new Map();    // ref -> {frame, resolve, reject, timer, rest}
    this.attempt = 0;
    this.stopped = true;
    this.gen = 0;              // bumps on every (re)connect; stale callbacks check it
    this.ws = null;
    this.abort = null;
    this.retryTimer = 0;
    this.draining = false;
    this.restBusy = false;
    this.wasLive = false;
    this.onOnline = () => this.#online();
    this.onOffline = () => this.#offline();
  }

  get base() {
    return this.room ? `/v1/rooms/${enc(this.room)}` : '/v1/direct-messages';
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.#connect();
  }

  /** Stops reading; with drain, only once every pending send is acknowledged. */
  stop({ drain = false } = {}) {
    if (drain && this.outbox.some((i) => !i.failed)) {
      this.draining = true;
      return;
    }
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.#disconnect();
    clearTimeout(this.retryTimer);
    for (const c of this.calls.values()) { clearTimeout(c.timer); c.reject(new ApiError({ code: 'CLOSED', message: 'closed' })); }
    this.calls.clear();
    this.#setState('closed');
  }

  /** Queues a message; `user` is the recipient of a direct message. */
  send(text, user = '') {
    const item = { key: uuid(), ref: nextRef(), text, user, failed: null, createTime: new Date().toISOString() };
    this.outbox.push(item);
    this.cb.onOutbox?.();
    this.#transmit(item);
    return item;
  }

  /** Sends a failed item again, with its original key. */
  retry(item) {
    item.failed = null;
    this.cb.onOutbox?.();
    this.#transmit(item);
  }

  discard(item) {
    this.outbox = this.outbox.filter((i) => i !== item);
    this.cb.onOutbox?.();
  }

  edit(messageId, text) {
    return this.#call({ type: 'edit', message: messageId, text },
      () => call('PATCH', `${this.base}/messages/${enc(messageId)}`, { token: this.session.token, body: { text } }));
  }

  remove(messageId) {
    return this.#call({ type: 'delete', message: messageId },
      () => call('DELETE', `${this.base}/messages/${enc(messageId)}`, { token: this.session.token }));
  }

  /** Tells the room (or `user`, in the inbox feed) that I am typing. */
  typing(user = '') {
    const frame = user ? { type: 'typing', user } : { type: 'typing' };
    const path = user ? `/v1/users/${enc(user)}:typing` : `${this.base}:typing`;
    return this.#call(frame, () => call('POST', path, { token: this.session.token, body: {} })).catch(() => {});
  }

  /** Moves my read marker in the room. */
  read(sequence) {
    return this.#call({ type: 'read', sequence },
      () => call('PUT', `${this.base}/read-marker`, { token: this.session.token, body: { sequence: String(sequence) } }))
      .catch(() => {});
  }

  // ---- connection ------------------------------------------------------

  #setState(state, info = {}) {
    this.state = state;
    this.cb.onState?.(state, { transport: this.transport, ...info });
  }

  #connect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.#disconnect();
    if (!navigator.onLine) { this.#setState('offline'); return; }
    const gen = ++this.gen;
    this.#setState(this.attempt ? 'reconnecting' : 'connecting');
    if (this.transport === 'ws') this.#openSocket(gen);
    else if (this.transport === 'stream') this.#openStream(gen);
    else this.#poll(gen);
  }

  #disconnect() {
    this.gen++;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch { /* already closing */ }
    }
    if (this.abort) { this.abort.abort(); this.abort = null; }
    // Frames in flight on the old socket: redo them over REST or on the
    // next socket; their acknowledgement will not come.
    for (const [ref, c] of this.calls) {
      if (c.frame.type === 'send') continue;
      clearTimeout(c.timer);
      this.calls.delete(ref);
      c.rest().then(c.resolve, c.reject);
    }
    for (const [ref, c] of this.calls) { clearTimeout(c.timer); this.calls.delete(ref); }
  }

  /** The connection failed: try again after a growing, jittered delay. */
  #retryLater(err) {
    if (this.stopped) return;
    this.#disconnect();
    if (!navigator.onLine) { this.#setState('offline'); return; }
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = Math.max(250, Math.floor(Math.random() * ceiling)); // full jitter
    this.attempt++;
    this.#setState('reconnecting', { delay, error: err });
    this.retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #online() {
    if (this.stopped || this.state === 'live' || this.state === 'connecting') return;
    this.attempt = 0;
    this.#connect();
  }

  #offline() {
    if (this.stopped) return;
    // A socket may not notice the network is gone: drop it now and resume
    // from the cursor when the network is back.
    this.#disconnect();
    clearTimeout(this.retryTimer);
    this.#setState('offline');
  }

  #live() {
    const resumed = this.attempt > 0 || this.wasLive;
    this.attempt = 0;
    this.wasLive = true;
    this.#setState('live', { resumed });
    this.#flushOutbox();
  }

  /** Closes that carry a 4000+HTTP status, and errors, by what they mean. */
  #failed(err, gen) {
    if (gen !== this.gen) return;
    if (err.status === 401) { this.stop(); this.cb.onFatal?.(err); return; }
    if (err.status === 403 || err.status === 404) {
      this.stop();
      this.cb.onFatal?.(err);
      return;
    }
    this.#retryLater(err);
  }

  // -- WebSocket

  #openSocket(gen) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}${this.base}:ws?after_sequence=${this.cursor}`;
    let ws;
    try {
      ws = new WebSocket(url, ['parley.v1', this.session.token]);
    } catch {
      this.#fallBack(gen);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      opened = true;
      this.#live();
    };
    ws.onmessage = (m) => {
      if (gen !== this.gen) return;
      let f;
      try { f = JSON.parse(m.data); } catch { return; }
      this.#frame(f);
    };
    ws.onerror = () => { /* onclose follows with the details */ };
    ws.onclose = (ev) => {
      if (gen !== this.gen) return;
      this.ws = null;
      if (!opened) { this.#probe(gen); return; }
      let err;
      try { err = ev.reason ? errorFrom(JSON.parse(ev.reason)) : null; } catch { err = null; }
      if (ev.code >= 4000 && ev.code < 5000) {
        const status = ev.code - 4000;
        err = err && err.status ? err : new ApiError({ code: `HTTP_${status}`, status, message: ev.reason || `closed with ${ev.code}` });
        this.#failed(err, gen);
        return;
      }
      this.#retryLater(err || networkError());
    };
  }

  // The socket closed before it opened. A handshake refused with 401 or 404
  // looks the same to a page as a server without WebSocket or a dead network:
  // ask over REST which it was.
  async #probe(gen) {
    const path = this.room ? this.base : '/v1/direct-messages?n=1';
    try {
      await call('GET', path, { token: this.session.token });
    } catch (err) {
      if (gen !== this.gen) return;
      if (err instanceof ApiError && !err.transient) { this.#failed(err, gen); return; }
      this.#retryLater(err);
      return;
    }
    if (gen !== this.gen) return;
    // The server answers REST but not WebSocket here.
    this.#fallBack(gen);
  }

  #fallBack(gen) {
    if (gen !== this.gen) return;
    this.transport = this.transport === 'ws' ? 'stream' : 'poll';
    this.#connect();
  }

  #frame(f) {
    switch (f.type) {
      case 'event':
        this.#events([f.event]);
        break;
      case 'events':
        this.#events(f.events || []);
        break;
      case 'ack': {
        const c = this.calls.get(f.ref);
        if (c) { clearTimeout(c.timer); this.calls.delete(f.ref); c.resolve(f.event || f); }
        const item = this.outbox.find((i) => i.ref === f.ref);
        if (item) this.#acked(item, f.event);
        break;
      }
      case 'error': {
        const err = errorFrom({ error: f.error });
        const c = this.calls.get(f.ref);
        if (c) { clearTimeout(c.timer); this.calls.delete(f.ref); c.reject(err); }
        const item = this.outbox.find((i) => i.ref === f.ref);
        if (err.status === 401 || !f.ref) this.#failed(err, this.gen); // signed out elsewhere, or the stream's end
        else if (item) this.#sendFailed(item, err);
        break;
      }
      default:
        break;
    }
  }

  // -- NDJSON stream over fetch()

  async #openStream(gen) {
    const ctl = new AbortController();
    this.abort = ctl;
    let firstWrite = setTimeout(() => { if (gen === this.gen) this.#fallBack(gen); }, FIRST_WRITE_MS);
    const done = () => { clearTimeout(firstWrite); firstWrite = 0; };
    try {
      const res = await fetch(`${this.base}:subscribe?afterSequence=${this.cursor}`, {
        headers: { Authorization: `Bearer ${this.session.token}`, Accept: 'application/json' },
        signal: ctl.signal, cache: 'no-store',
      });
      if (gen !== this.gen) return;
      if (!res.ok) {
        done();
        let body = null;
        try { body = await res.json(); } catch { /* not JSON */ }
        if (gen !== this.gen) return;
        this.#failed(errorFrom(body, res.status), gen);
        return;
      }
      if (!res.body) { done(); this.#fallBack(gen); return; }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done: end } = await reader.read();
        if (gen !== this.gen) { reader.cancel().catch(() => {}); return; }
        if (end) break;
        buf += value;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let msg;
          try { msg = JSON.parse(line); } catch { continue; }
          if (firstWrite) { done(); this.#live(); }
          if (msg.error) { this.#failed(errorFrom(msg), gen); return; }
          const events = (msg.result && msg.result.events) || msg.events || [];
          this.#events(events);
          if (gen !== this.gen) return;
        }
      }
      done();
      if (gen === this.gen) this.#retryLater(networkError()); // the server ended it
    } catch (err) {
      done();
      if (gen !== this.gen || (err && err.name === 'AbortError')) return;
      this.#retryLater(networkError());
    }
  }

  // -- long poll

  async #poll(gen) {
    const ctl = new AbortController();
    this.abort = ctl;
    let first = true;
    while (gen === this.gen && !this.stopped) {
      let r;
      try {
        r = await call('GET', `${this.base}/events?after=${this.cursor}&timeout=${POLL_TIMEOUT_S}`,
          { token: this.session.token, signal: ctl.signal });
      } catch (err) {
        if (gen !== this.gen || (err && err.name === 'AbortError')) return;
        this.#failed(err instanceof ApiError ? err : networkError(), gen);
        return;
      }
      if (gen !== this.gen) return;
      if (first) { first = false; this.#live(); }
      this.#events(r.events || []);
      this.cursor = Math.max(this.cursor, seqOf(r.nextAfterSequence));
    }
  }

  // ---- events ------------------------------------------------------------

  #events(events) {
    for (const ev of events) {
      if (!ev) continue;
      const seq = seqOf(ev.sequence);
      if (seq > 0) {
        if (seq <= this.cursor) continue; // seen already
        this.cursor = seq;
      }
      this.cb.onEvent?.(ev);
    }
  }

  // ---- sends and other requests -------------------------------------------

  #socketOpen() {
    return this.transport === 'ws' && this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  #flushOutbox() {
    for (const item of this.outbox) if (!item.failed) this.#transmit(item);
  }

  #transmit(item) {
    if (this.stopped && !this.draining) return;
    if (this.state !== 'live') return; // sent on (re)connect
    if (this.#socketOpen()) {
      if (this.calls.has(item.ref)) return; // in flight on this socket
      const frame = { type: 'send', ref: item.ref, text: item.text, idempotencyKey: item.key };
      if (item.user) frame.user = item.user;
      const gen = this.gen;
      const timer = setTimeout(() => {
        // No acknowledgement: the socket is dead or stuck. Reconnect; the
        // send goes again, with its key, on the new socket.
        if (gen === this.gen) this.#retryLater(networkError());
      }, ACK_TIMEOUT_MS);
      this.calls.set(item.ref, { frame, timer, resolve() {}, reject() {}, rest: () => Promise.resolve() });
      this.ws.send(JSON.stringify(frame));
      return;
    }
    if (this.transport !== 'ws') this.#restOutbox();
  }

  // Over REST the outbox goes one at a time, so that messages keep their order.
  async #restOutbox() {
    if (this.restBusy) return;
    this.restBusy = true;
    try {
      for (;;) {
        const item = this.outbox.find((i) => !i.failed);
        if (!item || this.state !== 'live' || this.#socketOpen()) return;
        const path = item.user ? `/v1/users/${enc(item.user)}/messages` : `${this.base}/messages`;
        try {
          const ev = await call('POST', path, {
            token: this.session.token,
            body: { text: item.text, idempotencyKey: item.key },
            headers: { 'Idempotency-Key': item.key },
          });
          this.#acked(item, ev);
        } catch (err) {
          if (err instanceof ApiError && err.transient) {
            // Kept, with its key; sent again once the connection is back.
            if (err.network) this.#retryLater(err);
            else await new Promise((r) => setTimeout(r, Math.max(1000, (err.retryAfter || 2) * 1000)));
            if (err.network) return;
          } else {
            this.#sendFailed(item, err);
          }
        }
      }
    } finally {
      this.restBusy = false;
    }
  }

  #acked(item, ev) {
    const c = this.calls.get(item.ref);
    if (c) { clearTimeout(c.timer); this.calls.delete(item.ref); }
    if (!this.outbox.includes(item)) return;
    this.outbox = this.outbox.filter((i) => i !== item);
    this.cb.onAck?.(item, ev);
    this.cb.onOutbox?.();
    if (this.draining && !this.outbox.some((i) => !i.failed)) this.stop();
  }

  #sendFailed(item, err) {
    if (err.status === 401) { this.#failed(err, this.gen); return; }
    if (err.transient) {
      // The server is busy or restarting: keep the send and try again.
      const c = this.calls.get(item.ref);
      if (c) { clearTimeout(c.timer); this.calls.delete(item.ref); }
      setTimeout(() => this.#transmit(item), Math.max(1000, (err.retryAfter || 2) * 1000));
      return;
    }
    item.failed = err;
    this.cb.onOutbox?.();
  }

  /** A frame over the socket when it is open, else the REST call. */
  #call(frame, rest) {
    if (!this.#socketOpen()) return rest();
    return new Promise((resolve, reject) => {
      const ref = nextRef();
      const timer = setTimeout(() => {
        if (!this.calls.has(ref)) return;
        this.calls.delete(ref);
        rest().then(resolve, reject);
      }, ACK_TIMEOUT_MS);
      this.calls.set(ref, { frame, resolve, reject, timer, rest });
      this.ws.send(JSON.stringify({ ...frame, ref }));
    });
  }
}
