// What every page module uses: a small DOM builder, the JSON API (actions carry the CSRF token),
// the confirmation dialog in front of every action, number and duration formats, and what a page
// must stop when it is left (its event stream).

let session;

export function setSession(s) {
  session = s;
}

/** An element: h('td', { class: 'num' }, 'text', child, …). Text is always text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'g', 'rect', 'text', 'path', 'line', 'polyline', 'title', 'circle'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export async function api(path) {
  const res = await fetch(path, { credentials: 'same-origin' });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ?? `${res.status}`);
  return body;
}

export async function post(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf },
    body: JSON.stringify(body ?? {}),
  });
  const out = await res.json();
  if (!res.ok) throw new Error(out.error ?? `${res.status}`);
  return out;
}

/** Asks before an action; resolves true when confirmed. */
export function confirmAction(text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

export function duration(ms) {
  if (ms === undefined || ms === null) return '-';
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

export function num(v) {
  return typeof v === 'number' ? String(Number(v.toPrecision(4))) : v === null || v === undefined ? '-' : String(v);
}

/** What the page being left must stop (its event stream). */
let leaving = [];
export function onLeave(fn) {
  leaving.push(fn);
}

export function leavePage() {
  for (const fn of leaving) fn();
  leaving = [];
}
