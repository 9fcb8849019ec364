'use strict';
// The fan's page: the events on sale, an event's sale phases and
// sections, and a section's seats drawn from their coordinates, live from
// the section's seat stream. Plain JavaScript, no dependencies: all it
// reads is the REST API of the server that serves it.

const main = document.getElementById('main');
const SVG = 'http://www.w3.org/2000/svg';
// What the current view keeps open; closed when the fan navigates.
let cleanup = [];

function el(tag, attrs = {}, ...children) {
  const node = ['svg', 'circle', 'title', 'g'].includes(tag)
    ? document.createElementNS(SVG, tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'style') {
      // Through the CSSOM: the page's policy allows no inline style.
      for (const [p, value] of Object.entries(v)) node.style.setProperty(p, value);
    } else if (v !== null && v !== undefined && v !== false) {
      node.setAttribute(k, v);
    }
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// Clear messages for the problems the API answers with.
const PROBLEMS = {
  'event-not-found': 'There is no such event.',
  'section-not-found': 'This event has no such section.',
  overloaded: 'So many fans are here right now that the server asked us to wait. Trying again shortly.',
};

async function api(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' } });
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const kind = body && typeof body.type === 'string' ? body.type.split(':').pop() : '';
    throw new Error(PROBLEMS[kind] || (body && body.detail) || `The server answered ${r.status}.`);
  }
  return body;
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

function span(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  return `${m} min ${String(s % 60).padStart(2, '0')} s`;
}

function heading(text) {
  const h = el('h1', { tabindex: '-1' }, text);
  return h;
}

async function route() {
  for (const stop of cleanup) stop();
  cleanup = [];
  try {
    // A hand-typed address may not decode: that is a message too.
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    if (parts[0] === 'events' && parts[2] === 'sections' && parts[3]) {
      await sectionPage(parts[1], parts[3]);
    } else if (parts[0] === 'events' && parts[1]) {
      await eventPage(parts[1]);
    } else {
      await eventsPage();
    }
  } catch (e) {
    const text = e instanceof URIError ? 'This page has no such address.' : e.message;
    main.replaceChildren(el('p', { class: 'error', role: 'alert' }, text), el('p', {}, el('a', { href: '#/' }, 'All events')));
  }
  const h = main.querySelector('h1');
  if (h) h.focus();
}

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
  main.replaceChildren(heading('Events on sale'), events.length ? list : el('p', {}, 'Nothing is on sale right now.'));
}

// The next opening among an event's phases, if one is ahead.
function nextOpening(phases, now) {
  return phases
    .map((p) => ({ phase: p, at: Date.parse(p.opens_at) }))
    .filter((x) => x.at > now)
    .sort((a, b) => a.at - b.at)[0];
}

// A section's tile colour: how much of it is left.
function level(free, capacity) {
  const share = capacity ? free / capacity : 0;
  return `hsl(${Math.round(share * 130)} 65% 42%)`;
}

