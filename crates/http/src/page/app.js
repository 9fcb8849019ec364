'use strict';
// The fan's page: the events on sale, an event's sale phases and
// sections, a section's seats drawn from their coordinates and live from
// its seat stream; signing in, choosing and holding seats, paying and the
// booking's tickets; the waiting room when the sale has one. Plain
// JavaScript, no dependencies: all it reads is the REST API of the server
// that serves it.

const main = document.getElementById('main');
const account = document.getElementById('account');
const SVG = 'http://www.w3.org/2000/svg';
// What the current view keeps open; closed when the fan navigates.
let cleanup = [];

function el(tag, attrs = {}, ...children) {
  const node = ['svg', 'circle', 'title', 'g', 'rect', 'text'].includes(tag)
    ? document.createElementNS(SVG, tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'style') {
      // Through the CSSOM: the page's policy allows no inline style.
      for (const [p, value] of Object.entries(v)) node.style.setProperty(p, value);
    } else if (k.startsWith('on')) {
      node.addEventListener(k.slice(2), v);
    } else if (v !== null && v !== undefined && v !== false) {
      node.setAttribute(k, v);
    }
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// Puts `children` in `node` in place of what it held, leaving out the
// null and undefined that optional parts give (`replaceChildren` itself
// would show them as the text "null").
function fill(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

const enc = encodeURIComponent;

function money(amount, currency) {
  const f = new Intl.NumberFormat(undefined, { style: 'currency', currency });
  const digits = f.resolvedOptions().maximumFractionDigits;
  return f.format(amount / 10 ** digits);
}

function when(iso) {
  return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
}

function clock(iso) {
  return new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' }).format(new Date(iso));
}

function span(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  return `${m} min ${String(s % 60).padStart(2, '0')} s`;
}

function plural(n, one, many) {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

// "A/3/4" → "row 3, seat 4"; a standing place's number as it is.
function seatName(id) {
  const [, row, seat] = String(id).split('/');
  return seat ? `row ${row}, seat ${seat}` : `place ${id}`;
}

// What a hold or a booking has: its seats, or its number of standing
// places.
function claimName(c) {
  return c.seats.length ? c.seats.map(seatName).join('; ') : plural(c.quantity, 'standing place', 'standing places');
}

// A section's name and what is left of it, for a hover title.
function leftOf(s) {
  return `${s.name}: ${s.free.toLocaleString()} of ${s.capacity.toLocaleString()} left`;
}

// ---- The fan's sign-in: a token from the fan club's login (handed to
// the page in the address's fragment, `#token=…`), pasted, or on the demo
// a demo fan's. Kept for this tab only.

const session = {
  get token() {
    const t = sessionStorage.getItem('token');
    const claims = t && this.claims(t);
    if (!claims || (claims.exp && claims.exp * 1000 < now())) return null;
    return t;
  },
  get fan() {
    const t = this.token;
    return t ? this.claims(t) : null;
  },
  // What a token says about its fan (the server checks its signature).
  claims(t) {
    try {
      const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const json = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
      const c = JSON.parse(json);
      return c && typeof c.sub === 'string' ? c : null;
    } catch {
      return null;
    }
  },
  signIn(t) {
    sessionStorage.setItem('token', t);
    showAccount();
  },
  signOut() {
    sessionStorage.clear();
    showAccount();
  },
  // The fan's live hold of an event, and its admission.
  get(key) {
    try {
      return JSON.parse(sessionStorage.getItem(key));
    } catch {
      return null;
    }
  },
  set(key, value) {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  },
};

// The server's clock, as its answers' `Date` says: countdowns follow it.
let skew = 0;
function now() {
  return Date.now() + skew;
}

// ---- The API, and what its refusals mean to a fan.

const PROBLEMS = {
  'event-not-found': () => 'There is no such event.',
  'section-not-found': () => 'This event has no such section.',
  'booking-not-found': () => 'There is no such booking of yours.',
  overloaded: () => 'So many fans are here right now that the server asked us to wait. Try again in a moment.',
  'shutting-down': () => 'The server is restarting. Try again in a moment.',
  unauthorized: () => 'Sign in first.',
  'invalid-token': () => 'Your sign-in is no longer valid. Sign in again.',
  'rate-limited': (p, r) => `You are trying too fast. Wait ${r.headers.get('Retry-After') || 'a few'} seconds, then try again.`,
  'seats-unavailable': (p) => `Another fan took ${p.seats && p.seats.length === 1 ? `seat ${seatName(p.seats[0])}` : 'some of these seats'} a moment ago. Choose others.`,
  'no-adjacent-seats': (p) => (p.largest_block
    ? `There are no ${p.wanted} seats together left here; at most ${p.largest_block}. Ask for fewer, or choose seats one by one.`
    : 'This section is sold out.'),
  'not-enough-places': (p) => (p.available ? `Only ${plural(p.available, 'place is', 'places are')} left here.` : 'This section is sold out.'),
  'fan-limit-reached': (p) => `You have reached this event's limit of ${plural(p.limit, 'ticket', 'tickets')} per fan (you have ${p.owned}).`,
  'sale-not-open': (p) => `The sale is not open to you yet: it opens ${when(p.opens_at)}.`,
  'membership-required': (p) => (p.opens_at
    ? `This part of the sale is for fan-club members. It opens to you ${when(p.opens_at)}.`
    : 'This sale is for fan-club members only.'),
  'sale-closed': () => 'The sale has ended.',
  'admission-required': () => 'This sale has a waiting room: wait for your turn in the queue first.',
  'queue-not-open': (p) => `The queue opens ${when(p.opens_at)}.`,
  'queue-full': () => 'The queue is full right now. Try again in a moment.',
  'hold-expired': () => 'Your hold ended before it was paid: what it held went back on sale.',
  'hold-released': () => 'You released this hold.',
  'hold-not-found': () => 'This hold is not there any more.',
  'hold-confirmed': () => 'This hold is booked already.',
  'payment-already-used': () => 'This payment has booked already.',
  'receipt-expired': () => 'The payment took too long and its receipt expired. Pay again.',
  'receipt-invalid': () => 'The payment service\'s receipt is not valid.',
  'receipt-wrong-hold': () => 'That receipt pays for another hold.',
  'receipt-wrong-amount': () => 'That receipt pays another amount.',
  'receipt-wrong-currency': () => 'That receipt pays in another currency.',
  'demo-off': () => 'This server has no demo sign-in or payment.',
  'booking-cancelled': () => 'This booking is cancelled already.',
  'booking-used': () => 'A ticket of this booking was used at the door: the booking can no longer be cancelled.',
};

class Refusal extends Error {
  constructor(message, kind, status) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

async function refusal(r) {
  const body = await r.json().catch(() => null);
  const kind = body && typeof body.type === 'string' ? body.type.split(':').pop() : '';
  if (kind === 'invalid-token') session.signOut();
  const explain = PROBLEMS[kind];
  let text;
  if (explain) text = explain(body, r);
  else if (r.status === 422 && body && body.detail) text = `Please check what you entered: ${body.detail}.`;
  else text = `Something went wrong (the server answered ${r.status}). Try again.`;
  return new Refusal(text, kind, r.status);
}

// A request of the API; `auth` sends the fan's token. A change carries
// an Idempotency-Key and is sent again on a lost connection, so a
// phone's flaky network never holds or books twice.
async function api(path, { method = 'GET', body, auth = false, headers = {}, key = null } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (auth) {
    const t = session.token;
    if (!t) throw new Refusal('Sign in first.', 'unauthorized', 401);
    h.Authorization = `Bearer ${t}`;
  }
  if (key) h['Idempotency-Key'] = key;
  const init = { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) };
  let r;
  for (let attempt = 0; ; attempt++) {
    try {
      r = await fetch(path, init);
      break;
    } catch (e) {
      if (!key || attempt >= 2) throw new Refusal('The connection failed. Check your network and try again.', 'network', 0);
      await new Promise((ok) => setTimeout(ok, 500 * (attempt + 1)));
    }
  }
  const date = Date.parse(r.headers.get('Date'));
  if (!Number.isNaN(date) && Math.abs(date - Date.now()) > 2000) skew = date - Date.now();
  if (!r.ok) throw await refusal(r);
  if (r.status === 204) return null;
  return r.json();
}

// ---- Routes.

async function route() {
  for (const stop of cleanup) stop();
  cleanup = [];
  // The fan club's login sends the fan here with its token: take it out
  // of the address and the history at once. A link can carry anyone's
  // token (one sent to trick a fan into buying for the sender), so the
  // page names who it signs in, and whom it would replace, and asks
  // first; only the same fan's fresh token is taken without asking.
  if (location.hash.startsWith('#token=')) {
    const q = new URLSearchParams(location.hash.slice(1));
    const t = q.get('token') || '';
    const to = q.get('to');
    const next = `#${to && to.startsWith('/') ? to : '/'}`;
    const claims = session.claims(t);
    const current = session.fan;
    if (claims && current && current.sub === claims.sub) {
      session.signIn(t);
      history.replaceState(null, '', next);
    } else if (claims) {
      signInLink = { token: t, claims, next };
      history.replaceState(null, '', '#/sign-in/link');
    } else {
      history.replaceState(null, '', next);
    }
  }
  try {
    // A hand-typed address may not decode: that is a message too.
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    if (parts[0] === 'events' && parts[2] === 'sections' && parts[3]) {
      await sectionPage(parts[1], parts[3]);
    } else if (parts[0] === 'events' && parts[1]) {
      await eventPage(parts[1]);
    } else if (parts[0] === 'sign-in' && parts[1] === 'link') {
      linkPage();
    } else if (parts[0] === 'sign-in') {
      await signInPage();
    } else if (parts[0] === 'bookings' && parts[1]) {
      await bookingPage(parts.slice(1).join('/'));
    } else if (parts[0] === 'tickets') {
      await ticketsPage();
    } else {
      await eventsPage();
    }
  } catch (e) {
    const text = e instanceof URIError ? 'This page has no such address.' : e.message;
    fill(main, el('p', { class: 'error', role: 'alert' }, text), el('p', {}, el('a', { href: '#/' }, 'All events')));
  }
  const h = main.querySelector('h1');
  if (h) h.focus();
}

function heading(text) {
  return el('h1', { tabindex: '-1' }, text);
}

function showAccount() {
  const fan = session.fan;
  if (fan) {
    const member = fan.memberships && fan.memberships.length ? ` (${fan.memberships.join(', ')})` : '';
    fill(account,
      el('span', { class: 'who' }, `Signed in as ${fan.sub}${member}`),
      el('a', { href: '#/tickets' }, 'My tickets'),
      el('button', { type: 'button', class: 'link', onclick: () => { session.signOut(); route(); } }, 'Sign out'),
    );
  } else {
    fill(account, el('a', { href: '#/sign-in', onclick: () => sessionStorage.setItem('back', location.hash) }, 'Sign in'));
  }
}

// ---- Sign-in.

// A sign-in link's token, until the fan says it is theirs: kept in this
// page's memory only, never in the address or the session.
let signInLink = null;

// A fan as a person reads it: its id and its memberships.
function fanName(c) {
  return c.memberships && c.memberships.length ? `${c.sub} (${c.memberships.join(', ')})` : c.sub;
}

// Asks before a sign-in link signs anyone in: it names the link's fan,
// and the fan signed in now whom it would replace.
function linkPage() {
  document.title = 'Sign in from a link: boxoffice';
  const link = signInLink;
  if (!link) {
    fill(main, heading('Sign in from a link'),
      el('p', {}, 'This sign-in link was used already. Sign in at the fan club again, or go on as you are.'),
      el('p', {}, el('a', { href: '#/' }, 'All events')));
    return;
  }
  const current = session.fan;
  const done = (to) => {
    signInLink = null;
    location.hash = to;
  };
  if (link.claims.exp && link.claims.exp * 1000 < now()) {
    signInLink = null;
    fill(main, heading('Sign in from a link'),
      el('p', { class: 'error', role: 'alert' }, 'This sign-in link has expired. Sign in at the fan club again.'),
      el('p', {}, el('a', { href: '#/' }, 'All events')));
    return;
  }
  const accept = () => {
    session.signIn(link.token);
    done(link.next);
  };
  fill(main,
    heading(current ? 'Switch to another fan?' : 'Sign in from a link'),
    current
      ? el('p', {}, `This link signs in as ${fanName(link.claims)}. You are signed in as ${fanName(current)}.`)
      : el('p', {}, `This link signs you in as ${fanName(link.claims)}.`),
    el('p', {}, 'Go on only if this is you: whatever you hold or buy next belongs to the fan signed in.'),
    el('p', { class: 'actions' },
      el('button', { type: 'button', id: 'link-accept', onclick: accept },
        current ? `Switch to ${link.claims.sub}` : `Sign in as ${link.claims.sub}`),
      el('button', { type: 'button', id: 'link-decline', class: 'secondary', onclick: () => done(current ? link.next : '#/') },
        current ? `Stay signed in as ${current.sub}` : 'Do not sign in')));
}

async function signInPage() {
  document.title = 'Sign in: boxoffice';
  const back = () => {
    const to = sessionStorage.getItem('back');
    sessionStorage.removeItem('back');
    location.hash = to && !to.startsWith('#/sign-in') ? to : '#/';
  };
  const msg = el('p', { class: 'error', role: 'alert' });
  const field = el('textarea', { id: 'token', rows: '3', autocomplete: 'off', spellcheck: 'false', required: true });
  const form = el('form', { class: 'stack' },
    el('label', { for: 'token' }, 'Your fan club token'),
    field,
    el('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = field.value.trim();
    const claims = session.claims(t);
    if (!claims) {
      msg.textContent = 'That is not a fan club token: copy all of it, three parts joined by dots.';
    } else if (claims.exp && claims.exp * 1000 < now()) {
      msg.textContent = 'That token has expired. Sign in at the fan club again.';
    } else {
      session.signIn(t);
      back();
    }
  });
  const demo = await api('/v1/demo').catch(() => ({ fans: false }));
  const demoFan = (memberships) => async () => {
    try {
      const fan = await api('/v1/demo/fans', { method: 'POST', body: { memberships } });
      session.signIn(fan.token);
      back();
    } catch (e) {
      msg.textContent = e.message;
    }
  };
  fill(main,
    heading('Sign in'),
    el('p', {}, 'Sign in with the fan club: its login brings you back here signed in. Or paste the token it gave you.'),
    form,
    demo.fans ? el('h2', {}, 'On the demo') : null,
    demo.fans ? el('p', { class: 'actions' },
      el('button', { type: 'button', id: 'demo-fan', onclick: demoFan(['fanclub']) }, 'Sign in as a demo fan (fan club member)'),
      el('button', { type: 'button', id: 'demo-guest', class: 'secondary', onclick: demoFan([]) }, 'Sign in as a demo fan (no member)')) : null,
    msg,
  );
}

// ---- Events.

async function eventsPage() {
  const events = await api('/v1/events');
  document.title = 'boxoffice: events on sale';
  const list = el('ul', { class: 'events' });
  for (const e of events) {
    list.append(el('li', {},
      el('a', { href: `#/events/${enc(e.id)}`, 'data-event': e.id },
        el('strong', {}, e.name), el('br'),
        el('span', { class: 'meta' }, `${e.venue} · ${when(e.starts_at)} · ${e.free.toLocaleString()} of ${e.capacity.toLocaleString()} left`))));
  }
  fill(main, heading('Events on sale'), events.length ? list : el('p', {}, 'Nothing is on sale right now.'));
}

// The next opening among an event's phases, if one is ahead.
function nextOpening(phases, at) {
  return phases
    .map((p) => ({ phase: p, at: Date.parse(p.opens_at) }))
    .filter((x) => x.at > at)
    .sort((a, b) => a.at - b.at)[0];
}

// A section's tile colour: how much of it is left.
function level(free, capacity) {
  const share = capacity ? free / capacity : 0;
  return `hsl(${Math.round(share * 130)} 65% 42%)`;
}

// Every second while the view is open.
function every(ms, f) {
  f();
  const timer = setInterval(f, ms);
  cleanup.push(() => clearInterval(timer));
}

async function eventPage(id) {
  const e = await api(`/v1/events/${enc(id)}`);
  document.title = `${e.name}: boxoffice`;
  const fan = session.fan;
  const mine = (p) => !p.memberships || !p.memberships.length
    || (fan && fan.memberships && p.memberships.some((m) => fan.memberships.includes(m)));
  const phases = el('ul', { class: 'phases' });
  for (const p of e.sale_phases) {
    const who = p.memberships && p.memberships.length ? `members of ${p.memberships.join(', ')}` : 'everyone';
    const until = p.closes_at ? ` until ${when(p.closes_at)}` : '';
    phases.append(el('li', {}, el('strong', {}, p.name), `: from ${when(p.opens_at)}${until}, for ${who}`));
  }
  // The countdown is to the next opening this fan may buy in.
  const countdown = el('p', { class: 'countdown', role: 'timer', 'aria-live': 'off' });
  every(1000, () => {
    const next = nextOpening(e.sale_phases.filter(mine), now());
    countdown.textContent = next ? `${next.phase.name} opens to you in ${span(next.at - now())}` : '';
  });
  const cats = el('ul', {});
  for (const c of e.categories) {
    cats.append(el('li', {}, `${c.name}: ${money(c.price, e.currency)} (${c.free.toLocaleString()} left)`));
  }
  const arena = el('figure', { class: 'arena' });
  const sections = el('ul', { class: 'sections' });
  for (const s of e.sections) {
    sections.append(el('li', {},
      el('a', {
        href: `#/events/${enc(e.id)}/sections/${enc(s.id)}`,
        'data-section': s.id,
        style: { '--level': level(s.free, s.capacity) },
      },
      el('strong', {}, s.name), el('br'),
      el('span', { class: 'meta' }, `${s.kind === 'standing' ? 'standing' : 'seated'}: ${s.free.toLocaleString()} of ${s.capacity.toLocaleString()} left`))));
  }
  const limits = [`at most ${e.seats_per_hold_max} seats a hold`];
  if (e.tickets_per_fan_max) limits.push(`${plural(e.tickets_per_fan_max, 'ticket', 'tickets')} per fan`);
  fill(main,
    heading(e.name),
    el('p', { class: 'meta' }, `${e.venue} · ${when(e.starts_at)} · ${limits.join(' · ')}`),
    e.sale_phases.length ? el('h2', {}, 'Sale') : null,
    e.sale_phases.length ? phases : null,
    countdown,
    el('h2', {}, 'Prices'),
    cats,
    el('h2', {}, 'Sections'),
    arena,
    sections,
  );
  drawArena(e, arena);
}

// Seats the arena drawing builds before it lets the page run.
const ARENA_SLICE = 3000;

// The whole venue, every seat where it is, each section in the colour of
// how much of it is left; a click opens the section. Drawn once the
// seat maps are in; the list of sections above says the same to those
// who do not see it (the drawing is hidden from screen readers).
async function drawArena(e, figure) {
  const began = performance.now();
  const seated = e.sections.filter((s) => s.kind === 'seated');
  const maps = await Promise.all(seated.map((s) => api(`/v1/events/${enc(e.id)}/sections/${enc(s.id)}/seats`)));
  if (!figure.isConnected) return;
  // Places with no seats to draw (a standing floor) and the stage are
  // drawn as the rectangles the layout gives them, when it does.
  const floors = e.sections.filter((s) => s.area);
  const areas = floors.map((s) => s.area).concat(e.stage ? [e.stage] : []);
  let minX = Infinity; let minY = Infinity; let maxX = -Infinity; let maxY = -Infinity;
  for (const m of maps) {
    for (let i = 0; i < m.x.length; i++) {
      minX = Math.min(minX, m.x[i]); maxX = Math.max(maxX, m.x[i]);
      minY = Math.min(minY, m.y[i]); maxY = Math.max(maxY, m.y[i]);
    }
  }
  for (const a of areas) {
    minX = Math.min(minX, a.x); maxX = Math.max(maxX, a.x + a.width);
    minY = Math.min(minY, a.y); maxY = Math.max(maxY, a.y + a.height);
  }
  const svg = el('svg', {
    class: 'arena', viewBox: `${minX - 1} ${minY - 1} ${maxX - minX + 2} ${maxY - minY + 2}`, 'aria-hidden': 'true',
  });
  // A label sized to its rectangle, centred in it.
  const label = (a, text) => el('text', {
    x: a.x + a.width / 2, y: a.y + a.height / 2, 'text-anchor': 'middle', 'dominant-baseline': 'central',
    'font-size': Math.min(a.height * 0.4, a.width / Math.max(text.length, 1) * 1.2),
  }, text);
  if (e.stage) {
    svg.append(el('g', { class: 'stage' },
      el('rect', { x: e.stage.x, y: e.stage.y, width: e.stage.width, height: e.stage.height }),
      label(e.stage, 'Stage')));
  }
  for (const s of floors) {
    const a = s.area;
    svg.append(el('g', { class: 'floor', fill: level(s.free, s.capacity), 'data-section': s.id },
      el('title', {}, leftOf(s)),
      el('rect', { x: a.x, y: a.y, width: a.width, height: a.height, rx: 1 }),
      label(a, s.name)));
  }
  svg.addEventListener('click', (ev) => {
    const g = ev.target.closest('g[data-section]');
    if (g) location.hash = `#/events/${enc(e.id)}/sections/${enc(g.getAttribute('data-section'))}`;
  });
  fill(figure, svg);
  // Drawn a few thousand seats at a time, letting the page answer the
  // fan between slices (a phone takes several times as long as this
  // machine: one slice of 15,000 seats would freeze it for a second).
  let longest = 0;
  let slice = performance.now();
  let inSlice = 0;
  for (let k = 0; k < maps.length; k++) {
    const m = maps[k];
    const s = seated[k];
    // Named on hover; its id drawn in its middle, so a fan can tell the
    // map's sections apart and find the one the list names.
    const g = el('g', { fill: level(s.free, s.capacity), 'data-section': s.id },
      el('title', {}, leftOf(s)));
    let cx = 0; let cy = 0;
    for (let i = 0; i < m.x.length; i++) {
      g.append(el('circle', { cx: m.x[i], cy: m.y[i], r: 0.45 }));
      cx += m.x[i]; cy += m.y[i];
    }
    if (m.x.length) {
      g.append(el('text', {
        class: 'section-id', x: cx / m.x.length, y: cy / m.y.length,
        'text-anchor': 'middle', 'dominant-baseline': 'central', 'font-size': 5,
      }, s.id));
    }
    svg.append(g);
    inSlice += m.x.length;
    if (inSlice >= ARENA_SLICE) {
      longest = Math.max(longest, performance.now() - slice);
      await new Promise((ok) => setTimeout(ok, 0));
      if (!figure.isConnected) return;
      slice = performance.now();
      inSlice = 0;
    }
  }
  longest = Math.max(longest, performance.now() - slice);
  // When it is on screen, for the browser test's figures.
  requestAnimationFrame(() => {
    svg.setAttribute('data-longest-slice-ms', String(Math.round(longest)));
    svg.setAttribute('data-draw-ms', String(Math.round(performance.now() - began)));
  });
}

// ---- A section: its seats, live, and the fan's choice, hold and payment.

const STATE_NAMES = { f: 'available', h: 'held', s: 'sold' };
const PALETTE = ['#5b21b6', '#1d4ed8', '#0f766e', '#15803d', '#7c2d12', '#9d174d', '#334155', '#0369a1'];

async function sectionPage(eventId, sectionId) {
  const began = performance.now();
  const [e, map, room] = await Promise.all([
    api(`/v1/events/${enc(eventId)}`),
    api(`/v1/events/${enc(eventId)}/sections/${enc(sectionId)}/seats`),
    api(`/v1/events/${enc(eventId)}/waiting-room`).catch(() => ({ enabled: false })),
  ]);
  const section = e.sections.find((s) => s.id === sectionId) || { name: sectionId };
  document.title = `${section.name}, ${e.name}: boxoffice`;
  const byId = Object.fromEntries(e.categories.map((c) => [c.id, c]));
  const catOf = (i) => byId[map.categories[map.category[i]]] || { name: map.categories[map.category[i]], price: 0 };
  const seated = map.kind === 'seated' && map.ids.length > 0;
  const counts = el('p', { class: 'counts' });
  const showCounts = (a) => {
    counts.textContent = `${a.free.toLocaleString()} available · ${a.held.toLocaleString()} held · ${a.sold.toLocaleString()} sold`;
  };
  showCounts(map);
  const states = map.states.split('');
  const index = new Map(map.ids.map((id, i) => [id, i]));
  // The seats this fan chose, and those its hold has.
  const chosen = new Set();
  const mine = new Set();
  const label = (i) => {
    const [, row, seat] = map.ids[i].split('/');
    const cat = catOf(i);
    const state = mine.has(i) ? 'held by you' : STATE_NAMES[states[i]];
    return `Section ${sectionId}, row ${row}, seat ${seat}, ${cat.name}, ${money(cat.price, e.currency)}, ${state}`;
  };
  const nodes = [];
  const rows = [];
  const paint = (i) => {
    const c = nodes[i];
    if (c) {
      c.classList.toggle('h', states[i] === 'h' && !mine.has(i));
      c.classList.toggle('s', states[i] === 's');
      c.classList.toggle('mine', mine.has(i));
      c.classList.toggle('chosen', chosen.has(i));
      c.setAttribute('data-state', states[i]);
      c.setAttribute('aria-checked', String(chosen.has(i)));
      c.setAttribute('aria-disabled', String(states[i] !== 'f'));
      c.setAttribute('aria-label', label(i));
    }
    if (rows[i]) {
      rows[i].state.textContent = mine.has(i) ? 'held by you' : STATE_NAMES[states[i]];
      rows[i].box.checked = chosen.has(i);
      rows[i].box.disabled = states[i] !== 'f';
    }
  };
  const notice = el('p', { class: 'notice', role: 'status' });
  const alert = el('p', { class: 'error', role: 'alert' });
  const say = (text) => { alert.textContent = ''; notice.textContent = text; };
  const fail = (text) => { notice.textContent = ''; alert.textContent = text; };
  const max = e.seats_per_hold_max;
  const choose = (i) => {
    if (states[i] !== 'f') {
      fail(`Seat ${seatName(map.ids[i])} is ${mine.has(i) ? 'held by you already' : 'taken'}.`);
      return;
    }
    if (chosen.has(i)) {
      chosen.delete(i);
    } else if (chosen.size >= max) {
      fail(`At most ${plural(max, 'seat', 'seats')} a hold.`);
      return;
    } else {
      chosen.add(i);
    }
    alert.textContent = '';
    paint(i);
    buy.update();
  };

  let figure = null;
  if (seated) {
    const xs = map.x;
    const ys = map.y;
    const minX = Math.min(...xs) - 1;
    const minY = Math.min(...ys) - 1;
    const w = Math.max(...xs) - minX + 1;
    const h = Math.max(...ys) - minY + 1;
    const svg = el('svg', {
      class: 'seats', viewBox: `${minX} ${minY} ${w} ${h}`, role: 'group',
      'aria-label': `Seats of section ${section.name}: arrow keys move, space chooses`,
    });
    const r = seatRadius(xs, ys);
    const frag = document.createDocumentFragment();
    for (let i = 0; i < map.ids.length; i++) {
      // One seat in the tab order (the map is one stop); the arrow keys
      // move between seats, each of which takes the focus.
      const c = el('circle', {
        cx: xs[i], cy: ys[i], r,
        fill: PALETTE[map.category[i] % PALETTE.length],
        tabindex: i === 0 ? '0' : '-1', role: 'checkbox',
        'data-seat': map.ids[i],
      });
      nodes.push(c);
      frag.append(c);
    }
    svg.append(frag);
    for (let i = 0; i < nodes.length; i++) paint(i);
    svg.addEventListener('click', (ev) => {
      const i = nodes.indexOf(ev.target);
      if (i >= 0) { focusSeat(i); choose(i); }
    });
    const focusSeat = (i) => {
      const at = svg.querySelector('circle[tabindex="0"]');
      if (at) at.setAttribute('tabindex', '-1');
      nodes[i].setAttribute('tabindex', '0');
      nodes[i].focus();
    };
    svg.addEventListener('keydown', (ev) => {
      const i = nodes.indexOf(document.activeElement);
      if (i < 0) return;
      const to = neighbour(xs, ys, i, ev.key);
      if (to !== null) {
        ev.preventDefault();
        if (to >= 0) focusSeat(to);
      } else if (ev.key === ' ' || ev.key === 'Enter') {
        ev.preventDefault();
        choose(i);
      }
    });
    figure = svg;
  }
  const present = new Set(map.category);
  const legend = el('p', { class: 'legend' },
    ...map.categories
      .map((id, k) => [id, k])
      .filter(([, k]) => present.has(k))
      .map(([id, k]) => el('span', { style: { '--c': PALETTE[k % PALETTE.length] } }, `${(byId[id] || { name: id }).name} ${byId[id] ? money(byId[id].price, e.currency) : ''}`)),
    el('span', { class: 'ring', style: { '--c': 'var(--chosen)' } }, 'your choice'),
    el('span', { style: { '--c': 'var(--mine)' } }, 'held by you'),
    el('span', { style: { '--c': 'var(--held)' } }, 'held'),
    el('span', { style: { '--c': 'var(--sold)' } }, 'sold'));
  // Those who cannot use the map choose from the same seats as a table.
  const list = el('details', {}, el('summary', {}, 'List of seats'));
  list.addEventListener('toggle', () => {
    if (!list.open || rows.length) return;
    const body = el('tbody');
    for (let i = 0; i < map.ids.length; i++) {
      const cat = catOf(i);
      const box = el('input', { type: 'checkbox', id: `seat-${i}`, 'data-seat': map.ids[i] });
      box.addEventListener('change', () => { choose(i); paint(i); });
      const state = el('td', {});
      rows[i] = { box, state };
      body.append(el('tr', {},
        el('td', {}, box, ' ', el('label', { for: `seat-${i}` }, map.ids[i])),
        el('td', {}, cat.name), el('td', {}, money(cat.price, e.currency)), state));
      paint(i);
    }
    list.append(el('table', { class: 'list' }, el('caption', {}, `Seats of section ${section.name}`),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Seat'), el('th', { scope: 'col' }, 'Category'), el('th', { scope: 'col' }, 'Price'), el('th', { scope: 'col' }, 'State'))), body));
  });

  const buy = buyPanel({ e, section, seated, chosen, mine, map, index, catOf, states, say, fail, paint, room });
  // The section's seat stream: each change repaints only its seats.
  const set = (i, s) => {
    if (states[i] === s || i >= states.length) return;
    states[i] = s;
    if (s !== 'f' && chosen.has(i)) {
      chosen.delete(i);
      fail(`Another fan just took seat ${seatName(map.ids[i])}: it is no longer in your choice.`);
      buy.update();
    }
    paint(i);
  };
  seatStream(`/v1/events/${enc(eventId)}/sections/${enc(sectionId)}/stream`, {
    seats(data) {
      const d = JSON.parse(data);
      d.states.split('').forEach((s, i) => set(i, s));
      showCounts(d.availability);
    },
    changes(data) {
      const d = JSON.parse(data);
      for (const [k, s] of [['free', 'f'], ['held', 'h'], ['sold', 's']]) {
        for (const i of d[k]) set(i, s);
      }
      showCounts(d.availability);
    },
  });
  fill(main,
    heading(section.name),
    el('p', { class: 'meta' }, el('a', { href: `#/events/${enc(e.id)}` }, e.name), ` · ${when(e.starts_at)}`),
    counts,
    figure ? legend : null,
    figure,
    buy.node,
    notice,
    alert,
    figure ? list : null,
  );
  if (figure) {
    requestAnimationFrame(() => figure.setAttribute('data-draw-ms', String(Math.round(performance.now() - began))));
  }
  await buy.start();
}

// A seat's radius: as large as it can be without touching its nearest
// neighbour (rows packed tighter than a seat's width still show every
// seat, each clickable).
function seatRadius(xs, ys) {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  let nearest = Infinity;
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    for (let m = k + 1; m < order.length && xs[order[m]] - xs[i] < nearest; m++) {
      const j = order[m];
      nearest = Math.min(nearest, Math.hypot(xs[j] - xs[i], ys[j] - ys[i]));
    }
  }
  return Number.isFinite(nearest) ? Math.min(0.42, Math.max(0.05, nearest * 0.45)) : 0.42;
}

// The seat the arrow key `key` moves to from seat `i`: the next in its
// row for left and right, the nearest in the next row for up and down;
// -1 when there is none that way; null for any other key.
function neighbour(xs, ys, i, key) {
  const dir = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[key];
  if (!dir) return null;
  let best = -1;
  let bestScore = Infinity;
  for (let j = 0; j < xs.length; j++) {
    const dx = xs[j] - xs[i];
    const dy = ys[j] - ys[i];
    const along = dir[0] ? dx * dir[0] : dy * dir[1];
    const across = dir[0] ? Math.abs(dy) : Math.abs(dx);
    // Within 45 degrees of the way the key points.
    if (along <= 0.01 || across > along) continue;
    const score = along + across * 4;
    if (score < bestScore) { bestScore = score; best = j; }
  }
  return best;
}

// The fan's side of a section: signing in, the waiting room, the
// choice, the hold with its countdown, release, payment and confirm.
function buyPanel({ e, section, seated, chosen, mine, map, index, catOf, states, say, fail, paint, room }) {
  // What this section sells, in the fan's words.
  const things = seated ? 'seats' : 'places';
  const holdKey = `hold:${e.id}`;
  const admissionKey = `admission:${e.id}`;
  const node = el('section', { class: 'buy', 'aria-labelledby': 'buy-h' });
  let hold = null;
  let demo = { payments: false };
  let busy = false;

  const admission = () => {
    const a = session.get(admissionKey);
    return a && Date.parse(a.expires_at) > now() ? a.token : null;
  };
  const needsRoom = () => room.enabled && !admission() && !hold;

  const setMine = (seats) => {
    const before = [...mine];
    mine.clear();
    for (const id of seats) if (index.has(id)) mine.add(index.get(id));
    for (const i of before) paint(i);
    for (const i of mine) paint(i);
  };

  const run = (f) => async (ev) => {
    if (ev) ev.preventDefault();
    if (busy) return;
    busy = true;
    node.setAttribute('aria-busy', 'true');
    try {
      await f();
    } catch (err) {
      fail(err.message);
      if (err.kind === 'admission-required') session.set(admissionKey, null);
      if (['hold-expired', 'hold-released', 'hold-not-found'].includes(err.kind)) setHold(null);
      if (err.kind === 'invalid-token' || err.kind === 'unauthorized') update();
    } finally {
      busy = false;
      node.removeAttribute('aria-busy');
      update();
    }
  };

  const setHold = (h) => {
    hold = h && h.status === 'held' ? h : null;
    session.set(holdKey, hold ? hold.id : null);
    setMine(hold && hold.section === section.id ? hold.seats : []);
  };

  const holdWith = async (what) => {
    const headers = {};
    const a = admission();
    if (a) headers['Boxoffice-Admission'] = a;
    const h = await api(`/v1/events/${enc(e.id)}/holds`, {
      method: 'POST', auth: true, headers, key: crypto.randomUUID(), body: { section: section.id, ...what },
    });
    for (const i of [...chosen]) { chosen.delete(i); paint(i); }
    setHold(h);
    say(`Held for you: ${claimName(h)}. Pay before the hold ends to keep them.`);
    // On to the payment: the form takes the focus.
    update();
    const pay = node.querySelector('#email');
    if (pay) pay.focus();
  };

  const release = run(async () => {
    await api(`/v1/holds/${enc(hold.id)}`, { method: 'DELETE', auth: true });
    setHold(null);
    say(`Released: the ${things} are back on sale.`);
  });

  const confirm = run(async () => {
    const email = node.querySelector('#email').value.trim();
    let receipt;
    if (demo.payments) {
      receipt = (await api('/v1/demo/payments', { method: 'POST', auth: true, body: { hold: hold.id } })).receipt;
    } else {
      receipt = node.querySelector('#receipt').value.trim();
    }
    const b = await api(`/v1/holds/${enc(hold.id)}/confirm`, {
      method: 'POST', auth: true, key: crypto.randomUUID(), body: { email, receipt },
    });
    setHold(null);
    if (room.enabled) session.set(admissionKey, null);
    location.hash = `#/bookings/${enc(b.id)}`;
  });

  const expiry = el('p', { class: 'countdown', role: 'timer', 'aria-live': 'off' });
  const roomView = el('div', { class: 'room' });

  function update() {
    const fan = session.fan;
    const parts = [el('h2', { id: 'buy-h' }, hold ? 'Your hold' : `Your ${things}`)];
    if (!fan) {
      parts.push(el('p', {}, el('a', { href: '#/sign-in', onclick: () => sessionStorage.setItem('back', location.hash) }, 'Sign in'), ` to hold ${things}.`));
    } else if (hold) {
      const where = hold.section === section.id ? '' : ` in section ${hold.section}`;
      const form = el('form', { class: 'stack', onsubmit: confirm },
        el('label', { for: 'email' }, 'Email for your tickets'),
        el('input', { id: 'email', type: 'email', autocomplete: 'email', required: true }),
        demo.payments ? null : el('label', { for: 'receipt' }, 'The payment service\'s receipt'),
        demo.payments ? null : el('input', { id: 'receipt', autocomplete: 'off', required: true }),
        el('p', { class: 'actions' },
          el('button', { type: 'submit', id: 'pay' }, demo.payments ? `Pay ${money(hold.total_price, hold.currency)} (demo) and book` : 'Book'),
          el('button', { type: 'button', id: 'release', class: 'secondary', onclick: release }, 'Release')));
      parts.push(el('p', {}, `${claimName(hold)}${where} · ${money(hold.total_price, hold.currency)}`), expiry, form);
    } else if (needsRoom()) {
      parts.push(roomView);
    } else {
      const total = [...chosen].reduce((sum, i) => sum + catOf(i).price, 0);
      const names = [...chosen].sort((a, b) => a - b).map((i) => seatName(map.ids[i]));
      const best = el('select', { id: 'best-n' },
        ...Array.from({ length: e.seats_per_hold_max }, (_, k) => el('option', { value: String(k + 1) }, String(k + 1))));
      if (seated) {
        parts.push(
          el('p', {}, chosen.size
            ? `Your choice: ${names.join('; ')} · ${money(total, e.currency)}`
            : `Choose up to ${plural(e.seats_per_hold_max, 'seat', 'seats')} on the map or in the list of seats.`),
          el('p', { class: 'actions' },
            el('button', {
              type: 'button', id: 'hold-chosen', disabled: chosen.size === 0,
              onclick: run(() => holdWith({ seats: [...chosen].sort((a, b) => a - b).map((i) => map.ids[i]) })),
            }, chosen.size ? `Hold ${plural(chosen.size, 'seat', 'seats')}` : 'Hold seats')));
      }
      parts.push(el('form', { class: 'inline', onsubmit: run(() => holdWith({ quantity: Number(best.value) })) },
        el('label', { for: 'best-n' }, seated ? 'Or the best ' : 'Places: '), best,
        seated ? ' seats together ' : ' ',
        el('button', { type: 'submit', id: 'hold-best' }, seated ? 'Hold the best seats' : 'Hold places')));
    }
    // Keep the focus where it was when the panel is drawn again.
    const focused = document.activeElement && node.contains(document.activeElement) ? document.activeElement.id : null;
    fill(node, ...parts);
    if (focused && node.querySelector(`#${focused}`)) node.querySelector(`#${focused}`).focus();
  }

  every(1000, () => {
    if (!hold) return;
    const left = Date.parse(hold.expires_at) - now();
    expiry.textContent = left > 0 ? `Your hold ends in ${span(left)}.` : 'Your hold has ended.';
    if (left <= 0 && !busy) {
      setHold(null);
      fail(PROBLEMS['hold-expired']());
      update();
    }
  });

  // The waiting room: join, wait for the turn (a stream of the fan's
  // standing, polled when no stream is to be had), then buy.
  async function waitInRoom() {
    const show = (st) => {
      if (st.state === 'admitted' && st.admission) {
        session.set(admissionKey, { token: st.admission, expires_at: st.admission_expires_at });
        say(`It is your turn! Hold your ${things} before ${clock(st.admission_expires_at)}.`);
        update();
        return true;
      }
      const text = {
        'pre-queue': `You are in the queue. At ${when(st.opens_at)} everyone who joined before then is put in a random order, and the first are let in.`,
        waiting: `You are number ${(st.number + 1).toLocaleString()} in the queue: ${plural(st.ahead, 'fan', 'fans')} ahead of you.${st.estimated_wait_secs !== undefined ? ` About ${span(st.estimated_wait_secs * 1000)} to wait.` : ' Admission is paused for now.'}`,
        expired: `Your turn ended before you held ${things}.`,
        done: 'You have booked with your turn.',
      }[st.state] || '';
      fill(roomView,
        el('p', {}, 'This sale has a waiting room: fans are let in a few at a time, in turn.'),
        el('p', { class: 'standing', 'data-state': st.state }, text));
      return false;
    };
    const abort = new AbortController();
    cleanup.push(() => abort.abort());
    const path = `/v1/events/${enc(e.id)}/queue`;
    let st;
    try {
      st = await api(`${path}/me`, { auth: true });
    } catch (err) {
      if (err.kind !== 'not-in-queue') throw err;
      fill(roomView,
        el('p', {}, 'This sale has a waiting room: fans are let in a few at a time, in turn.'),
        el('p', {}, el('button', { type: 'button', id: 'join', onclick: run(async () => { await api(path, { method: 'POST', auth: true }); waitInRoom(); }) }, 'Join the queue')));
      update();
      return;
    }
    if (show(st)) return;
    update();
    while (!abort.signal.aborted) {
      try {
        const r = await fetch(`${path}/me/stream`, { headers: { Authorization: `Bearer ${session.token}` }, signal: abort.signal });
        if (r.ok && r.status !== 204) {
          for await (const [name, data] of serverEvents(r)) {
            if (name === 'standing' && show(JSON.parse(data))) return;
          }
        }
        st = await api(`${path}/me`, { auth: true });
        if (show(st)) return;
      } catch (err) {
        if (abort.signal.aborted) return;
      }
      await new Promise((ok) => setTimeout(ok, 3000));
    }
  }

  return {
    node,
    update,
    async start() {
      if (!session.fan) { update(); return; }
      demo = await api('/v1/demo').catch(() => demo);
      const id = session.get(holdKey);
      if (id) {
        try {
          setHold(await api(`/v1/holds/${enc(id)}`, { auth: true }));
        } catch {
          setHold(null);
        }
      }
      if (!hold && session.token) {
        // A hold made on another device, or in a tab since closed: found
        // again, to pay for or give back (this section's first).
        try {
          const { holds } = await api(`/v1/events/${enc(e.id)}/me/holds`, { auth: true });
          const found = holds.find((h) => h.section === section.id) || holds[0];
          if (found) {
            setHold(found);
            say(`You already hold ${claimName(found)}: book or release it.`);
          }
        } catch {
          // The panel works without it.
        }
      }
      update();
      if (needsRoom()) await waitInRoom().catch((err) => fail(err.message));
    },
  };
}

// A section's seat stream, each event handed to `on[name](data)`. A fan
// signed in reads it through fetch with the token, on the places the
// server keeps for fans (a crowd without tokens cannot take them), and
// reconnects from the last id it got; anyone else, and a fan whose token
// the server refuses, through an EventSource.
function seatStream(url, on) {
  const anonymous = () => {
    const live = new EventSource(url);
    cleanup.push(() => live.close());
    for (const name of Object.keys(on)) live.addEventListener(name, (ev) => on[name](ev.data));
  };
  if (!session.fan) { anonymous(); return; }
  const abort = new AbortController();
  cleanup.push(() => abort.abort());
  (async () => {
    let last = null;
    let wait = 1000;
    while (!abort.signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${session.token}` };
        if (last !== null) headers['Last-Event-ID'] = last;
        const r = await fetch(url, { headers, signal: abort.signal });
        // Not while leaving the page: navigation aborted the fetch.
        if (r.status === 401) { if (!abort.signal.aborted) anonymous(); return; }
        if (r.ok) {
          for await (const [name, data, id] of serverEvents(r)) {
            if (id !== null) last = id;
            if (on[name]) on[name](data);
          }
        } else {
          // Too many streams (this fan's, or the server's): as told.
          wait = 1000 * (Number(r.headers.get('Retry-After')) || 1);
        }
      } catch {
        if (abort.signal.aborted) return;
      }
      await new Promise((ok) => setTimeout(ok, wait));
      wait = 1000;
    }
  })();
}

// A server-sent event stream read through fetch (which, unlike
// EventSource, sends the fan's token): yields [event, data, id].
async function* serverEvents(r) {
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = 'message';
      let id = null;
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        else if (line.startsWith('id:')) id = line.slice(3).trim();
      }
      if (data.length) yield [name, data.join('\n'), id];
    }
  }
}

// ---- Bookings and their tickets.

async function bookingPage(id) {
  const b = await api(`/v1/bookings/${enc(id)}`, { auth: true });
  document.title = `Booking ${b.id}: boxoffice`;
  const e = await api(`/v1/events/${enc(b.event)}`).catch(() => ({ name: b.event, starts_at: null, sections: [] }));
  const section = (e.sections.find((s) => s.id === b.section) || { name: b.section }).name;
  const tickets = el('ul', { class: 'tickets' });
  (b.tickets || []).forEach((t, k) => {
    // A seat by its row and number; a standing place by its number in the
    // booking (tickets come in place order), the section named once.
    const place = b.seats.length ? seatName(t.place) : `place ${k + 1}`;
    const img = el('img', { alt: `QR code of the ticket for ${place}`, width: '200', height: '200', 'data-place': t.place });
    tickets.append(el('li', {},
      el('h3', {}, `${section}, ${place}`),
      img,
      el('p', { class: 'meta' }, t.checked_in_at ? `Checked in at ${when(t.checked_in_at)}` : 'Show this code at the door: it lets one person in, once.')));
    qrImage(b.id, k + 1).then((src) => { img.src = src; }).catch(() => { img.alt = 'The ticket\'s code could not be loaded: reload the page.'; });
  });
  fill(main,
    heading(b.status === 'confirmed' ? 'Your tickets' : 'Booking cancelled'),
    el('p', {}, `${e.name}${e.starts_at ? ` · ${when(e.starts_at)}` : ''}`),
    el('p', { class: 'meta' }, `Booking ${b.id} · ${money(b.total_price, b.currency)} · paid, reference ${b.payment_ref} · tickets also sent to ${b.email}`),
    b.tickets ? tickets : el('p', {}, `Cancelled ${b.cancelled_at ? when(b.cancelled_at) : ''}.`),
    b.status === 'confirmed' ? cancelPanel(b) : null,
  );
}

// Giving a booking back: asked once, confirmed a second time (it cannot
// be undone), then the booking shown as it is now.
function cancelPanel(b) {
  const n = (b.tickets || []).length;
  const count = n === 1 ? 'its ticket' : `all ${n} tickets`;
  const alert = el('p', { class: 'error', role: 'alert' });
  const body = el('div', {});
  let busy = false;
  const ask = () => fill(body,
    el('p', {}, `If you cannot come, you can give the booking back: its ${b.seats.length ? 'seats' : 'places'} go on sale again.`),
    el('button', { type: 'button', id: 'cancel-booking', class: 'secondary', onclick: confirmStep }, 'Cancel this booking'));
  function confirmStep() {
    fill(body,
      el('p', {}, `Cancelling gives up ${count} of this booking. It cannot be undone.`),
      el('button', { type: 'button', id: 'cancel-yes', class: 'secondary', onclick: cancel }, `Yes, give up ${count}`),
      ' ',
      el('button', { type: 'button', id: 'cancel-no', onclick: () => { ask(); document.getElementById('cancel-booking').focus(); } }, 'Keep my tickets'));
    document.getElementById('cancel-no').focus();
  }
  async function cancel() {
    if (busy) return;
    busy = true;
    alert.textContent = '';
    try {
      await api(`/v1/bookings/${enc(b.id)}/cancel`, { method: 'POST', auth: true });
    } catch (err) {
      // Cancelled already (an earlier try whose answer was lost): show it.
      if (err.kind !== 'booking-cancelled') {
        alert.textContent = err.message;
        busy = false;
        return;
      }
    }
    await bookingPage(b.id);
    main.querySelector('h1').focus();
  }
  ask();
  return el('section', { class: 'cancel', 'aria-labelledby': 'cancel-title' },
    el('h2', { id: 'cancel-title' }, 'Cannot come?'), body, alert);
}

// A ticket's QR code as a data: address (the image needs the fan's
// token, which an <img> cannot send).
async function qrImage(booking, place) {
  const r = await fetch(`/v1/bookings/${enc(booking)}/tickets/${place}/qr`, { headers: { Authorization: `Bearer ${session.token}` } });
  if (!r.ok) throw new Error(String(r.status));
  const blob = await r.blob();
  return new Promise((ok, no) => {
    const reader = new FileReader();
    reader.onload = () => ok(reader.result);
    reader.onerror = no;
    reader.readAsDataURL(blob);
  });
}

// "My tickets": the fan's bookings of every event, from the server, so
// they are here on any device, newest first.
async function ticketsPage() {
  document.title = 'My tickets: boxoffice';
  if (!session.token) {
    fill(main, heading('My tickets'),
      el('p', {}, el('a', { href: '#/sign-in', onclick: () => sessionStorage.setItem('back', location.hash) }, 'Sign in'), ' to see your tickets.'));
    return;
  }
  const events = await api('/v1/events');
  // An event whose list cannot be had now is named, not the whole view
  // lost.
  const mine = await Promise.all(events.map((e) => api(`/v1/events/${enc(e.id)}/me/bookings`, { auth: true })
    .then((list) => ({ e, ...list }), (err) => ({ e, failed: err }))));
  const failed = mine.filter((m) => m.failed);
  if (failed.some((m) => m.failed.status === 401) && !session.token) {
    // The token no longer holds (the refusal signed the fan out): say
    // so once.
    await ticketsPage();
    return;
  }
  const booked = mine.filter((m) => m.total > 0);
  // Sections are named from the event's details; by their ids when those
  // cannot be had.
  const details = await Promise.all(booked.map((m) => api(`/v1/events/${enc(m.e.id)}`).catch(() => ({ sections: [] }))));
  const items = booked.flatMap((m, k) => m.bookings.map((b) => {
    const section = (details[k].sections.find((s) => s.id === b.section) || { name: `Section ${b.section}` }).name;
    const what = `${m.e.name} · ${section}: ${claimName(b)}`;
    return { b, what: b.status === 'cancelled' ? `${what} (cancelled)` : what };
  }));
  items.sort((x, y) => Date.parse(y.b.confirmed_at) - Date.parse(x.b.confirmed_at));
  const older = booked.reduce((n, m) => n + m.total - m.bookings.length, 0);
  const names = failed.map((m) => m.e.name).join(', ');
  fill(main,
    heading('My tickets'),
    items.length
      ? el('ul', { class: 'bookings' }, ...items.map(({ b, what }) => el('li', {}, el('a', { href: `#/bookings/${enc(b.id)}`, 'data-booking': b.id }, what))))
      : el('p', {}, failed.length ? 'No other bookings.' : 'You have no bookings yet.'),
    older ? el('p', { class: 'meta' }, `${plural(older, 'older booking is', 'older bookings are')} not listed: each is in the email it sent.`) : null,
    failed.length ? el('p', { class: 'error', role: 'alert' }, `Your bookings of ${names} could not be loaded: ${failed[0].failed.message}`) : null,
  );
}

window.addEventListener('hashchange', route);
showAccount();
route();
