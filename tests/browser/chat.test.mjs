// Two people chat through the browser page the gateway serves at /: they
// sign up, share a room, see each other's messages, typing and presence,
// edit and delete, write direct messages, and one of them drops off the
// network and comes back without losing or doubling a message. Also: an
// acknowledgement lost on the way (the send is retried with its key and
// stored once), a private room's password, unread counts and the read
// marker, the NDJSON stream where WebSocket fails, a purge, a token revoked
// elsewhere, and signing out.
//
// Run by `make test-browser`. Every wait is for a condition on the page,
// with a deadline; nothing sleeps. PARLEY_SCREENSHOTS=1 also writes
// docs/screenshots/{signin,room,dm}.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, stopStack, launchChromium } from './harness.mjs';

const WAIT_MS = 15_000;
const SHOTS = process.env.PARLEY_SCREENSHOTS === '1';
const SHOT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../docs/screenshots');
const VIEWPORT = { width: 1180, height: 760 };

let stack;
let browser;
let failed = false;
const pageErrors = [];

before(async () => {
  stack = await startStack();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (stack) await stopStack(stack, failed);
});

async function newPerson(name) {
  const context = await browser.newContext({ viewport: VIEWPORT, reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  return { name, context, page, sockets };
}

async function shot(page, file) {
  if (!SHOTS) return;
  mkdirSync(SHOT_DIR, { recursive: true });
  await page.screenshot({ path: resolve(SHOT_DIR, file) });
}

/** The texts of the committed messages shown, in order. */
const shownTexts = (page) => page.$$eval('#log li.msg[data-seq]', (els) => els.map((e) => e.querySelector('.text')?.textContent ?? ''));

/** Waits until the committed messages shown are exactly `texts`, in order. */
async function waitMessages(page, texts) {
  try {
    await page.waitForFunction((want) => {
      const got = [...document.querySelectorAll('#log li.msg[data-seq]')].map((e) => e.querySelector('.text')?.textContent ?? '');
      return got.length === want.length && got.every((t, i) => t === want[i]);
    }, texts, { timeout: WAIT_MS });
  } catch (err) {
    assert.deepEqual(await shownTexts(page), texts, `${err.message}`);
    throw err;
  }
}

async function waitLive(page) {
  await page.locator('#conn[data-state="live"]').waitFor();
}

async function send(page, text) {
  const box = page.locator('#composer-text');
  await box.fill(text);
  await box.press('Enter');
}

function message(page, text) {
  const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return page.locator('#log li.msg', { has: page.locator('.text', { hasText: exact }) });
}

test('two people chat in the browser, live, through a network drop', { timeout: 300_000 }, async (t) => {
  const ann = await newPerson('ann');
  const bob = await newPerson('bob');
  // Every step is a subtest. Steps build on each other: after the first
  // failure the rest are skipped, and the stack's logs are printed.
  const step = (name, fn) => t.test(name, { skip: failed && 'an earlier step failed' }, async () => {
    try { await fn(); } catch (err) { failed = true; throw err; }
  });

  await step('the page loads with landmarks and labelled controls', async () => {
    const res = await ann.page.goto(`${stack.url}/`);
    assert.equal(res.status(), 200);
    await ann.page.locator('#signin:not([hidden])').waitFor();
    const report = await ann.page.evaluate(() => {
      const unlabelled = [...document.querySelectorAll('input, textarea, select')]
        .filter((e) => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label'))
        .map((e) => e.id || e.name);
      return {
        unlabelled,
        banner: !!document.querySelector('header[role="banner"], body > header'),
        nav: !!document.querySelector('nav'),
        mains: document.querySelectorAll('main').length,
        log: document.querySelector('#log')?.getAttribute('role'),
        lang: document.documentElement.lang,
      };
    });
    assert.deepEqual(report, { unlabelled: [], banner: true, nav: true, mains: 2, log: 'log', lang: 'en' });
    await shot(ann.page, 'signin.png');
  });

  await step('a wrong password shows the server\'s error', async () => {
    const { page } = ann;
    await page.fill('#si-username', 'nobody');
    await page.fill('#si-password', 'wrong password');
    await page.click('#signin-form button[type="submit"]');
    await page.locator('#signin-error').filter({ hasText: /\S/ }).waitFor();
    assert.equal(await page.locator('#app').isHidden(), true);
  });

  await step('both sign up through the page', async () => {
    for (const [p, username, display] of [[ann, 'ann', 'Ann'], [bob, 'bob', 'Bob']]) {
      if (p === bob) await p.page.goto(`${stack.url}/`);
      await p.page.fill('#su-username', username);
      await p.page.fill('#su-display', display);
      await p.page.fill('#su-password', `${username} correct horse`);
      await p.page.click('#signup-form button[type="submit"]');
      await p.page.locator('#app:not([hidden])').waitFor();
      assert.equal(await p.page.textContent('#me-name'), `${display} (@${username})`);
      const stored = await p.page.evaluate(() => JSON.parse(sessionStorage.getItem('parley.session')));
      assert.equal(stored.user.username, username);
      assert.ok(stored.token);
    }
  });

  await step('ann creates a room; both enter it and see each other online', async () => {
    const a = ann.page;
    await a.click('#create-room summary');
    await a.fill('#cr-name', 'general');
    await a.fill('#cr-description', 'Everything and nothing');
    await a.click('#create-room-form button[type="submit"]');
    await a.locator('#conv-title', { hasText: '# general' }).waitFor();
    await a.locator('#composer:not([hidden])').waitFor();
    await waitLive(a);

    const b = bob.page;
    await b.click('#rooms-refresh');
    await b.click('#room-list a[data-room="general"]');
    await b.locator('#conv-title', { hasText: '# general' }).waitFor();
    await waitLive(b);
    assert.equal(await b.getAttribute('#conn', 'data-transport'), 'ws', 'the page prefers WebSocket');

    await a.locator('#presence-list li', { hasText: /^Bob$/ }).waitFor();
    await b.locator('#presence-list li', { hasText: /^Ann$/ }).waitFor();
    await b.locator('#presence-list li', { hasText: 'Bob (you)' }).waitFor();
  });

  const room = [];
  await step('messages reach the other side, in order', async () => {
    await send(ann.page, 'Hi Bob!');
    room.push('Hi Bob!');
    await waitMessages(bob.page, room);

    // Typing shows on the other side, and ends when the message arrives.
    await bob.page.locator('#composer-text').pressSequentially('Hello Ann', { delay: 5 });
    await ann.page.locator('#typing', { hasText: 'Bob is typing…' }).waitFor();
    await bob.page.locator('#composer-text').press('Enter');
    room.push('Hello Ann');
    await waitMessages(ann.page, room);
    await ann.page.locator('#typing').filter({ hasText: /^$/ }).waitFor();

    for (const text of ['one', 'two', 'three']) await send(ann.page, text);
    room.push('one', 'two', 'three');
    await waitMessages(bob.page, room);
    await waitMessages(ann.page, room);
    const seqs = await bob.page.$$eval('#log li.msg[data-seq]', (els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual([...seqs].sort((x, y) => x - y), seqs, 'shown in sequence order');
    assert.equal(await ann.page.locator('#pending li').count(), 0, 'nothing left pending');
  });

  await step('ann edits and deletes her own messages; bob sees both', async () => {
    const a = ann.page;
    await message(a, 'one').getByRole('button', { name: 'Edit' }).click();
    const box = a.getByRole('textbox', { name: 'Edit your message' });
    await box.fill('one, edited');
    await box.press('Enter');
    room[room.indexOf('one')] = 'one, edited';
    await waitMessages(bob.page, room);
    const edited = message(bob.page, 'one, edited');
    await edited.locator('.edited').waitFor();
    // Bob cannot edit Ann's message.
    assert.equal(await edited.getByRole('button', { name: 'Edit' }).count(), 0);

    await message(a, 'two').getByRole('button', { name: 'Delete' }).click();
    await message(a, 'two').getByRole('button', { name: 'Yes, delete' }).click();
    room[room.indexOf('two')] = 'message deleted';
    await waitMessages(bob.page, room);
    await waitMessages(a, room);
    assert.equal(await bob.page.locator('#log li.msg.deleted').count(), 1);

    // A fresh load shows the earlier version from history.
    await bob.page.reload();
    await waitLive(bob.page);
    await waitMessages(bob.page, room);
    const history = message(bob.page, 'one, edited').locator('details.history');
    await history.locator('summary').click();
    await history.locator('li', { hasText: /one$/ }).waitFor();
  });

  await step('a direct message goes both ways', async () => {
    const a = ann.page;
    await a.fill('#dm-user', 'bob');
    await a.click('#open-dm-form button[type="submit"]');
    await a.locator('#conv-title', { hasText: 'Bob' }).waitFor();
    await send(a, 'psst, Bob');
    await a.locator('#log li.msg .text', { hasText: 'psst, Bob' }).waitFor();

    const b = bob.page;
    const link = b.locator('#dm-list a', { hasText: 'Ann' });
    await link.locator('.badge', { hasText: '1' }).waitFor();
    await link.click();
    await b.locator('#log li.msg .text', { hasText: 'psst, Bob' }).waitFor();
    await b.locator('#composer-text').pressSequentially('hi Ann', { delay: 5 });
    await a.locator('#typing', { hasText: 'Bob is typing…' }).waitFor();
    await b.locator('#composer-text').press('Enter');
    await a.locator('#log li.msg .text', { hasText: 'hi Ann' }).waitFor();
    await b.locator('#log li.msg .text', { hasText: 'hi Ann' }).waitFor();
    assert.deepEqual(await b.$$eval('#log li.msg .text', (els) => els.map((e) => e.textContent)), ['psst, Bob', 'hi Ann']);
    await shot(b, 'dm.png');
  });

  await step('bob drops off the network and comes back with every message exactly once', async () => {
    const a = ann.page;
    const b = bob.page;
    await a.click('#room-list a[data-room="general"]');
    await b.click('#room-list a[data-room="general"]');
    await waitLive(a);
    await waitLive(b);
    await waitMessages(b, room);
    await b.evaluate(() => { window.notReloaded = true; });
    const socketsBefore = bob.sockets.length;

    await bob.context.setOffline(true);
    await b.locator('#conn[data-state="offline"]').waitFor();
    // Written while offline: shown as pending, sent once the network is back.
    await send(b, 'written offline');
    await b.locator('#pending li', { hasText: 'written offline' }).waitFor();

    const missed = ['missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5'];
    for (const text of missed) await send(a, text);
    await waitMessages(a, [...room, ...missed]);
    assert.deepEqual(await shownTexts(b), room, 'nothing arrives while offline');

    await bob.context.setOffline(false);
    room.push(...missed, 'written offline');
    await waitLive(b);
    await waitMessages(b, room);
    await waitMessages(a, room);
    await b.locator('#pending li').first().waitFor({ state: 'detached' });
    assert.ok(bob.sockets.length > socketsBefore, 'a new socket was opened');
    const resumedAt = Number(new URL(bob.sockets.at(-1)).searchParams.get('after_sequence'));
    assert.ok(resumedAt >= room.length - 6, `resumed after the last sequence seen, not from scratch (${resumedAt})`);
    assert.equal(await b.evaluate(() => window.notReloaded), true, 'the page was not reloaded');

    // The new connection is live both ways.
    await send(a, 'after the drop');
    room.push('after the drop');
    await waitMessages(b, room);

  });

  await step('a send whose acknowledgement is lost is sent again with its key and stored once', async () => {
    const a = ann.page;
    // Ann's room socket goes through a relay that swallows the ack of one
    // send and then breaks the connection (4503: reconnect), as a network
    // drop after the commit would.
    let swallowed = 0;
    await a.routeWebSocket(/\/v1\/rooms\/[^/?]+:ws/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => server.send(m));
      server.onMessage((m) => {
        const f = JSON.parse(m);
        if (f.type === 'ack' && f.event?.text === 'acknowledged late' && swallowed === 0) {
          swallowed++;
          ws.close({ code: 4503, reason: 'UNAVAILABLE' });
          server.close();
          return;
        }
        ws.send(m);
      });
    });
    const before = ann.sockets.length;
    await a.locator('#dm-list a', { hasText: 'Bob' }).click();
    await a.locator('#conv-title', { hasText: 'Bob' }).waitFor();
    await a.click('#room-list a[data-room="general"]');
    await waitLive(a);
    await send(a, 'acknowledged late');
    room.push('acknowledged late');
    await waitMessages(bob.page, room);
    await waitMessages(a, room);
    await a.locator('#pending li').first().waitFor({ state: 'detached' });
    assert.equal(swallowed, 1);
    assert.ok(ann.sockets.length >= before + 2, 'ann reconnected after the broken socket');
    const r = await a.evaluate(async (roomName) => {
      const { token } = JSON.parse(sessionStorage.getItem('parley.session'));
      const res = await fetch(`/v1/rooms/${roomName}/messages?n=100`, { headers: { Authorization: `Bearer ${token}` } });
      return (await res.json()).messages.map((m) => (m.deleted ? 'message deleted' : m.text));
    }, 'general');
    assert.deepEqual(r, room, 'history holds every message once');
    await a.unrouteAll();
  });

  await step('bob joins a private room with its password', async () => {
    const a = ann.page;
    const b = bob.page;
    await a.click('#create-room summary');
    await a.fill('#cr-name', 'secret');
    await a.selectOption('#cr-visibility', 'VISIBILITY_PRIVATE');
    await a.fill('#cr-password', 'open sesame');
    await a.click('#create-room-form button[type="submit"]');
    await a.locator('#conv-title', { hasText: '# secret' }).waitFor();
    await waitLive(a);
    await send(a, 'members only');

    await b.click('#rooms-refresh');
    await b.click('#room-list a[data-room="secret"]');
    await b.locator('#join-form:not([hidden])').waitFor();
    await b.fill('#join-password', 'wrong');
    await b.click('#join-form button[type="submit"]');
    await b.locator('#join-error').filter({ hasText: /\S/ }).waitFor();
    assert.equal(await b.getAttribute('#join-password', 'aria-invalid'), 'true');
    await b.fill('#join-password', 'open sesame');
    await b.click('#join-form button[type="submit"]');
    await waitLive(b);
    await waitMessages(b, ['members only']);
    await a.click('#room-list a[data-room="general"]');
    await b.click('#room-list a[data-room="general"]');
    await waitLive(a);
    await waitLive(b);
  });

  await step('unread counts and the read marker', async () => {
    const a = ann.page;
    const b = bob.page;
    await b.locator('#dm-list a', { hasText: 'Ann' }).click();
    await b.locator('#conv-title', { hasText: 'Ann' }).waitFor();
    await send(a, 'unread 1');
    await send(a, 'unread 2');
    room.push('unread 1', 'unread 2');
    await waitMessages(a, room);
    await b.click('#rooms-refresh');
    await b.locator('#room-list a[data-room="general"] .badge', { hasText: '2' }).waitFor();
    await b.click('#room-list a[data-room="general"]');
    await waitMessages(b, room);
    const next = await b.$eval('#log .divider', (d) => d.nextElementSibling?.querySelector('.text')?.textContent);
    assert.equal(next, 'unread 1', 'the "new messages" line sits before the first unread message');

  });

  await step('a conversation with everything in it (docs/screenshots/room.png)', async () => {
    const a = ann.page;
    const b = bob.page;
    await a.click('#create-room summary');
    await a.fill('#cr-name', 'lounge');
    await a.fill('#cr-description', 'Coffee, plans and everything in between');
    await a.click('#create-room-form button[type="submit"]');
    await waitLive(a);
    await b.click('#rooms-refresh');
    await b.click('#room-list a[data-room="lounge"]');
    await waitLive(b);
    await a.locator('#presence-list li', { hasText: /^Bob$/ }).waitFor();

    const said = [];
    const say = async (p, text) => {
      await send(p, text);
      said.push(text);
      await waitMessages(a, said);
      await waitMessages(b, said);
    };
    await say(a, 'Morning! Is the release still on for Friday?');
    await say(b, 'Yes, the WebSocket work landed last night.');
    await say(a, 'Great, I will write the notes');
    await say(b, 'Build link: ci/4711 (ignore, wrong branch)');
    await say(a, 'Could you check read markers on a phone before then?');

    await message(a, 'Great, I will write the notes').getByRole('button', { name: 'Edit' }).click();
    const box = a.getByRole('textbox', { name: 'Edit your message' });
    await box.fill('Great, I will write the release notes.');
    await box.press('Enter');
    said[2] = 'Great, I will write the release notes.';
    await message(b, 'Build link: ci/4711 (ignore, wrong branch)').getByRole('button', { name: 'Delete' }).click();
    await message(b, 'Build link: ci/4711 (ignore, wrong branch)').getByRole('button', { name: 'Yes, delete' }).click();
    said[3] = 'message deleted';
    await waitMessages(a, said);
    await waitMessages(b, said);

    await b.locator('#composer-text').pressSequentially('On it, give me ten', { delay: 5 });
    await a.locator('#typing', { hasText: 'Bob is typing…' }).waitFor();
    await shot(a, 'room.png');
  });

  await step('where WebSocket fails, the page streams NDJSON and still loses nothing', async () => {
    // Every socket this page opens asks for a route that does not exist:
    // the handshake fails as behind a proxy that drops upgrades.
    const cy = await newPerson('cy');
    await cy.context.addInitScript(() => {
      const Real = window.WebSocket;
      window.WebSocket = class extends Real {
        constructor(url, protocols) { super(String(url).replace(':ws?', ':no-ws?'), protocols); }
      };
    });
    await ann.page.click('#room-list a[data-room="general"]');
    await waitLive(ann.page);
    const c = cy.page;
    await c.goto(`${stack.url}/#/room/general`);
    await c.fill('#su-username', 'cy');
    await c.fill('#su-password', 'cy correct horse');
    await c.click('#signup-form button[type="submit"]');
    await c.locator('#conv-title', { hasText: '# general' }).waitFor();
    await waitLive(c);
    assert.equal(await c.getAttribute('#conn', 'data-transport'), 'stream');
    await waitMessages(c, room);

    await cy.context.setOffline(true);
    await c.locator('#conn[data-state="offline"]').waitFor();
    await send(c, 'cy, from a stream');
    await send(ann.page, 'while cy is away');
    await waitMessages(ann.page, [...room, 'while cy is away']);
    await cy.context.setOffline(false);
    room.push('while cy is away', 'cy, from a stream');
    await waitMessages(c, room);
    await waitMessages(ann.page, room);
    await c.locator('#pending li').first().waitFor({ state: 'detached' });
    await cy.context.close();
    await ann.page.click('#room-list a[data-room="lounge"]');
    await waitLive(ann.page);
  });

  await step('a purge empties the room on both sides', async () => {
    const status = await ann.page.evaluate(async () => {
      const { token } = JSON.parse(sessionStorage.getItem('parley.session'));
      const res = await fetch('/v1/rooms/lounge/messages:purge', {
        method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: '{}',
      });
      return res.status;
    });
    assert.equal(status, 200);
    for (const p of [ann.page, bob.page]) {
      await waitMessages(p, []);
      await p.locator('#log .sys', { hasText: 'removed the history' }).waitFor();
    }
  });

  await step('a token revoked elsewhere sends the page back to sign in', async () => {
    const b = bob.page;
    const status = await b.evaluate(async () => {
      const { token } = JSON.parse(sessionStorage.getItem('parley.session'));
      return (await fetch('/v1/auth/sign-out', { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: '{}' })).status;
    });
    assert.equal(status, 200);
    // The sign-out ends the page's streams (TOKEN_REVOKED): no click needed.
    await b.locator('#signin:not([hidden])').waitFor();
    await b.locator('#alert-text', { hasText: 'sign in again' }).waitFor();
    assert.equal(await b.evaluate(() => sessionStorage.getItem('parley.session')), null);
  });

  await step('signing out returns to the sign-in form and forgets the token', async () => {
    const a = ann.page;
    await a.click('#sign-out');
    await a.locator('#signin:not([hidden])').waitFor();
    assert.equal(await a.evaluate(() => sessionStorage.getItem('parley.session')), null);
    await a.reload();
    await a.locator('#signin:not([hidden])').waitFor();
  });

  assert.deepEqual(pageErrors, [], 'no uncaught errors on the page');
  await ann.context.close();
  await bob.context.close();
});
