// Parley's chat page: sign in, rooms, direct messages, live.
import { call, enc, describe, seqOf, ApiError } from './api.js';
import { Session } from './session.js';
import { Feed } from './feed.js';
import { Timeline, el } from './timeline.js';

const $ = (id) => document.getElementById(id);
const HISTORY_PAGE = 50;
const TYPING_EVERY_MS = 3_000;
const ROOMS_REFRESH_MS = 20_000;

const session = new Session();
const state = {
  rooms: [],
  view: null,           // the open conversation, see openRoom and openDm
  dmFeed: null,         // my direct-message inbox, live while signed in
  dms: new Map(),       // other user's id -> {id, name, username, events: Map(id -> ev), unread}
  roomsTimer: 0,
};

const me = () => session.user?.id || '';

/** call() with my token; a refused token signs me out. */
async function api(method, path, opts = {}) {
  try {
    return await call(method, path, { ...opts, token: session.token });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && session.signedIn) session.expired();
    throw err;
  }
}

// ---- messages to the person --------------------------------------------------

function showAlert(message) {
  $('alert-text').textContent = message;
  $('alert').hidden = !message;
}

/** Shows what went wrong, unless it was a refused token (the sign-in form says so). */
function alertError(what, err) {
  if (!session.signedIn || (err instanceof ApiError && err.status === 401)) return;
  showAlert(`${what}: ${describe(err)}`);
}
$('alert-close').addEventListener('click', () => showAlert(''));

function fieldName(field) {
  return (field || '').replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

/** Shows err under the form and marks the field it names. */
function formError(form, box, err) {
  form.querySelectorAll('[aria-invalid]').forEach((i) => i.removeAttribute('aria-invalid'));
  box.textContent = err ? describe(err) : '';
  if (!err) return;
  const input = err.field && form.querySelector(`[name="${fieldName(err.field)}"]`);
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-errormessage', box.id);
    input.focus();
  }
}

async function busy(form, fn) {
  const buttons = form.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  try { return await fn(); } finally { buttons.forEach((b) => { b.disabled = false; }); }
}

const CONN_TEXT = {
  connecting: () => 'Connecting…',
  live: (i) => `Live${i.transport === 'ws' ? '' : i.transport === 'stream' ? ' (stream)' : ' (polling)'}`,
  reconnecting: (i) => `Connection lost${i.error ? `: ${describe(i.error)}` : ''} Reconnecting${i.delay ? ` in ${Math.ceil(i.delay / 1000)} s` : ''}…`,
  offline: () => 'You are offline. Messages you write are sent when the connection is back.',
  closed: () => '',
  idle: () => '',
};

function showConn(s, info) {
  const conn = $('conn');
  conn.dataset.state = s;
  conn.dataset.transport = info.transport || '';
  const text = (CONN_TEXT[s] || (() => ''))(info);
  if (conn.textContent !== text) conn.textContent = text;
}

// The connection shown is that of the open conversation.
function currentFeed() {
  const v = state.view;
  if (v && v.type === 'room') return v.feed;
  return state.dmFeed;
}
function refreshConn() {
  const f = currentFeed();
  if (f) showConn(f.state, { transport: f.transport, ...(f.lastInfo || {}) });
  else showConn('idle', {});
}

// ---- signed out --------------------------------------------------------------

function showSignin(reason) {
  $('app').hidden = true;
  $('me').hidden = true;
  $('signin').hidden = false;
  showConn('idle', {});
  showAlert(reason || '');
  document.title = 'Sign in · Parley';
  $('si-username').focus();
}

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const username = $('si-username').value.trim();
  const password = $('si-password').value;
  if (!username || !password) {
    formError(form, $('signin-error'), new ApiError({ message: 'Enter your username and password.', field: username ? 'password' : 'username' }));
    return;
  }
  busy(form, async () => {
    try {
      await session.signIn(username, password);
      form.reset();
      formError(form, $('signin-error'), null);
      startApp();
    } catch (err) {
      formError(form, $('signin-error'), err);
    }
  });
});

