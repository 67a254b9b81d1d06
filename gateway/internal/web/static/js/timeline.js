// The messages of one conversation, in order, as DOM: messages from history
// and live events, edits (with their earlier versions), tombstones, purges,
// and the sends still on their way. Text is only ever set as textContent.
import { seqOf, describe } from './api.js';

const timeFmt = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat([], { dateStyle: 'medium', timeStyle: 'medium' });

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

function timeEl(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return el('time', { text: '' });
  return el('time', { datetime: d.toISOString(), title: fullFmt.format(d), text: timeFmt.format(d) });
}

let uid = 0;

export class Timeline {
  /**
   * @param {HTMLOListElement} list     the log
   * @param {HTMLOListElement} pending  sends on their way
   * @param {object} o
   * @param {string} o.me               my user id
   * @param {boolean} o.editable        messages may be edited and deleted
   * @param {'seq'|'time'} o.order      by room sequence, or by time (direct messages)
   */
  constructor(list, pending, o) {
    this.list = list;
    this.pendingList = pending;
    this.o = o;
    this.items = new Map(); // message id -> {ev, el, key}
    list.replaceChildren();
    pending.replaceChildren();
  }

  get size() { return this.items.size; }

  /** The lowest and highest room sequence numbers shown. */
  get firstSeq() {
    let min = 0;
    for (const { ev } of this.items.values()) {
      const s = seqOf(ev.sequence);
      if (s && (!min || s < min)) min = s;
    }
    return min;
  }

  get lastSeq() {
    let max = 0;
    for (const { ev } of this.items.values()) max = Math.max(max, seqOf(ev.sequence));
    return max;
  }

  has(id) { return this.items.has(id); }

