// The app's shell: a hash router over the pages (pages.js).
import { runsPage, runPage, comparePage, modelsPage, schedulePage } from './pages.js';
import { h, api, setSession, leavePage } from './dom.js';

async function route() {
  leavePage();
  const main = document.getElementById('main');
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', a.getAttribute('href') === `#/${parts[0] ?? 'runs'}`);
  main.replaceChildren(h('p', {}, 'loading…'));
  try {
    let page;
    if (parts[0] === 'run' && parts[1]) page = await runPage(parts[1]);
    else if (parts[0] === 'compare') page = await comparePage(params.get('runs')?.split(',').filter(Boolean) ?? []);
    else if (parts[0] === 'models') page = await modelsPage();
    else if (parts[0] === 'schedule') page = await schedulePage();
    else page = await runsPage(params);
    main.replaceChildren(page);
  } catch (err) {
    main.replaceChildren(h('p', { class: 'error' }, String(err.message ?? err)));
  }
}

async function start() {
  const session = await api('/api/session');
  setSession(session);
  document.getElementById('pipeline-file').textContent = session.pipeline;
  window.addEventListener('hashchange', route);
  await route();
}

start().catch((err) => {
  document.getElementById('main').replaceChildren(h('p', { class: 'error' }, String(err.message ?? err)));
});