$('signup-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const username = $('su-username').value.trim();
  const displayName = $('su-display').value.trim();
  const password = $('su-password').value;
  if (!username) {
    formError(form, $('signup-error'), new ApiError({ message: 'Choose a username.', field: 'username' }));
    return;
  }
  if (password.length < 8) {
    formError(form, $('signup-error'), new ApiError({ message: 'The password needs at least 8 characters.', field: 'password' }));
    return;
  }
  busy(form, async () => {
    try {
      await session.signUp(username, password, displayName);
      form.reset();
      formError(form, $('signup-error'), null);
      startApp();
    } catch (err) {
      formError(form, $('signup-error'), err);
    }
  });
});

session.addEventListener('signedout', (e) => {
  teardown();
  showSignin(e.detail.reason);
});

$('sign-out').addEventListener('click', () => session.signOut());

function teardown() {
  closeView();
  if (state.dmFeed) state.dmFeed.stop();
  state.dmFeed = null;
  state.dms.clear();
  state.rooms = [];
  clearInterval(state.roomsTimer);
  $('room-list').replaceChildren();
  $('dm-list').replaceChildren();
}

// ---- signed in -----------------------------------------------------------------

function startApp() {
  $('signin').hidden = true;
  $('app').hidden = false;
  $('me').hidden = false;
  showAlert('');
  const u = session.user;
  $('me-name').textContent = u.displayName && u.displayName !== u.username ? `${u.displayName} (@${u.username})` : u.username;
  loadRooms();
  loadUserNames();
  startDms();
  clearInterval(state.roomsTimer);
  state.roomsTimer = setInterval(() => { if (document.visibilityState === 'visible') loadRooms(); }, ROOMS_REFRESH_MS);
  route();
}

window.addEventListener('hashchange', () => { if (session.signedIn) route(); });
window.addEventListener('focus', () => { if (session.signedIn) loadRooms(); });

