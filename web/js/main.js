// main.js - boots the page: the Chat view, the cluster/server views, the
// hash router (#/chat, #/setup, #/join, #/cluster) and the connection dot.

import { $, $$ } from './dom.js';
import { initChat, onShow as showChat, modelChanged } from './chat.js';
import * as cluster from './cluster.js';

const VIEWS = ['chat', 'setup', 'join', 'cluster'];
let currentView = null;

function show(view) {
  if (!VIEWS.includes(view)) view = 'chat';
  if ((view === 'setup' || view === 'join') && !cluster.hasCluster()) view = 'cluster';
  if (currentView === view) return;
  currentView = view;
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
  for (const a of $$('#nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.body.dataset.view = view;
  cluster.setVisible(view);
  if (view === 'chat') showChat();
  else $(`#${view}-title`)?.focus({ preventScroll: true });
  document.title = `${$(`#nav a[data-view="${view}"]`)?.textContent ?? 'Chat'} · Parallax`;
}

function route() {
  const v = location.hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  if (VIEWS.includes(v)) show(v);
  else if (!location.hash || location.hash === '#' || location.hash === '#/') show(cluster.defaultView());
}

async function boot() {
  for (const v of VIEWS) $(`#${v}-title`)?.setAttribute('tabindex', '-1');
  let chatReady = false;
  await cluster.init({ // first: the chat asks /v1/models only once it knows a model is chosen
    onConnection: (ok, text) => {
      $('#conn').classList.toggle('ok', ok);
      $('#conn').classList.toggle('bad', !ok);
      $('#conn .conn-text').textContent = text;
    },
    onMode: () => { if (currentView && currentView !== 'chat') { const v = currentView; currentView = null; show(v); } },
    go: (view) => { location.hash = `#/${view}`; },
    onModelChange: () => { if (chatReady) modelChanged(); },
  });
  initChat();
  chatReady = true;
  window.addEventListener('hashchange', route);
  route();
  if (!currentView) show(cluster.defaultView());
  document.body.classList.add('ready');
}

boot();
