// Switchboard's web console: calls live and past, a call's history (its facts, events,
// transcript, recordings and SIP ladder), an account's numbers and applications, and the
// operator's trunks, routes and accounts (the admin API's, beside the file's) with the audit
// of their changes. An account
// signs in with its SID and auth token and sees its own calls; the operator signs in with the
// admin token (`http.admin_token`) and sees every call, routed calls between trunks
// included. It is a client of Switchboard's own API (`/v1/calls…`, `/v1/recordings…`, the live
// socket `/v1/live`) and, for an account's numbers and applications, of the REST API in
// Twilio's shape; its softphone (phone.js) is a browser leg. Plain script, no build step: the
// binary embeds it.
//
// Everything shown comes from the network (a caller's number is whatever a SIP peer wrote), so
// the page builds text nodes only, never HTML from data.
'use strict';

const LIVE = new Set(['queued', 'initiated', 'ringing', 'in-progress']);

const $ = (selector, root = document) => root.querySelector(selector);

/// An element with attributes (`class`, `data-*`, properties for `on*`) and children (strings
/// become text).
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key.startsWith('on')) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/// Who is signed in: an account (`account` is its SID) or the operator (no account).
const session = {
  get account() { return sessionStorage.getItem('account') || ''; },
  get secret() { return sessionStorage.getItem('secret'); },
  get signedIn() { return sessionStorage.getItem('secret') !== null; },
  get operator() { return this.signedIn && !this.account; },
  set(account, secret) {
    sessionStorage.setItem('account', account);
    sessionStorage.setItem('secret', secret);
  },
  clear() { sessionStorage.clear(); },
};

const authorization = () => (session.operator
  ? `Bearer ${session.secret}`
  : 'Basic ' + btoa(`${session.account}:${session.secret}`));

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/// A request with the account's credentials; the JSON answer, or an ApiError.
async function api(path, options = {}) {
  const headers = { Authorization: authorization(), ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return options.raw ? response : response.json();
}

const rest = (path) => `/2010-04-01/Accounts/${session.account}${path}`;

/// The wall time of Unix milliseconds, to the millisecond.
const clock = (ms) => new Date(ms).toISOString().slice(11, 23);

/// Seconds as m:ss (or h:mm:ss).
function length(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const [h, m, r] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const pad = (n) => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(r)}` : `${m}:${pad(r)}`;
}

// ---- The live socket: one per signed-in page, reopened when it drops. ----

const live = { socket: null, listeners: new Set(), retry: null };

async function connectLive() {
  clearTimeout(live.retry);
  if (!session.signedIn) return;
  let minted;
  try {
    minted = await api('/v1/live/tokens', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ttl_secs: 3600 }),
    });
  } catch (e) {
    live.retry = setTimeout(connectLive, 5000);
    return;
  }
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(`${scheme}//${location.host}${minted.url}`);
  live.socket = socket;
  socket.onopen = () => showSocket(true);
  socket.onmessage = (m) => {
    const event = JSON.parse(m.data);
    for (const listener of live.listeners) listener(event);
  };
  socket.onclose = () => {
    showSocket(false);
    if (live.socket === socket && session.signedIn) live.retry = setTimeout(connectLive, 2000);
  };
}

function showSocket(open) {
  const badge = $('#socket');
  badge.textContent = open ? 'live' : 'offline';
  badge.classList.toggle('open', open);
}

/// Listens to the live socket while the current view lasts.
let viewListener = null;
function onLive(listener) {
  if (viewListener) live.listeners.delete(viewListener);
  viewListener = listener;
  if (listener) live.listeners.add(listener);
}

// ---- Views ----