function route() {
  const h = location.hash;
  let m;
  if ((m = h.match(/^#\/room\/(.+)$/))) openRoom(decodeURIComponent(m[1]));
  else if ((m = h.match(/^#\/dm\/(.+)$/))) openDm(decodeURIComponent(m[1]));
  else showWelcome();
}

$('skip').addEventListener('click', (e) => {
  e.preventDefault();
  const target = !$('signin').hidden ? $('signin') : (!$('conv').hidden ? $('composer-text') : $('conversation'));
  target.focus();
});

// ---- rooms list ----------------------------------------------------------------

async function loadRooms() {
  try {
    const r = await api('GET', '/v1/rooms?pageSize=1000');
    state.rooms = r.rooms || [];
    renderRooms();
  } catch (err) {
    if (!(err instanceof ApiError && err.network)) alertError(`Could not load the rooms`, err);
  }
}
$('rooms-refresh').addEventListener('click', loadRooms);

const VIS = { VISIBILITY_PRIVATE: 'private', VISIBILITY_HIDDEN: 'hidden' };

function renderRooms() {
  const current = state.view?.type === 'room' ? state.view.id : '';
  const items = state.rooms.map((room) => {
    const unread = room.id === current ? 0 : seqOf(room.unreadCount);
    const tag = VIS[room.visibility];
    return el('li', {},
      el('a', { href: `#/room/${enc(room.id)}`, 'aria-current': room.id === current ? 'page' : false, 'data-room': room.name },
        el('span', { class: 'name', text: `# ${room.name}` }),
        tag ? el('span', { class: 'tag', text: tag }) : null,
        unread ? el('span', { class: 'badge', text: String(unread) }) : null,
        unread ? el('span', { class: 'visually-hidden', text: ` ${unread} unread` }) : null));
  });
  $('room-list').replaceChildren(...items);
  $('rooms-empty').hidden = items.length > 0;
}

$('cr-visibility').addEventListener('change', () => {
  const needs = $('cr-visibility').value !== 'VISIBILITY_PUBLIC';
  $('cr-password-row').hidden = !needs;
  $('cr-password').required = needs;
});

$('create-room-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const body = {
    name: $('cr-name').value.trim(),
    description: $('cr-description').value.trim(),
    visibility: $('cr-visibility').value,
  };
  if (body.visibility !== 'VISIBILITY_PUBLIC') body.password = $('cr-password').value;
  if (!body.name) {
    formError(form, $('create-room-error'), new ApiError({ message: 'Give the room a name.', field: 'name' }));
    return;
  }
  busy(form, async () => {
    try {
      const room = await api('POST', '/v1/rooms', { body });
      form.reset();
      $('cr-password-row').hidden = true;
      formError(form, $('create-room-error'), null);
      $('create-room').open = false;
      await loadRooms();
      location.hash = `#/room/${enc(room.id)}`;
    } catch (err) {
      formError(form, $('create-room-error'), err);
    }
  });
});

$('find-room-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('fr-name').value.trim();
  if (!name) {
    formError(e.currentTarget, $('find-room-error'), new ApiError({ message: 'Enter the room name.', field: 'name' }));
    return;
  }
  e.currentTarget.reset();
  formError(e.currentTarget, $('find-room-error'), null);
  location.hash = `#/room/${enc(name)}`;
});

// ---- the conversation pane -------------------------------------------------------

const scroller = $('scroller');
const atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
function keepBottom(fn, force = false) {
  const stick = force || atBottom();
  fn();
  if (stick) scroller.scrollTop = scroller.scrollHeight;
}

function showWelcome() {
  closeView();
  $('welcome').hidden = false;
  $('conv').hidden = true;
  document.title = 'Parley';
  renderRooms();
  renderDms();
  refreshConn();
}

function closeView() {
  const v = state.view;
  if (!v) return;
  state.view = null;
  if (v.type === 'room') flushRead(v);
  if (v.feed) v.feed.stop({ drain: true });
  for (const t of v.typing?.values() || []) clearTimeout(t.timer);
  clearTimeout(v.presenceTimer);
}

function showConv(title, sub) {
  $('welcome').hidden = true;
  $('conv').hidden = false;
  $('conv-title').textContent = title;
  $('conv-sub').textContent = sub || '';
  $('join-form').hidden = true;
  $('presence').hidden = true;
  $('presence-list').replaceChildren();
  $('older').hidden = true;
  $('typing').textContent = '';
  $('log').replaceChildren();
  $('pending').replaceChildren();
  $('composer').hidden = true;
  $('scroller').hidden = false;
}

function enableComposer(label) {
  $('composer').hidden = false;
  $('composer-text').placeholder = label;
  $('composer-text').value = '';
}

// ---- a room -----------------------------------------------------------------------

async function openRoom(ref) {
  closeView();
  const view = { type: 'room', ref, id: '', typing: new Map(), presence: new Map(), readSent: 0, lastTyping: 0 };
  state.view = view;
  showConv(`# ${ref}`, 'Loading…');
  refreshConn();
  try {
    const room = await api('GET', `/v1/rooms/${enc(ref)}`);
    if (state.view !== view) return;
    view.room = room;
    view.id = room.id;
    if (ref !== room.id) history.replaceState(null, '', `#/room/${enc(room.id)}`);
    renderRooms();
    roomHead(view);
    const access = await api('GET', `/v1/rooms/${enc(room.id)}/access/me`);
    if (state.view !== view) return;
    if (!access.allowed) { showJoin(view); return; }
    await enterRoom(view);
  } catch (err) {
    if (state.view !== view) return;
    $('conv-sub').textContent = '';
    alertError(`Cannot open "${ref}"`, err);
    $('scroller').hidden = true;
  }
}

function roomHead(view) {
  const r = view.room;
  const vis = VIS[r.visibility] ? `${VIS[r.visibility]} room` : 'public room';
  const members = seqOf(r.memberCount);
  $('conv-title').textContent = `# ${r.name}`;
  $('conv-sub').textContent = [r.description, `${vis}, ${members} member${members === 1 ? '' : 's'}`].filter(Boolean).join(' · ');
  document.title = `# ${r.name} · Parley`;
}

function showJoin(view) {
  const r = view.room;
  $('scroller').hidden = true;
  $('join-form').hidden = false;
  $('join-password-row').hidden = !r.passwordProtected;
  $('join-text').textContent = r.passwordProtected
    ? `"${r.name}" is a ${VIS[r.visibility] || 'protected'} room. Enter its password to join.`
    : `Join "${r.name}" to read and post.`;
  $('join-error').textContent = '';
  (r.passwordProtected ? $('join-password') : $('join-form').querySelector('button')).focus();
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const view = state.view;
  if (!view || view.type !== 'room') return;
  const form = e.currentTarget;
  busy(form, async () => {
    try {
      const body = view.room.passwordProtected ? { password: $('join-password').value } : {};
      await api('POST', `/v1/rooms/${enc(view.id)}/members`, { body });
      $('join-password').value = '';
      if (state.view !== view) return;
      $('join-form').hidden = true;
      $('scroller').hidden = false;
      await enterRoom(view);
      loadRooms();
    } catch (err) {
      $('join-error').textContent = describe(err);
      $('join-password').setAttribute('aria-invalid', 'true');
      $('join-password').focus();
    }
  });
});

async function enterRoom(view) {
  const log = $('log');
  view.timeline = new Timeline(log, $('pending'), {
    me: me(), editable: true, order: 'seq',
    onEdit: (id, text) => view.feed.edit(id, text),
    onDelete: (id) => view.feed.remove(id),
  });
  log.setAttribute('aria-busy', 'true');
  const page = await api('GET', `/v1/rooms/${enc(view.id)}/messages?n=${HISTORY_PAGE}`);
  if (state.view !== view) return;
  for (const ev of page.messages || []) view.timeline.add(ev);
  $('older').hidden = !page.hasOlder;
  const readSeq = seqOf(view.room.readSequence);
  view.readSent = readSeq;
  if (readSeq) view.timeline.divider(readSeq);
  log.removeAttribute('aria-busy');
  if (!view.timeline.size) view.timeline.empty('No messages yet. Say hello!');
  const divider = log.querySelector('.divider');
  if (divider) divider.scrollIntoView({ block: 'center' });
  else scroller.scrollTop = scroller.scrollHeight;

  view.feed = new Feed({
    session,
    room: view.id,
    after: view.timeline.lastSeq,
    onEvent: (ev) => { if (state.view === view) roomEvent(view, ev); },
    onState: (s, info) => {
      view.feed.lastInfo = info;
      if (state.view !== view) return;
      refreshConn();
      renderPending(view);
      if (s === 'live') { loadPresence(view); markRead(view); }
    },
    onOutbox: () => { if (state.view === view) renderPending(view); },
    onAck: (item, ev) => {
      if (state.view !== view || !ev || !ev.id) return;
      keepBottom(() => view.timeline.add(ev), true);
      markRead(view);
    },
    onFatal: (err) => {
      if (err.status === 401) { session.expired(); return; }
      if (state.view !== view) return;
      alertError(`You can no longer read "${view.room.name}"`, err);
      location.hash = '#/';
      loadRooms();
    },
  });
  view.feed.start();
  enableComposer(`Message # ${view.room.name}`);
  $('composer-text').focus();
}

function roomEvent(view, ev) {
  const tl = view.timeline;
  switch (ev.kind) {
    case 'EVENT_KIND_MESSAGE':
      keepBottom(() => tl.add(ev));
      stopTyping(view, ev.senderId || ev.sender);
      markRead(view);
      break;
    case 'EVENT_KIND_EDIT':
      tl.edit(ev.targetId, ev.text, ev.createTime);
      break;
    case 'EVENT_KIND_DELETE':
      tl.remove(ev.targetId);
      break;
    case 'EVENT_KIND_PURGE': {
      const through = seqOf(ev.purgeThroughSequence);
      tl.purge(through);
      tl.system(`${ev.sender || 'The owner'} removed the history up to message ${through}.`, seqOf(ev.sequence));
      break;
    }
    case 'EVENT_KIND_JOIN':
      if (ev.sender) {
        view.presence.set(ev.senderId || ev.sender, { name: ev.sender, userId: ev.senderId });
        renderPresence(view);
      }
      break;
    case 'EVENT_KIND_LEAVE':
      // One person may have several connections: ask who is still here.
      clearTimeout(view.presenceTimer);
      view.presenceTimer = setTimeout(() => loadPresence(view), 300);
      break;
    case 'EVENT_KIND_TYPING':
      showTyping(view, ev);
      break;
    case 'EVENT_KIND_GAP':
      fillGap(view, seqOf(ev.gapFirstSequence), seqOf(ev.gapLastSequence));
      break;
    case 'EVENT_KIND_MEMBER_ADDED':
      keepBottom(() => tl.system(`${ev.sender || 'Someone'} became a member.`));
      break;
    case 'EVENT_KIND_MEMBER_REMOVED':
      keepBottom(() => tl.system('A member left the room.'));
      break;
    default:
      break;
  }
}

// The server could not queue some events for this page: read them from history.
async function fillGap(view, first, last) {
  if (!first || last < first) return;
  let after = first - 1;
  try {
    while (after < last && state.view === view) {
      const n = Math.min(1000, last - after);
      const page = await api('GET', `/v1/rooms/${enc(view.id)}/messages?after=${after}&n=${n}`);
      const msgs = page.messages || [];
      keepBottom(() => { for (const ev of msgs) if (seqOf(ev.sequence) <= last) view.timeline.add(ev); });
      if (!msgs.length || !page.hasNewer) break;
      after = seqOf(msgs[msgs.length - 1].sequence);
    }
  } catch (err) {
    alertError(`Some messages could not be loaded`, err);
  }
}

$('older').addEventListener('click', async () => {
  const view = state.view;
  if (!view || view.type !== 'room' || !view.timeline) return;
  const before = view.timeline.firstSeq;
  if (!before) return;
  try {
    const page = await api('GET', `/v1/rooms/${enc(view.id)}/messages?n=${HISTORY_PAGE}&before=${before}`);
    if (state.view !== view) return;
    const height = scroller.scrollHeight;
    for (const ev of page.messages || []) view.timeline.add(ev);
    scroller.scrollTop += scroller.scrollHeight - height;
    $('older').hidden = !page.hasOlder;
  } catch (err) {
    alertError(`Could not load older messages`, err);
  }
});

// ---- presence and typing -------------------------------------------------------------

async function loadPresence(view) {
  if (view.type !== 'room') return;
  try {
    const r = await api('GET', `/v1/rooms/${enc(view.id)}/presence`);
    if (state.view !== view) return;
    view.presence = new Map((r.users || []).map((u) => [u.userId || u.name, { name: u.name, userId: u.userId }]));
    renderPresence(view);
  } catch {
    // Presence is a nicety: without it the room still works.
  }
}

function renderPresence(view) {
  const people = [...view.presence.values()].sort((a, b) => a.name.localeCompare(b.name));
  $('presence-list').replaceChildren(...people.map((p) => el('li', { text: p.userId && p.userId === me() ? `${p.name} (you)` : p.name })));
  $('presence').hidden = people.length === 0;
}

function showTyping(view, ev) {
  const key = ev.senderId || ev.sender;
  if (!key || (ev.senderId && ev.senderId === me())) return;
  const now = Date.now();
  let until = Date.parse(ev.typingExpireTime);
  if (Number.isNaN(until)) until = now + 6_000;
  until = Math.min(Math.max(until, now + 1_000), now + 30_000); // a skewed clock
  const old = view.typing.get(key);
  if (old) clearTimeout(old.timer);
  view.typing.set(key, { name: ev.sender || 'Someone', timer: setTimeout(() => stopTyping(view, key), until - now) });
  renderTyping(view);
}

function stopTyping(view, key) {
  const t = view.typing.get(key);
  if (!t) return;
  clearTimeout(t.timer);
  view.typing.delete(key);
  renderTyping(view);
}

function renderTyping(view) {
  if (state.view !== view) return;
  const names = [...view.typing.values()].map((t) => t.name);
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  $('typing').textContent = text;
}

// ---- read markers -------------------------------------------------------------------

function markRead(view) {
  if (view.type !== 'room' || !view.feed || state.view !== view) return;
  if (document.visibilityState !== 'visible' || !atBottom()) return;
  const seq = view.timeline.lastSeq;
  if (seq <= view.readSent) return;
  view.readWant = seq;
  clearTimeout(view.readTimer);
  view.readTimer = setTimeout(() => flushRead(view), 300);
}

// Sends the read marker markRead has been holding back, if any.
function flushRead(view) {
  clearTimeout(view.readTimer);
  if (!view.feed || !(view.readWant > view.readSent)) return;
  view.readSent = view.readWant;
  view.feed.read(view.readSent);
}
document.addEventListener('visibilitychange', () => { if (state.view) markRead(state.view); });
scroller.addEventListener('scroll', () => { if (state.view) markRead(state.view); }, { passive: true });

// ---- the composer ---------------------------------------------------------------------

function renderPending(view) {
  if (!view.timeline) return;
  if (view.type === 'room') {
    if (!view.feed) return;
    keepBottom(() => view.timeline.showPending(view.feed.outbox, view.feed, view.feed.state === 'live'));
  } else if (state.dmFeed) {
    const f = state.dmFeed;
    keepBottom(() => view.timeline.showPending(f.outbox.filter((i) => i.user === view.userId), f, f.state === 'live'));
  }
}

function sendFromComposer() {
  const view = state.view;
  const box = $('composer-text');
  const text = box.value.trim();
  if (!view || !text) return;
  if (view.type === 'room') {
    if (!view.feed) return;
    view.feed.send(text);
  } else {
    if (!state.dmFeed) return;
    state.dmFeed.send(text, view.userId);
  }
  view.lastTyping = 0;
  box.value = '';
  box.focus();
  keepBottom(() => renderPending(view), true);
}

$('composer').addEventListener('submit', (e) => { e.preventDefault(); sendFromComposer(); });
$('composer-text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendFromComposer(); }
});
$('composer-text').addEventListener('input', () => {
  const view = state.view;
  if (!view || !$('composer-text').value.trim()) return;
  const now = Date.now();
  if (now - view.lastTyping < TYPING_EVERY_MS) return;
  view.lastTyping = now;
  if (view.type === 'room') view.feed?.typing();
  else state.dmFeed?.typing(view.userId);
});

// ---- direct messages -------------------------------------------------------------------

/**
 * Files a direct message under the other person's conversation. The inbox
 * holds both sides: what others sent me, and the server's copy of what I
 * sent (its targetId is the id of the message the send's ack carried), so
 * an ack and its copy are one message.
 */
function fileDm(ev) {
  const mine = ev.senderId === me();
  const key = mine && ev.targetId ? ev.targetId : ev.id;
  const otherId = mine ? ev.recipientId : ev.senderId;
  if (!otherId) return null;
  let conv = state.dms.get(otherId);
  if (!conv) {
    conv = { id: otherId, name: mine ? ev.recipient : ev.sender, username: mine ? ev.recipient : '', events: new Map(), unread: 0 };
    state.dms.set(otherId, conv);
  }
  if (!mine && ev.sender) conv.name = ev.sender;
  if (conv.events.has(key)) return null;
  conv.events.set(key, ev);
  conv.last = Math.max(conv.last || 0, Date.parse(ev.createTime) || 0);
  return conv;
}

async function startDms() {
  let after = 0;
  try {
    const page = await api('GET', `/v1/direct-messages?n=100`);
    for (const ev of page.messages || []) {
      fileDm(ev);
      after = Math.max(after, seqOf(ev.sequence));
    }
  } catch (err) {
    if (!(err instanceof ApiError && err.network)) alertError(`Could not load your direct messages`, err);
  }
  if (!session.signedIn) return;
  renderDms();
  const feed = new Feed({
    session,
    after,
    onEvent: dmEvent,
    onState: (s, info) => {
      feed.lastInfo = info;
      if (state.view?.type !== 'room') refreshConn();
      if (state.view?.type === 'dm') renderPending(state.view);
    },
    onOutbox: () => { if (state.view?.type === 'dm') renderPending(state.view); },
    onAck: (item, ev) => {
      if (!ev || !ev.id) return;
      const conv = fileDm(ev);
      const v = state.view;
      if (conv && v?.type === 'dm' && v.userId === conv.id) keepBottom(() => v.timeline.add(ev), true);
      renderDms();
    },
    onFatal: (err) => {
      if (err.status === 401) session.expired();
      else alertError(`Direct messages stopped`, err);
    },
  });
  state.dmFeed = feed;
  feed.start();
  if (state.view?.type === 'dm') openDm(state.view.userId);
}

function dmEvent(ev) {
  const v = state.view;
  const open = v?.type === 'dm' ? v : null;
  switch (ev.kind) {
    case 'EVENT_KIND_MESSAGE': {
      const conv = fileDm(ev);
      if (!conv) return;
      if (open && open.userId === conv.id) {
        keepBottom(() => open.timeline.add(ev));
        stopTyping(open, ev.senderId || ev.sender);
        if (document.visibilityState !== 'visible') conv.unread++;
      } else if (ev.senderId !== me()) {
        conv.unread++;
      }
      renderDms();
      break;
    }
    case 'EVENT_KIND_TYPING':
      if (open && ev.senderId === open.userId) showTyping(open, ev);
      break;
    case 'EVENT_KIND_GAP':
      fillDmGap(seqOf(ev.gapFirstSequence), seqOf(ev.gapLastSequence));
      break;
    default:
      break;
  }
}

async function fillDmGap(first, last) {
  if (!first || last < first) return;
  try {
    const page = await api('GET', `/v1/direct-messages?after=${first - 1}&n=${Math.min(1000, last - first + 1)}`);
    for (const ev of page.messages || []) if (seqOf(ev.sequence) <= last) dmEvent(ev);
  } catch (err) {
    alertError(`Some direct messages could not be loaded`, err);
  }
}

document.addEventListener('visibilitychange', () => {
  const v = state.view;
  if (document.visibilityState === 'visible' && v?.type === 'dm') {
    const conv = state.dms.get(v.userId);
    if (conv && conv.unread) { conv.unread = 0; renderDms(); }
  }
});

function renderDms() {
  const current = state.view?.type === 'dm' ? state.view.userId : '';
  const convs = [...state.dms.values()].sort((a, b) => (b.last || 0) - (a.last || 0));
  $('dm-list').replaceChildren(...convs.map((c) => el('li', {},
    el('a', { href: `#/dm/${enc(c.id)}`, 'aria-current': c.id === current ? 'page' : false, 'data-user': c.username || c.name },
      el('span', { class: 'name', text: c.name || c.username || 'someone' }),
      c.unread ? el('span', { class: 'badge', text: String(c.unread) }) : null,
      c.unread ? el('span', { class: 'visually-hidden', text: ` ${c.unread} unread` }) : null))));
}

async function loadUserNames() {
  try {
    const r = await api('GET', '/v1/users?pageSize=1000');
    $('user-names').replaceChildren(...(r.users || []).filter((u) => u.id !== me())
      .map((u) => el('option', { value: u.username, label: u.displayName })));
  } catch { /* only a convenience */ }
}

$('open-dm-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const name = $('dm-user').value.trim().replace(/^@/, '');
  if (!name) {
    formError(form, $('open-dm-error'), new ApiError({ message: 'Enter a username.', field: 'user' }));
    return;
  }
  busy(form, async () => {
    try {
      const user = await api('GET', `/v1/users/${enc(name)}`);
      form.reset();
      formError(form, $('open-dm-error'), null);
      location.hash = `#/dm/${enc(user.id)}`;
    } catch (err) {
      formError(form, $('open-dm-error'), err.status === 404 ? new ApiError({ message: `There is no user "${name}".`, field: 'user' }) : err);
    }
  });
});

