// The image repository's web UI: plain browser JavaScript over the public
// IMGAPI (GET /channels, GET /images, GET /images/:uuid, HEAD …/file), read
// exactly as a client reads it. No framework, no build step.
//
// State lives in the URL hash (#channel=dev&image=<uuid>), so links, the
// back button and reloads work. The list renders lazily: one <tbody> per
// image name, CHUNK names at a time as the user scrolls; a name's versions
// are built only when it is expanded.

const API_VERSION = '~2';
const PAGE = 1000; // the API's largest page
const CHUNK = 200; // names added to the DOM per step

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const state = {
  /** @type {{name: string, description: string, default?: boolean}[] | null} null: the server has no channels */
  channels: null,
  channel: '',
  /** uuid → manifest, for the loaded channel */
  images: new Map(),
  /** uuid → lower-case text the filter searches */
  text: new Map(),
  /** every name: {key, name, owner, versions (newest first)} */
  groups: [],
  /** the names passing the filter, same shape; versions are the matching ones */
  shown: [],
  /** how many of `shown` are in the DOM */
  rendered: 0,
  /** group keys (owner/name) the user expanded */
  expanded: new Set(),
  selected: '',
  /** a newer load cancels an older one */
  loading: /** @type {AbortController | null} */ (null),
  complete: true,
};

// ---------------------------------------------------------------------------
// Small helpers

/** An element with attributes (class, data-*, others) and children (nodes or text). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...present(children));
  return el;
}

/** Children without the absent ones (`cond && node` yields false, '' or undefined). */
function present(children) {
  return children.filter((c) => c !== undefined && c !== null && c !== false && c !== '');
}

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const published = (img) => img.published_at ?? '';
/** Newest first; images never published (unactivated) last; uuid breaks ties. */
const newestFirst = (a, b) => cmp(published(b), published(a)) || cmp(a.uuid, b.uuid);

function fmtDate(iso) {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, 'Z') : '—';
}