function signInView(problem) {
  const form = el('form', { class: 'sign-in' },
    el('label', {}, 'Account SID', el('input', { name: 'account', autocomplete: 'username', placeholder: 'AC… (empty: the operator)' })),
    el('label', {}, 'Auth token, or the admin token', el('input', { name: 'secret', type: 'password', required: '', autocomplete: 'current-password' })),
    el('button', { type: 'submit' }, 'Sign in'),
    problem ? el('p', { class: 'error', id: 'sign-in-error' }, problem) : null);
  form.onsubmit = async (e) => {
    e.preventDefault();
    session.set(form.account.value.trim(), form.secret.value);
    // Checked with Switchboard's own API: a provider API's 401 asks for Basic credentials
    // (WWW-Authenticate), which would have the browser prompt for them.
    try {
      await api('/v1/live/tokens', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
    } catch (err) {
      session.clear();
      return show(signInView(err.status === 401 ? 'Those credentials were refused.' : `Signing in failed: ${err.message || err.status}`));
    }
    signedIn();
    go('#/calls');
  };
  $('#nav').hidden = true;
  return [el('h2', {}, 'Sign in'), form];
}

function callRow(call) {
  const row = el('tr', { 'data-call': call.id },
    el('td', { class: 'sid' }, el('a', { href: `#/calls/${call.id}` }, call.id)),
    el('td', {}, call.from), el('td', {}, call.to), el('td', {}, call.direction),
    el('td', {}, [call.trunk_in || call.user_in, call.trunk_out || call.user_out].filter(Boolean).join(' → ')),
    el('td', { class: `status ${call.status}` }, call.status),
    el('td', { class: 'duration' }, call.duration_secs ? length(call.duration_secs) : ''));
  row.answeredAt = call.status === 'in-progress' && call.answered_at ? Date.parse(call.answered_at) : null;
  return row;
}

function setStatus(row, status) {
  const cell = $('.status', row);
  cell.textContent = status;
  cell.className = `status ${status}`;
}

const table = (id) => el('table', { id },
  el('thead', {}, el('tr', {}, ['Call', 'From', 'To', 'Direction', 'Trunks', 'Status', 'Length'].map((h) => el('th', {}, h)))),
  el('tbody'));

async function callsView() {
  const liveTable = table('live-calls');
  const recentTable = table('recent-calls');
  const listed = await api('/v1/calls?limit=50');
  for (const call of listed.calls) {
    $('tbody', LIVE.has(call.status) ? liveTable : recentTable).append(callRow(call));
  }
  const rowOf = (sid) => $(`tr[data-call="${sid}"]`, liveTable);
  // A call first seen by an event is fetched; the events that come meanwhile wait for its row
  // and are applied in order once it is there (its answer must not be lost to the fetch).
  const waiting = new Map();
  const apply = (row, event) => {
    switch (event.event) {
      case 'incoming': case 'initiated': setStatus(row, 'initiated'); break;
      case 'ringing': case 'early-media': setStatus(row, 'ringing'); break;
      case 'answered': setStatus(row, 'in-progress'); row.answeredAt = event.at; break;
      case 'hangup':
        setStatus(row, event.status);
        if (row.answeredAt) $('.duration', row).textContent = length((event.at - row.answeredAt) / 1000);
        row.answeredAt = null;
        $('tbody', recentTable).prepend(row);
        break;
      default: break;
    }
  };
  onLive(async (event) => {
    const row = rowOf(event.call);
    if (row) return apply(row, event);
    if ($(`tr[data-call="${event.call}"]`, recentTable)) return;
    const queued = waiting.get(event.call);
    if (queued) {
      if (queued.length < 64) queued.push(event);
      return;
    }
    if (waiting.size >= 256) return;
    waiting.set(event.call, [event]);
    let call;
    try {
      call = (await api(`/v1/calls/${event.call}`)).call;
    } catch (_) {
      waiting.delete(event.call);
      return;
    }
    const events = waiting.get(event.call);
    waiting.delete(event.call);
    const fetched = callRow(call);
    if (!LIVE.has(call.status)) {
      // Over already: its record says all.
      $('tbody', recentTable).prepend(fetched);
      return;
    }
    // Its events since, in order: the last says where it is now.
    $('tbody', liveTable).prepend(fetched);
    for (const e of events) apply(fetched, e);
  });
  return [el('h2', {}, 'Live calls'), liveTable, el('h2', {}, 'Recent calls'), recentTable];
}

/// Ticks the length of answered calls shown.
setInterval(() => {
  for (const row of document.querySelectorAll('#live-calls tr[data-call]')) {
    if (row.answeredAt) $('.duration', row).textContent = length((Date.now() - row.answeredAt) / 1000);
  }
}, 1000);

function timelineItem(event) {
  const { event: name, seq, at, call, ...fields } = event;
  return el('li', { 'data-event': name, 'data-seq': seq },
    el('span', { class: 'at' }, clock(at)),
    el('span', { class: 'what' }, name),
    el('span', { class: 'detail' }, Object.keys(fields).length ? JSON.stringify(fields) : ''));
}

function transcriptItem(event) {
  return el('p', { class: 'transcript', 'data-track': event.track },
    el('span', { class: 'track' }, event.track === 'inbound' ? 'said' : 'heard'), event.text);
}

function recordingsOf(list, into) {
  into.replaceChildren(...(list.length ? list.map(recordingItem) : [el('p', { class: 'empty' }, 'No recording.')]));
}

function recordingItem(recording) {
  const audio = el('audio', { id: `audio-${recording.id}`, controls: '' });
  const play = el('button', {
    type: 'button',
    class: 'play',
    // The media needs the credentials, which an <audio> element cannot send: fetched with
    // them, then played from memory.
    onclick: async () => {
      if (!audio.src) {
        const response = await api(`/v1/recordings/${recording.id}.wav`, { raw: true });
        audio.src = URL.createObjectURL(await response.blob());
      }
      await audio.play();
    },
  }, 'Play');
  // Playable once saved: until then (the call may be over, its recording still being
  // written) there is no media to fetch, and the list is shown again on `recording-saved`.
  const saved = recording.status === 'completed';
  return el('div', { class: 'recording', 'data-recording': recording.id, 'data-status': recording.status },
    el('span', { class: 'sid' }, recording.id), el('span', {}, `${(recording.duration_ms / 1000).toFixed(1)} s`),
    el('span', {}, recording.status), ...(saved ? [play, audio] : []));
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

/// The call's SIP ladder: Switchboard's column and one per peer address, an arrow per message
/// labelled with its first line; a message's text shows when its arrow is clicked.
async function ladderOf(sid, into) {
  const { kept, messages } = await api(`/v1/calls/${sid}/sip`);
  if (!messages.length) {
    into.replaceChildren(el('p', { class: 'empty' }, kept ? 'No SIP message kept for this call.' : 'The server keeps no SIP messages (sip.trace_retention_secs = 0).'));
    return;
  }
  const peers = [...new Set(messages.map((m) => m.remote))];
  const columns = ['Switchboard', ...peers];
  const [width, row, top] = [220, 26, 40];
  const x = (name) => 110 + width * columns.indexOf(name);
  const height = top + row * messages.length + 10;
  const picture = svg('svg', { id: 'ladder', width: 110 + width * columns.length, height, role: 'img' });
  picture.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#3a4a66' }))));
  columns.forEach((name) => {
    picture.append(svg('text', { x: x(name), y: 16, 'text-anchor': 'middle', class: 'party' }, name));
    picture.append(svg('line', { x1: x(name), y1: 24, x2: x(name), y2: height, class: 'lifeline' }));
  });
  const shown = el('pre', { id: 'sip-message', hidden: '' });
  messages.forEach((m, i) => {
    const first = m.message.split('\r\n', 1)[0];
    const [from, to] = m.direction === 'out' ? ['Switchboard', m.remote] : [m.remote, 'Switchboard'];
    const y = top + row * i + 14;
    const label = first.startsWith('SIP/2.0 ') ? first.slice(8) : first.split(' ')[0];
    const group = svg('g', { class: 'message', 'data-label': label, 'data-direction': m.direction },
      // The whole row takes the click, not only the strokes and letters.
      svg('rect', { x: 0, y: y - row + 6, width: 110 + width * columns.length, height: row, class: 'hit' }),
      svg('text', { x: 4, y: y + 4, class: 'at' }, clock(m.at)),
      svg('line', { x1: x(from), y1: y, x2: x(to), y2: y, 'marker-end': 'url(#arrow)' }),
      svg('text', { x: (x(from) + x(to)) / 2, y: y - 4, 'text-anchor': 'middle' }, label));
    group.onclick = () => {
      shown.hidden = false;
      shown.textContent = `${clock(m.at)} ${m.direction === 'out' ? 'to' : 'from'} ${m.remote} over ${m.transport}\n\n${m.message}`;
    };
    picture.append(group);
  });
  const download = el('button', {
    type: 'button',
    id: 'pcap',
    onclick: async () => {
      const response = await api(`/v1/calls/${sid}/sip.pcap`, { raw: true });
      const link = el('a', { href: URL.createObjectURL(await response.blob()), download: `${sid}.pcap` });
      link.click();
    },
  }, 'Download pcap');
  into.replaceChildren(el('div', { class: 'ladder' }, picture), download, shown);
}

async function callView(sid) {
  const facts = el('dl', { class: 'facts', id: 'call-facts' });
  const recordings = el('div', { id: 'recordings' });
  const showCall = async () => {
    const { call, recordings: list } = await api(`/v1/calls/${sid}`);
    const legs = call.legs.map((l) => `${l.leg}: ${l.codec || '-'} from ${l.remote_rtp || '-'}, ${l.packets_in} in / ${l.packets_out} out, ${l.lost} lost`);
    facts.replaceChildren(...[
      ['Call', call.id], ['From', call.from], ['To', call.to], ['Direction', call.direction],
      ['Trunks', [call.trunk_in || call.user_in, call.trunk_out || call.user_out].filter(Boolean).join(' → ')],
      ['Status', call.status], ['Started', call.started_at], ['Answered', call.answered_at], ['Ended', call.ended_at],
      ['Length', call.answered_at ? `${call.duration_secs} s` : ''], ['Hung up', [call.hangup_by, call.hangup_cause].filter(Boolean).join(': ')],
      ['Legs', legs.join('; ')],
    ].flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-fact': k.toLowerCase() }, v || '')]));
    recordingsOf(list, recordings);
  };
  const timeline = el('ol', { class: 'timeline', id: 'timeline' });
  const transcripts = el('div', { id: 'transcripts' }, el('p', { class: 'empty' }, 'Nothing transcribed.'));
  const ladder = el('div', { id: 'sip' });
  const seen = new Set();
  const add = (event) => {
    if (seen.has(event.seq)) return;
    // Interim transcripts are replaced by the final one: shown live, not kept.
    if (event.event === 'transcript' && !event.is_final) return;
    seen.add(event.seq);
    timeline.append(timelineItem(event));
    if (event.event === 'transcript') {
      $('.empty', transcripts)?.remove();
      transcripts.append(transcriptItem(event));
    }
  };
  onLive(async (event) => {
    if (event.call !== sid) return;
    add(event);
    if (event.event === 'hangup') {
      await showCall();
      await ladderOf(sid, ladder);
    }
    if (event.event === 'recording-saved') await showCall();
  });
  // Listening before the first look: an event that comes while the call is fetched is not
  // lost. One that came before listening is in the history; a save there means the first look
  // may have caught the recording still being written, so the call is looked at again.
  await showCall();
  const history = await api(`/v1/calls/${sid}/events`);
  history.events.forEach(add);
  if (history.events.some((e) => e.event === 'recording-saved')) await showCall();
  await ladderOf(sid, ladder);
  return [el('h2', {}, 'Call'), facts, el('h2', {}, 'Transcript'), transcripts,
    el('h2', {}, 'Recordings'), recordings, el('h2', {}, 'Events'), timeline,
    el('h2', {}, 'SIP'), ladder];
}

async function listView(title, path, key, columns) {
  const listed = await api(rest(path));
  const rows = listed[key] || [];
  const body = rows.map((item) => el('tr', { 'data-sid': item.sid }, columns.map(([, field]) => el('td', {}, item[field] || ''))));
  return [el('h2', {}, title), rows.length
    ? el('table', { id: key }, el('thead', {}, el('tr', {}, columns.map(([h]) => el('th', {}, h)))), el('tbody', {}, body))
    : el('p', { class: 'empty' }, 'None.')];
}

// ---- The operator's configuration: trunks, routes and accounts through the admin API ----

/// A definition typed as JSON (the configuration file's table keys), or an error shown.
function definitionOf(text, problem) {
  try {
    const value = JSON.parse(text);
    if (value && typeof value === 'object' && !Array.isArray(value)) return value;
  } catch (_) { /* shown below */ }
  problem.textContent = 'A definition is a JSON object of the file\'s table keys.';
  return null;
}

/// Sends a change; the view is shown again once it is in force, or the API's refusal is
/// shown (it names the key at fault).
async function change(path, method, body, problem, again) {
  try {
    await api(path, {
      method,
      raw: true,
      headers: { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.status === 401) return signOut();
    problem.textContent = err.message;
    return;
  }
  show(await again());
}

/// Trunks or accounts (`what`: `trunks`, `accounts`; each named by `key`): the file's names,
/// what the API added (with a button to remove each) and a form to add or replace one.
async function namedView(what, title, key, example) {
  const listed = await api(`/admin/v1/${what}`);
  const problem = el('p', { class: 'error', id: `${what}-problem` });
  const again = () => namedView(what, title, key, example);
  const rows = (listed.api || []).map((item) => el('tr', { 'data-name': item[key] },
    el('td', { class: 'sid' }, item[key]),
    el('td', { class: 'detail' }, JSON.stringify(item)),
    el('td', {}, el('button', {
      type: 'button',
      class: 'remove',
      onclick: () => change(`/admin/v1/${what}/${encodeURIComponent(item[key])}`, 'DELETE', undefined, problem, again),
    }, 'Remove'))));
  const name = el('input', { name: 'name', required: 'required', placeholder: key });
  const definition = el('textarea', { name: 'definition', rows: 4, cols: 60 }, example);
  const form = el('form', {
    class: 'definition',
    onsubmit: (e) => {
      e.preventDefault();
      problem.textContent = '';
      const body = definitionOf(definition.value, problem);
      if (body) change(`/admin/v1/${what}/${encodeURIComponent(name.value)}`, 'PUT', body, problem, again);
    },
  }, name, definition, el('button', { type: 'submit' }, 'Add'));
  return [
    el('h2', {}, `${title} in the configuration file`),
    el('p', { id: `${what}-file` }, (listed.file || []).join(', ') || 'None.'),
    el('h2', {}, `${title} added here`),
    rows.length ? el('table', { id: `${what}-api` }, el('tbody', {}, rows)) : el('p', { class: 'empty' }, 'None.'),
    el('h2', {}, `Add or replace one (the file's [[${what}]] keys, as JSON)`), form, problem,
  ];
}

async function routesView() {
  const listed = await api('/admin/v1/routes');
  const problem = el('p', { class: 'error', id: 'routes-problem' });
  const rows = (listed.api || []).map(({ id, route }) => el('tr', { 'data-id': id },
    el('td', { class: 'sid' }, id),
    el('td', { class: 'detail' }, JSON.stringify(route)),
    el('td', {}, el('button', {
      type: 'button',
      class: 'remove',
      onclick: () => change(`/admin/v1/routes/${encodeURIComponent(id)}`, 'DELETE', undefined, problem, routesView),
    }, 'Remove'))));
  const definition = el('textarea', { name: 'definition', rows: 3, cols: 60 }, '{"pattern": "^[+]?1", "trunk": ""}');
  const form = el('form', {
    class: 'definition',
    onsubmit: (e) => {
      e.preventDefault();
      problem.textContent = '';
      const body = definitionOf(definition.value, problem);
      if (body) change('/admin/v1/routes', 'POST', body, problem, routesView);
    },
  }, definition, el('button', { type: 'submit' }, 'Add'));
  return [
    el('h2', {}, 'Routes in the configuration file'),
    el('ol', { id: 'routes-file' }, (listed.file || []).map((r) => el('li', {}, JSON.stringify(r)))),
    el('h2', {}, 'Routes added here (after the file\'s)'),
    rows.length ? el('table', { id: 'routes-api' }, el('tbody', {}, rows)) : el('p', { class: 'empty' }, 'None.'),
    el('h2', {}, 'Add one (the file\'s [[routes]] keys, as JSON)'), form, problem,
  ];
}

async function auditView() {
  const { entries } = await api('/admin/v1/audit');
  const rows = (entries || []).map((e) => el('tr', {},
    el('td', {}, e.at), el('td', {}, e.who), el('td', { class: 'action' }, e.action),
    el('td', { class: 'subject' }, e.subject),
    el('td', { class: 'detail' }, e.detail === null ? '' : JSON.stringify(e.detail))));
  return [el('h2', {}, 'Changes made through the admin API, newest first'), rows.length
    ? el('table', { id: 'audit' }, el('thead', {}, el('tr', {},
      ['When', 'Who', 'What', 'Of', 'Detail'].map((h) => el('th', {}, h)))), el('tbody', {}, rows))
    : el('p', { class: 'empty' }, 'None.')];
}

// ---- Navigation ----

function show(nodes) {
  $('#main').replaceChildren(...nodes);
}

async function route() {
  if (!session.signedIn) {
    onLive(null);
    return show(signInView());
  }
  const hash = location.hash || '#/calls';
  const call = hash.match(/^#\/calls\/(CA[0-9a-f]{32})$/);
  try {
    if (call) show(await callView(call[1]));
    else if (hash === '#/numbers' && !session.operator) {
      onLive(null);
      show(await listView('Numbers', '/IncomingPhoneNumbers.json', 'incoming_phone_numbers',
        [['Number', 'phone_number'], ['Name', 'friendly_name'], ['Voice URL', 'voice_url'], ['Application', 'voice_application_sid']]));
    } else if (hash === '#/applications' && !session.operator) {
      onLive(null);
      show(await listView('Applications', '/Applications.json', 'applications',
        [['Application', 'sid'], ['Name', 'friendly_name'], ['Voice URL', 'voice_url']]));
    } else if (hash === '#/trunks' && session.operator) {
      onLive(null);
      show(await namedView('trunks', 'Trunks', 'name', '{"address": "192.0.2.10:5060"}'));
    } else if (hash === '#/routes' && session.operator) {
      onLive(null);
      show(await routesView());
    } else if (hash === '#/accounts' && session.operator) {
      onLive(null);
      show(await namedView('accounts', 'Accounts', 'sid', '{"auth_token": ""}'));
    } else if (hash === '#/audit' && session.operator) {
      onLive(null);
      show(await auditView());
    } else if (hash === '#/phone') {
      onLive(null);
      show(phoneView());
    } else show(await callsView());
  } catch (err) {
    if (err.status === 401) return signOut();
    show([el('p', { class: 'error' }, err.message)]);
  }
}

function signedIn() {
  $('#nav').hidden = false;
  $('#who').textContent = session.operator ? 'operator' : session.account;
  // Numbers and applications are an account's.
  for (const link of document.querySelectorAll('nav a.account-only')) link.hidden = session.operator;
  // Trunks, routes, accounts and their audit are the operator's.
  for (const link of document.querySelectorAll('nav a.operator-only')) link.hidden = !session.operator;
  connectLive();
}

function signOut() {
  phoneSignOut();
  session.clear();
  const socket = live.socket;
  live.socket = null;
  if (socket) socket.close();
  go('');
}

/// Shows the view of `hash`: a change of hash routes by itself (`hashchange`), the same hash
/// is routed again here. Routing twice would render the view twice, the first one's inputs
/// and listeners lost under the second.
function go(hash) {
  const now = location.hash === '#' ? '' : location.hash;
  if (now === hash) route();
  else location.hash = hash;
}

$('#sign-out').onclick = signOut;
window.addEventListener('hashchange', route);
if (session.signedIn) signedIn();
route();