async function openDm(userId) {
  closeView();
  const view = { type: 'dm', userId, typing: new Map(), lastTyping: 0 };
  state.view = view;
  showConv('Direct messages', 'Loading…');
  refreshConn();
  let conv = state.dms.get(userId);
  try {
    const user = await api('GET', `/v1/users/${enc(userId)}`);
    if (state.view !== view) return;
    if (user.id !== userId) { location.replace(`#/dm/${enc(user.id)}`); return; }
    if (!conv) {
      conv = { id: user.id, name: user.displayName, username: user.username, events: new Map(), unread: 0 };
      state.dms.set(user.id, conv);
    }
    conv.name = user.displayName || user.username;
    conv.username = user.username;
  } catch (err) {
    if (state.view !== view) return;
    alertError(`Cannot open the conversation`, err);
    $('conv-sub').textContent = '';
    return;
  }
  conv.unread = 0;
  $('conv-title').textContent = conv.name;
  $('conv-sub').textContent = `Direct messages with @${conv.username}`;
  document.title = `${conv.name} · Parley`;
  renderDms();
  renderRooms();
  view.timeline = new Timeline($('log'), $('pending'), { me: me(), editable: false, order: 'time' });
  for (const ev of conv.events.values()) view.timeline.add(ev);
  if (!view.timeline.size) view.timeline.empty(`This is the start of your conversation with ${conv.name}.`);
  scroller.scrollTop = scroller.scrollHeight;
  enableComposer(`Message ${conv.name}`);
  renderPending(view);
  $('composer-text').focus();
}

// ---- start ---------------------------------------------------------------------------------

if (session.signedIn) startApp();
else showSignin('');
