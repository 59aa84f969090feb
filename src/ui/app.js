import { loadCredential, saveCredential } from './api.js';
import { h } from './dom.js';
import { executionView } from './execution-view.js';
import { executionsView } from './executions-view.js';
import { overviewView } from './overview-view.js';
import { render } from './view.js';
import { workflowView } from './workflow-view.js';

/**
 * The dashboard: a hash router over four views (overview, workflow, executions, execution),
 * each in a module of its own. Each view renders into <main>; leaving a view runs its cleanup
 * (closes streams, timers).
 */

let cleanup = () => {};

// --- Router and credential form ---------------------------------------------------------

function route() {
  cleanup();
  const navigation = new AbortController();
  const { signal } = navigation;
  cleanup = () => navigation.abort();
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query ?? '');
  const parts = (path || '/').split('/').filter(Boolean).map(decodeURIComponent);
  for (const link of document.querySelectorAll('[data-nav]')) {
    const active =
      (parts[0] ?? 'overview') === link.dataset.nav ||
      (parts[0] === 'workflows' && link.dataset.nav === 'overview');
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  // Views handle their own errors; the router only starts them.
  if (parts.length === 0) void overviewView(signal);
  else if (parts[0] === 'workflows' && parts[1]) void workflowView(parts[1], signal);
  else if (parts[0] === 'executions' && parts[1]) {
    const stop = executionView(parts[1]);
    cleanup = () => {
      navigation.abort();
      stop();
    };
  } else if (parts[0] === 'executions') void executionsView(params, signal);
  else
    render(
      'Not found',
      h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Back to the overview')),
    );
}

function setUpCredentialForm() {
  const form = document.getElementById('auth-form');
  const kind = document.getElementById('auth-kind');
  const value = document.getElementById('auth-value');
  const status = document.getElementById('auth-state');
  const show = () => {
    const credential = loadCredential();
    status.textContent = credential
      ? `Using ${credential.kind === 'bearer' ? 'a bearer token' : 'an API key'}`
      : 'No credential';
    if (credential) kind.value = credential.kind;
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const entered = value.value.trim();
    saveCredential(entered ? { kind: kind.value, value: entered } : null);
    value.value = '';
    show();
    route();
  });
  document.getElementById('auth-clear').addEventListener('click', () => {
    saveCredential(null);
    show();
    route();
  });
  show();
}

setUpCredentialForm();
window.addEventListener('hashchange', route);
route();