  #key(ev) {
    if (this.o.order === 'time') {
      const t = Date.parse(ev.createTime);
      return Number.isNaN(t) ? Date.now() : t;
    }
    return seqOf(ev.sequence);
  }

  // Inserts node so that the data-key values stay ascending.
  #place(node, key) {
    node.dataset.key = String(key);
    let after = this.list.lastElementChild;
    while (after && Number(after.dataset.key) > key) after = after.previousElementSibling;
    if (after) after.after(node);
    else this.list.prepend(node);
  }

  /** A message (from history or live): added, or replaced when known. */
  add(ev) {
    if (!ev || !ev.id) return;
    const known = this.items.get(ev.id);
    if (known) {
      // A live copy of what history showed, or an ack of my own send.
      // History may know more: an edit or a delete this page did not see.
      const changed = (ev.deleted && !known.ev.deleted)
        || (ev.updateTime && ev.updateTime !== known.ev.updateTime && ev.text !== known.ev.text)
        || (ev.previousVersions?.length || 0) > (known.ev.previousVersions?.length || 0);
      if (changed) { known.ev = { ...known.ev, ...ev }; this.#render(known); }
      return;
    }
    this.placeholder?.remove();
    this.placeholder = null;
    const item = { ev: { ...ev }, el: el('li'), key: this.#key(ev) };
    this.items.set(ev.id, item);
    this.#render(item);
    this.#place(item.el, item.key);
  }

  /** An edit event: the message's new text; the old one joins its history. */
  edit(targetId, text, when) {
    const item = this.items.get(targetId);
    if (!item || item.ev.deleted || item.ev.text === text) return;
    const versions = [...(item.ev.previousVersions || [])];
    versions.push({ text: item.ev.text, createTime: item.ev.updateTime || item.ev.createTime });
    item.ev = { ...item.ev, text, updateTime: when || new Date().toISOString(), previousVersions: versions };
    this.#render(item);
  }

  /** A delete event: the message becomes a tombstone. */
  remove(targetId) {
    const item = this.items.get(targetId);
    if (!item || item.ev.deleted) return;
    item.ev = { ...item.ev, deleted: true, text: '', previousVersions: [] };
    this.#render(item);
  }

  /** A purge event: every message up to `through` is gone for good. */
  purge(through) {
    for (const [id, item] of this.items) {
      if (seqOf(item.ev.sequence) <= through) { item.el.remove(); this.items.delete(id); }
    }
    for (const d of this.list.querySelectorAll('.divider')) if (Number(d.dataset.key) <= through) d.remove();
  }

  /** A note shown until the first message arrives. */
  empty(text) {
    this.placeholder = el('li', { class: 'sys', text });
    this.#place(this.placeholder, 0);
  }

  /** A line about the room rather than a message. */
  system(text, key) {
    const node = el('li', { class: 'sys', text });
    this.#place(node, key ?? (Number(this.list.lastElementChild?.dataset.key) || 0));
    return node;
  }

  /** "New messages" before the first message after `readSeq` that someone else wrote. */
  divider(readSeq) {
    const first = [...this.items.values()]
      .filter((i) => seqOf(i.ev.sequence) > readSeq && i.ev.senderId !== this.o.me && !i.ev.deleted)
      .sort((a, b) => a.key - b.key)[0];
    if (!first) return;
    const node = el('li', { class: 'divider', role: 'separator' }, el('span', { text: 'New messages' }));
    this.#place(node, first.key - 0.5);
  }

  #render(item) {
    const { ev } = item;
    const mine = !!this.o.me && ev.senderId === this.o.me;
    const textId = `t${++uid}`;
    const li = item.el;
    li.className = `msg${mine ? ' mine' : ''}${ev.deleted ? ' deleted' : ''}`;
    li.dataset.id = ev.id;
    if (seqOf(ev.sequence)) li.dataset.seq = String(seqOf(ev.sequence));
    if (ev.color && /^#[0-9a-fA-F]{6}$/.test(ev.color)) li.style.setProperty('--sender', ev.color);

    const meta = el('div', { class: 'meta' },
      el('span', { class: 'sender', text: mine ? `${ev.sender || 'me'} (you)` : (ev.sender || 'unknown') }),
      timeEl(ev.createTime));
    const versions = ev.previousVersions || [];
    if (!ev.deleted && (ev.updateTime || versions.length)) {
      if (versions.length) {
        const list = el('ol');
        for (const v of versions) {
          list.append(el('li', {}, timeEl(v.createTime), ' ', el('span', { text: v.text })));
        }
        const titled = versions.map((v) => v.text).join('\n');
        meta.append(el('details', { class: 'history', title: `Earlier versions:\n${titled}` },
          el('summary', { class: 'edited', text: '(edited)' }),
          el('p', { class: 'visually-hidden', text: 'Earlier versions, oldest first:' }), list));
      } else {
        meta.append(el('span', { class: 'edited state', text: '(edited)' }));
      }
    }
    const text = el('p', { class: 'text', id: textId, text: ev.deleted ? 'message deleted' : ev.text });
    if (mine && !ev.deleted && this.o.editable) {
      meta.append(el('span', { class: 'actions' },
        el('button', { type: 'button', class: 'link', 'aria-describedby': textId, onclick: () => this.#startEdit(item) }, 'Edit'),
        el('button', { type: 'button', class: 'link', 'aria-describedby': textId, onclick: () => this.#confirmDelete(item) }, 'Delete')));
    }
    li.replaceChildren(meta, text);
  }

  #startEdit(item) {
    const li = item.el;
    const text = li.querySelector('.text');
    const error = el('p', { class: 'form-error', 'aria-live': 'assertive' });
    const area = el('textarea', { rows: 2, 'aria-label': 'Edit your message', maxlength: 4096 });
    area.value = item.ev.text;
    const cancel = () => { this.#render(item); li.querySelector('.actions button')?.focus(); };
    const save = async () => {
      const value = area.value.trim();
      if (!value) { error.textContent = 'A message cannot be empty: delete it instead.'; return; }
      if (value === item.ev.text) { cancel(); return; }
      form.querySelectorAll('button, textarea').forEach((b) => { b.disabled = true; });
      try {
        await this.o.onEdit(item.ev.id, value);
        this.edit(item.ev.id, value);
        li.querySelector('.actions button')?.focus();
      } catch (err) {
        form.querySelectorAll('button, textarea').forEach((b) => { b.disabled = false; });
        error.textContent = describe(err);
        area.focus();
      }
    };
    const form = el('form', { class: 'edit-form', onsubmit: (e) => { e.preventDefault(); save(); } },
      area, el('button', { type: 'submit' }, 'Save'),
      el('button', { type: 'button', class: 'link', onclick: cancel }, 'Cancel'));
    area.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.preventDefault(); cancel(); }
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); save(); }
    });
    text.replaceWith(form, error);
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  #confirmDelete(item) {
    const actions = item.el.querySelector('.actions');
    const error = el('span', { class: 'form-error', role: 'alert' });
    const keep = el('button', { type: 'button', class: 'link', onclick: () => { this.#render(item); item.el.querySelector('.actions button')?.focus(); } }, 'Keep');
    const yes = el('button', {
      type: 'button', class: 'danger small',
      onclick: async () => {
        yes.disabled = true;
        try {
          await this.o.onDelete(item.ev.id);
          this.remove(item.ev.id);
        } catch (err) {
          yes.disabled = false;
          error.textContent = describe(err);
        }
      },
    }, 'Yes, delete');
    actions.replaceChildren(el('span', { text: 'Delete this message?' }), yes, keep, error);
    yes.focus();
  }

  /** Shows the sends still on their way (`items` from the feed's outbox). */
  showPending(items, feed, online) {
    const nodes = items.map((item) => {
      let state;
      let controls = null;
      if (item.failed) {
        state = `Not sent: ${describe(item.failed)}`;
        controls = el('span', { class: 'actions' },
          el('button', { type: 'button', class: 'link', onclick: () => feed.retry(item) }, 'Retry'),
          el('button', { type: 'button', class: 'link', onclick: () => feed.discard(item) }, 'Discard'));
      } else {
        state = online ? 'sending…' : 'waiting for the connection…';
      }
      return el('li', { class: `msg mine pending${item.failed ? ' failed' : ''}`, 'data-pending': item.key },
        el('div', { class: 'meta' }, el('span', { class: 'sender', text: 'You' }),
          el('span', { class: 'state', text: state }), controls),
        el('p', { class: 'text', text: item.text }));
    });
    this.pendingList.replaceChildren(...nodes);
  }
}