async function eventPage(id) {
  const e = await api(`/v1/events/${enc(id)}`);
  document.title = `${e.name}: boxoffice`;
  const phases = el('ul', { class: 'phases' });
  for (const p of e.sale_phases) {
    const who = p.memberships && p.memberships.length ? `members of ${p.memberships.join(', ')}` : 'everyone';
    const until = p.closes_at ? ` until ${when(p.closes_at)}` : '';
    phases.append(el('li', {}, el('strong', {}, p.name), `: from ${when(p.opens_at)}${until}, for ${who}`));
  }
  const countdown = el('p', { class: 'countdown', role: 'timer', 'aria-live': 'off' });
  const tick = () => {
    const next = nextOpening(e.sale_phases, Date.now());
    countdown.textContent = next ? `${next.phase.name} opens in ${span(next.at - Date.now())}` : '';
  };
  tick();
  const timer = setInterval(tick, 1000);
  cleanup.push(() => clearInterval(timer));
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
  main.replaceChildren(
    heading(e.name),
    el('p', { class: 'meta' }, `${e.venue} · ${when(e.starts_at)} · at most ${e.seats_per_hold_max} seats a hold`),
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

// The whole venue, every seat where it is, each section in the colour of
// how much of it is left; a click opens the section. Drawn once the
// seat maps are in; the list of sections above says the same to those
// who do not see it (the drawing is hidden from screen readers).
async function drawArena(e, figure) {
  const began = performance.now();
  const seated = e.sections.filter((s) => s.kind === 'seated');
  const maps = await Promise.all(seated.map((s) => api(`/v1/events/${enc(e.id)}/sections/${enc(s.id)}/seats`)));
  if (!figure.isConnected) return;
  let minX = Infinity; let minY = Infinity; let maxX = -Infinity; let maxY = -Infinity;
  for (const m of maps) {
    for (let i = 0; i < m.x.length; i++) {
      minX = Math.min(minX, m.x[i]); maxX = Math.max(maxX, m.x[i]);
      minY = Math.min(minY, m.y[i]); maxY = Math.max(maxY, m.y[i]);
    }
  }
  const svg = el('svg', {
    class: 'arena', viewBox: `${minX - 1} ${minY - 1} ${maxX - minX + 2} ${maxY - minY + 2}`, 'aria-hidden': 'true',
  });
  const frag = document.createDocumentFragment();
  maps.forEach((m, k) => {
    const s = seated[k];
    const g = el('g', { fill: level(s.free, s.capacity), 'data-section': s.id });
    for (let i = 0; i < m.x.length; i++) {
      g.append(el('circle', { cx: m.x[i], cy: m.y[i], r: 0.45 }));
    }
    frag.append(g);
  });
  svg.append(frag);
  svg.addEventListener('click', (ev) => {
    const g = ev.target.closest('g[data-section]');
    if (g) location.hash = `#/events/${enc(e.id)}/sections/${enc(g.getAttribute('data-section'))}`;
  });
  figure.replaceChildren(svg);
  // When it is on screen, for the browser test's figure.
  requestAnimationFrame(() => {
    svg.setAttribute('data-draw-ms', String(Math.round(performance.now() - began)));
  });
}

const STATE_NAMES = { f: 'available', h: 'held', s: 'sold' };
const PALETTE = ['#5b21b6', '#1d4ed8', '#0f766e', '#15803d', '#7c2d12', '#9d174d', '#334155', '#0369a1'];

async function sectionPage(eventId, sectionId) {
  const [e, map] = await Promise.all([
    api(`/v1/events/${enc(eventId)}`),
    api(`/v1/events/${enc(eventId)}/sections/${enc(sectionId)}/seats`),
  ]);
  const section = e.sections.find((s) => s.id === sectionId) || { name: sectionId };
  document.title = `${section.name}, ${e.name}: boxoffice`;
  const byId = Object.fromEntries(e.categories.map((c) => [c.id, c]));
  const counts = el('p', { class: 'counts' });
  const showCounts = (a) => {
    counts.textContent = `${a.free.toLocaleString()} available · ${a.held.toLocaleString()} held · ${a.sold.toLocaleString()} sold`;
  };
  showCounts(map);
  const states = map.states.split('');
  const label = (i) => {
    const [, row, seat] = map.ids[i].split('/');
    const cat = byId[map.categories[map.category[i]]] || { name: map.categories[map.category[i]], price: 0 };
    return `Section ${sectionId}, row ${row}, seat ${seat}, ${cat.name}, ${money(cat.price, e.currency)}, ${STATE_NAMES[states[i]]}`;
  };
  const nodes = [];
  const rows = [];
  let figure = null;
  if (map.kind === 'seated' && map.ids.length) {
    const xs = map.x;
    const ys = map.y;
    const minX = Math.min(...xs) - 1;
    const minY = Math.min(...ys) - 1;
    const w = Math.max(...xs) - minX + 1;
    const h = Math.max(...ys) - minY + 1;
    const svg = el('svg', { class: 'seats', viewBox: `${minX} ${minY} ${w} ${h}`, role: 'group', 'aria-label': `Seats of section ${section.name}` });
    const frag = document.createDocumentFragment();
    for (let i = 0; i < map.ids.length; i++) {
      const c = el('circle', {
        cx: xs[i], cy: ys[i], r: 0.42,
        fill: PALETTE[map.category[i] % PALETTE.length],
        class: states[i] === 'f' ? null : states[i],
        tabindex: '0', role: 'img',
        'data-seat': map.ids[i], 'data-state': states[i],
        'aria-label': label(i),
      });
      nodes.push(c);
      frag.append(c);
    }
    svg.append(frag);
    figure = svg;
  }
  const present = new Set(map.category);
  const legend = el('p', { class: 'legend' },
    ...map.categories
      .map((id, k) => [id, k])
      .filter(([, k]) => present.has(k))
      .map(([id, k]) => el('span', { style: { '--c': PALETTE[k % PALETTE.length] } }, `${(byId[id] || { name: id }).name} ${byId[id] ? money(byId[id].price, e.currency) : ''}`)),
    el('span', { style: { '--c': 'var(--held)' } }, 'held'),
    el('span', { style: { '--c': 'var(--sold)' } }, 'sold'));
  // Those who cannot use the map read the same seats as a table.
  const list = el('details', {}, el('summary', {}, 'List of seats'));
  list.addEventListener('toggle', () => {
    if (!list.open || rows.length) return;
    const body = el('tbody');
    for (let i = 0; i < map.ids.length; i++) {
      const state = el('td', {}, STATE_NAMES[states[i]]);
      rows.push(state);
      const cat = byId[map.categories[map.category[i]]];
      body.append(el('tr', {}, el('td', {}, map.ids[i]), el('td', {}, cat ? cat.name : ''), el('td', {}, cat ? money(cat.price, e.currency) : ''), state));
    }
    list.append(el('table', { class: 'list' }, el('thead', {}, el('tr', {}, el('th', {}, 'Seat'), el('th', {}, 'Category'), el('th', {}, 'Price'), el('th', {}, 'State'))), body));
  });
  // Repaints only the seats that changed.
  const set = (i, s) => {
    if (states[i] === s || i >= states.length) return;
    states[i] = s;
    const c = nodes[i];
    if (c) {
      if (s === 'f') c.removeAttribute('class'); else c.setAttribute('class', s);
      c.setAttribute('data-state', s);
      c.setAttribute('aria-label', label(i));
    }
    if (rows[i]) rows[i].textContent = STATE_NAMES[s];
  };
  const live = new EventSource(`/v1/events/${enc(eventId)}/sections/${enc(sectionId)}/stream`);
  cleanup.push(() => live.close());
  live.addEventListener('seats', (ev) => {
    const d = JSON.parse(ev.data);
    d.states.split('').forEach((s, i) => set(i, s));
    showCounts(d.availability);
  });
  live.addEventListener('changes', (ev) => {
    const d = JSON.parse(ev.data);
    for (const [key, s] of [['free', 'f'], ['held', 'h'], ['sold', 's']]) {
      for (const i of d[key]) set(i, s);
    }
    showCounts(d.availability);
  });
  main.replaceChildren(
    heading(`Section ${section.name}`),
    el('p', { class: 'meta' }, el('a', { href: `#/events/${enc(e.id)}` }, e.name), ` · ${when(e.starts_at)}`),
    counts,
    figure ? legend : null,
    figure,
    figure ? list : el('p', {}, 'A standing section: places are not numbered.'),
  );
}

window.addEventListener('hashchange', route);
route();