function fmtSize(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** A tag value as ListImages compares it: strings as they are, others as JSON. */
const tagText = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

function base64ToHex(b64) {
  return Array.from(atob(b64), (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { channel: p.get('channel') ?? '', image: p.get('image') ?? '' };
}

function hashFor({ channel = state.channel, image = '' }) {
  const p = new URLSearchParams();
  if (channel) p.set('channel', channel);
  if (image) p.set('image', image);
  return `#${p}`;
}

function setStatus(text, isError = false) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', isError);
}

// ---------------------------------------------------------------------------
// The API

async function api(path, init = {}) {
  const res = await fetch(path, {
    ...init,
    headers: { Accept: 'application/json', 'Accept-Version': API_VERSION },
  });
  if (init.method === 'HEAD') return res;
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(body?.message ?? `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

/**
 * Every image of a channel, paged like IMGAPI clients: ask for PAGE images
 * from the marker (inclusive), drop a first element equal to the marker,
 * stop on a short page. A full page adding nothing new (more than PAGE
 * images sharing one published_at) stops too, marked incomplete.
 */
async function listAll(channel, signal, onPage) {
  const seen = new Map();
  let marker = '';
  for (;;) {
    const q = new URLSearchParams();
    if (channel) q.set('channel', channel);
    q.set('state', 'all');
    q.set('limit', String(PAGE));
    if (marker) q.set('marker', marker);
    const page = await api(`/images?${q}`, { signal });
    const fresh = marker && page[0]?.uuid === marker ? page.slice(1) : page;
    let added = 0;
    for (const img of fresh) {
      if (seen.has(img.uuid)) continue;
      seen.set(img.uuid, img);
      added++;
    }
    onPage(seen.size);
    if (page.length < PAGE) return { images: seen, complete: true };
    if (added === 0) return { images: seen, complete: false };
    marker = page[page.length - 1].uuid;
  }
}

/** One image by uuid from any channel (for origins outside the loaded listing); null when absent. */
async function fetchImage(uuid) {
  const q = state.channels ? '?channel=*' : '';
  try {
    return await api(`/images/${encodeURIComponent(uuid)}${q}`);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

function fileUrl(img) {
  const channel = state.channel === '*' ? img.channels?.[0] : state.channel;
  return `/images/${img.uuid}/file${channel ? `?channel=${encodeURIComponent(channel)}` : ''}`;
}

// ---------------------------------------------------------------------------
// Loading a channel

async function loadChannel(channel) {
  state.loading?.abort();
  const ctl = new AbortController();
  state.loading = ctl;
  state.channel = channel;
  const table = $('images');
  table.dataset.state = 'loading';
  table.dataset.channel = channel;
  delete table.dataset.paintMs;
  if (state.channels) /** @type {HTMLSelectElement} */ ($('channel')).value = channel;
  setStatus('Loading…');
  const t0 = performance.now();
  let result;
  try {
    result = await listAll(channel, ctl.signal, (n) => {
      setStatus(`Loading… ${n.toLocaleString('en')} images`);
    });
  } catch (err) {
    if (ctl.signal.aborted) return;
    table.dataset.state = 'error';
    setStatus(`Could not list images: ${err.message}`, true);
    return;
  }
  if (ctl.signal.aborted) return;
  const t1 = performance.now();
  state.images = result.images;
  state.complete = result.complete;
  indexImages();
  applyFilter();
  const t2 = performance.now();
  table.dataset.fetchMs = String(Math.round(t1 - t0));
  table.dataset.renderMs = String(Math.round(t2 - t1));
  table.dataset.state = 'ready';
  showSelection();
  // The time to the next frame includes style and layout of what was built.
  requestAnimationFrame(() => {
    setTimeout(() => {
      table.dataset.paintMs = String(Math.round(performance.now() - t1));
    }, 0);
  });
}

/** Search text per image, and the images grouped per owner+name (newest name first). */
function indexImages() {
  const text = new Map();
  const byKey = new Map();
  for (const img of state.images.values()) {
    const tags = Object.entries(img.tags ?? {}).map(([k, v]) => `${k}=${tagText(v)}`);
    text.set(img.uuid, [img.name, img.version, img.uuid, ...tags].join('\n').toLowerCase());
    const key = `${img.owner}/${img.name}`;
    let g = byKey.get(key);
    if (!g) byKey.set(key, (g = { key, name: img.name, owner: img.owner, versions: [] }));
    g.versions.push(img);
  }
  for (const g of byKey.values()) g.versions.sort(newestFirst);
  state.text = text;
  state.groups = [...byKey.values()].sort(
    (a, b) => newestFirst(a.versions[0], b.versions[0]) || cmp(a.key, b.key),
  );
}

// ---------------------------------------------------------------------------
// The list

function applyFilter() {
  const needle = /** @type {HTMLInputElement} */ ($('filter')).value.trim().toLowerCase();
  if (needle === '') {
    state.shown = state.groups.map((g) => ({ ...g, total: g.versions.length }));
  } else {
    state.shown = [];
    for (const g of state.groups) {
      const versions = g.versions.filter((img) => state.text.get(img.uuid).includes(needle));
      if (versions.length > 0) state.shown.push({ ...g, versions, total: g.versions.length });
    }
  }
  renderList();
  const n = state.images.size.toLocaleString('en');
  const where = state.channels
    ? ` in ${state.channel === '*' ? 'all channels' : `channel ${state.channel}`}`
    : '';
  const names = state.groups.length.toLocaleString('en');
  const shown = state.shown.length;
  const match = needle
    ? ` · ${shown.toLocaleString('en')} ${shown === 1 ? 'name matches' : 'names match'}`
    : '';
  const partial = state.complete ? '' : ' · listing incomplete (paging stopped)';
  setStatus(`${n} images, ${names} names${where}${match}${partial}`, !state.complete);
}

function renderList() {
  const table = $('images');
  table.replaceChildren(/** @type {HTMLTableElement} */ (table).tHead);
  state.rendered = 0;
  if (state.shown.length === 0) {
    const empty = state.images.size === 0 ? 'No images.' : 'No image matches the filter.';
    table.append(h('tbody', {}, h('tr', { class: 'empty' }, h('td', { colspan: 6 }, empty))));
  }
  renderMore(CHUNK);
}

function renderMore(upTo = state.rendered + CHUNK) {
  const end = Math.min(upTo, state.shown.length);
  const frag = document.createDocumentFragment();
  for (let i = state.rendered; i < end; i++) frag.append(groupBody(state.shown[i]));
  $('images').append(frag);
  state.rendered = Math.max(state.rendered, end);
  const more = $('more');
  more.hidden = state.rendered >= state.shown.length;
  more.textContent = `Showing ${state.rendered.toLocaleString('en')} of ${state.shown.length.toLocaleString('en')} names; scroll for more`;
  // Re-observing reports the sentinel again if it is still in view.
  moreObserver.unobserve(more);
  if (!more.hidden) moreObserver.observe(more);
}

const moreObserver = new IntersectionObserver(
  (entries) => {
    if (entries.some((e) => e.isIntersecting)) renderMore();
  },
  { rootMargin: '800px' },
);

function imageLink(img, label) {
  return h('a', { href: hashFor({ image: img.uuid }), 'data-uuid': img.uuid }, label);
}

function stateBadge(img) {
  return h('span', { class: `state ${img.state}` }, img.state);
}

function groupBody(g) {
  const img = g.versions[0];
  const open = state.expanded.has(g.key);
  const count = g.versions.length === g.total ? `${g.total}` : `${g.versions.length} of ${g.total}`;
  const body = h(
    'tbody',
    { class: open ? 'group open' : 'group', 'data-key': g.key },
    h(
      'tr',
      { class: 'head', 'data-uuid': img.uuid },
      h('td', {}, h('button', { type: 'button', class: 'twisty', 'aria-expanded': String(open) }, g.name)),
      h('td', {}, imageLink(img, img.version)),
      h('td', {}, stateBadge(img)),
      h('td', {}, fmtDate(img.published_at)),
      h('td', {}, `${img.os} / ${img.type}`),
      h('td', { class: 'num' }, count),
    ),
  );
  if (open) body.append(...g.versions.map(versionRow));
  if (state.selected) markSelected(body);
  return body;
}

function versionRow(img) {
  const file = img.files?.[0];
  return h(
    'tr',
    { class: 'version', 'data-uuid': img.uuid },
    h('td', {}, h('code', {}, img.uuid)),
    h('td', {}, imageLink(img, img.version)),
    h('td', {}, stateBadge(img)),
    h('td', {}, fmtDate(img.published_at)),
    h('td', {}, `${img.os} / ${img.type}`),
    h('td', { class: 'num' }, file ? fmtSize(file.size) : 'no file'),
  );
}

function setExpanded(body, open) {
  const key = body.dataset.key;
  const g = state.shown.find((x) => x.key === key);
  if (!g || body.classList.contains('open') === open) return;
  body.classList.toggle('open', open);
  body.querySelector('.twisty').setAttribute('aria-expanded', String(open));
  if (open) {
    state.expanded.add(key);
    body.append(...g.versions.map(versionRow));
    markSelected(body);
  } else {
    state.expanded.delete(key);
    for (const row of body.querySelectorAll('tr.version')) row.remove();
  }
}

function markSelected(root) {
  for (const row of root.querySelectorAll('tr.selected')) row.classList.remove('selected');
  if (!state.selected) return;
  for (const row of root.querySelectorAll(`tr[data-uuid="${CSS.escape(state.selected)}"]`)) {
    row.classList.add('selected');
  }
}

// ---------------------------------------------------------------------------
// The selected image

function showSelection() {
  const uuid = state.selected;
  markSelected($('images'));
  const details = $('details');
  if (!uuid) {
    details.hidden = true;
    return;
  }
  const img = state.images.get(uuid);
  if (!img) {
    void showOutside(uuid);
    return;
  }
  renderDetails(img, '');
  // Bring its name into the DOM, open it, and scroll to the row.
  const index = state.shown.findIndex((g) => g.versions.some((v) => v.uuid === uuid));
  if (index < 0) return;
  if (index >= state.rendered) renderMore(index + 1);
  const body = $('images').querySelector(`tbody[data-key="${CSS.escape(state.shown[index].key)}"]`);
  if (!body) return;
  if (state.shown[index].versions[0].uuid !== uuid) setExpanded(body, true);
  body.querySelector(`tr.version[data-uuid="${uuid}"], tr.head[data-uuid="${uuid}"]`)?.scrollIntoView({
    block: 'nearest',
  });
}

/** An image not in the loaded listing (an origin from elsewhere, or a stale link). */
async function showOutside(uuid) {
  const details = $('details');
  details.hidden = false;
  details.replaceChildren(h('p', {}, 'Looking up ', h('code', {}, uuid), '…'));
  let img;
  try {
    img = await fetchImage(uuid);
  } catch (err) {
    if (state.selected === uuid) details.replaceChildren(h('p', { class: 'missing' }, err.message));
    return;
  }
  if (state.selected !== uuid) return;
  if (img) {
    renderDetails(img, state.channels ? `Not in channel ${state.channel}.` : 'Not in the listing.');
  } else {
    details.replaceChildren(h('p', { class: 'missing' }, '⚠ No image ', h('code', {}, uuid), ' exists.'));
  }
}

function field(label, ...value) {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

function renderDetails(img, note) {
  const file = img.files?.[0];
  const tags = Object.entries(img.tags ?? {});
  const details = $('details');
  details.hidden = false;
  details.dataset.uuid = img.uuid;
  details.replaceChildren(
    ...present([
      h('h2', {}, `${img.name} `, h('span', { class: 'version' }, img.version)),
      note && h('p', { class: 'missing' }, `⚠ ${note}`),
      img.description && h('p', {}, img.description),
      h(
        'dl',
        {},
        ...field('uuid', h('code', { class: 'uuid' }, img.uuid)),
        ...field('owner', h('code', {}, img.owner)),
        ...field('state', stateBadge(img)),
        ...field('published', fmtDate(img.published_at)),
        ...field('os / type', `${img.os} / ${img.type}`),
        ...(file
          ? [
              ...field(
                'file',
                `${fmtSize(file.size)} (${file.size.toLocaleString('en')} bytes), ${file.compression}`,
              ),
              ...field('sha1', h('code', { class: 'sha1' }, file.sha1)),
              ...field('md5', h('code', { class: 'md5' }, '…')),
            ]
          : field('file', 'none')),
        ...(img.channels ? field('channels', img.channels.join(', ')) : []),
        ...(tags.length > 0
          ? field('tags', ...tags.map(([k, v]) => h('code', { class: 'tag' }, `${k}=${tagText(v)}`)))
          : []),
        ...field('origin chain', originChain(img)),
      ),
      file && h('a', { class: 'download', href: fileUrl(img), download: '' }, 'Download file'),
    ]),
  );
  if (file) void checkFile(img);
}

/**
 * A HEAD of the file: its Content-MD5 header gives the md5 (the manifest has
 * none), and a 404 means the server lost or never got the file.
 */
async function checkFile(img) {
  let md5 = 'unknown';
  let missing = false;
  try {
    const res = await api(fileUrl(img), { method: 'HEAD' });
    const b64 = res.headers.get('content-md5');
    if (res.ok && b64) md5 = base64ToHex(b64);
    missing = res.status === 404;
  } catch {
    // leave it unknown
  }
  const details = $('details');
  if (details.dataset.uuid !== img.uuid) return; // another image is shown by now
  details.querySelector('.md5').textContent = md5;
  if (missing) {
    details
      .querySelector('.download')
      ?.replaceWith(h('p', { class: 'missing no-file' }, '⚠ The server has no file for this image.'));
  }
}

/** A chain link absent from the listing: where is it, if anywhere? */
function missingLink(uuid) {
  const inOne = state.channels && state.channel !== '*';
  const why = h('span', {}, inOne ? ` is not in channel ${state.channel}` : ' is not in the repository');
  if (inOne) {
    fetchImage(uuid)
      .then((o) => {
        why.textContent = o
          ? ` is not in channel ${state.channel} (only in ${(o.channels ?? []).join(', ')})`
          : ' is not in the repository';
      })
      .catch(() => undefined);
  }
  return h('li', { class: 'missing' }, '⚠ missing: ', imageLink({ uuid }, h('code', {}, uuid)), why);
}

/** The origins from the image up to the root, each a link; a missing link ends the chain, marked. */
function originChain(img) {
  if (!img.origin) return h('span', {}, 'none (this is a root image)');
  const list = h('ol', { class: 'chain' });
  const seen = new Set([img.uuid]);
  for (let uuid = img.origin; uuid;) {
    if (seen.has(uuid)) {
      list.append(h('li', { class: 'missing' }, '⚠ cycle back to ', h('code', {}, uuid)));
      break;
    }
    seen.add(uuid);
    const o = state.images.get(uuid);
    if (!o) {
      list.append(missingLink(uuid));
      break;
    }
    list.append(
      h(
        'li',
        {},
        imageLink(o, `${o.name} ${o.version}`),
        ' ',
        h('code', {}, o.uuid.slice(0, 8)),
        !o.origin && h('span', { class: 'root' }, 'root'),
      ),
    );
    uuid = o.origin;
  }
  return list;
}

// ---------------------------------------------------------------------------
// Wiring

async function onHashChange() {
  const { channel, image } = readHash();
  state.selected = image;
  const wanted = state.channels ? channel || state.channel : '';
  if (state.loading === null || wanted !== state.channel) await loadChannel(wanted);
  else showSelection();
}

async function start() {
  try {
    state.channels = await api('/channels');
  } catch (err) {
    if (err.status !== 404) {
      setStatus(`Could not list channels: ${err.message}`, true);
      return;
    }
    state.channels = null; // a repository without channels
  }
  if (state.channels) {
    const select = /** @type {HTMLSelectElement} */ ($('channel'));
    for (const c of state.channels) {
      select.append(
        h('option', { value: c.name, title: c.description }, c.default ? `${c.name} (default)` : c.name),
      );
    }
    select.append(h('option', { value: '*' }, 'all channels'));
    $('channel-label').hidden = false;
    state.channel = state.channels.find((c) => c.default)?.name ?? state.channels[0]?.name ?? '*';
    select.addEventListener('change', () => {
      location.hash = hashFor({ channel: select.value });
    });
  }
  $('filter').addEventListener('input', applyFilter);
  $('images').addEventListener('click', (ev) => {
    const target = /** @type {Element} */ (ev.target);
    if (target.closest('a')) return; // links select through the hash
    const head = target.closest('tr.head');
    const body = head?.parentElement;
    if (body) setExpanded(body, !body.classList.contains('open'));
  });
  window.addEventListener('hashchange', () => void onHashChange());
  await onHashChange();
}

void start();
