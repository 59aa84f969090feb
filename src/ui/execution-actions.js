import { api } from './api.js';
import { announce, h } from './dom.js';
import { errorBox } from './view.js';

/**
 * What a person may do to one execution from its page (README "Versions, upgrades and
 * edits"): cancel, pause, resume, retry (with corrected input or outputs, previewed by a dry
 * run) and upgrade, each offered only when the execution's status and the caller's role allow
 * it, and each asking for confirmation and a reason. Lives outside the live panels, so a
 * redraw on each step change never wipes a form being filled in.
 */

const ROLE_ORDER = ['viewer', 'operator', 'editor', 'admin'];
const UNFINISHED = ['pending', 'queued', 'running', 'waiting', 'paused'];

const ACTIONS = [
  { name: 'cancel', label: 'Cancel', when: UNFINISHED },
  { name: 'pause', label: 'Pause', when: ['running', 'waiting'] },
  { name: 'resume', label: 'Resume', when: ['paused'] },
  { name: 'retry', label: 'Retry', when: ['failed', 'timed_out'], edits: true },
  { name: 'upgrade', label: 'Upgrade', when: ['running', 'waiting', 'paused', 'failed'] },
];

/** The caller's role, asked once per page load (null when unknown: no actions offered). */
let rolePromise = null;
function callerRole() {
  rolePromise ??= api('/info')
    .then((info) => info.caller?.role ?? null)
    .catch(() => null);
  return rolePromise;
}

const mayOperate = (role) =>
  role !== null && ROLE_ORDER.indexOf(role) >= ROLE_ORDER.indexOf('operator');

/** A dry run's answer as a list: each list-valued field with its items. */
function planList(plan) {
  return h(
    'ul',
    { class: 'plan' },
    Object.entries(plan)
      .filter(([, value]) => Array.isArray(value))
      .map(([key, value]) =>
        h(
          'li',
          { dataset: { part: key } },
          `${key.replaceAll('_', ' ')}: `,
          value.length === 0
            ? 'none'
            : value
                .map((item) => (typeof item === 'string' ? item : JSON.stringify(item)))
                .join(', '),
        ),
      ),
  );
}

/** The fields of the retry form: corrected input and the steps to run again. */
function retryFields(execution, workflow) {
  const input = h('textarea', {
    id: 'action-input',
    name: 'input_data',
    rows: 6,
    spellcheck: false,
  });
  input.value = JSON.stringify(execution.input_data ?? {}, null, 2);
  const steps = h(
    'fieldset',
    { id: 'action-from-steps' },
    h('legend', {}, 'Run again from (default: the failed steps)'),
    workflow.steps.map((step) =>
      h(
        'label',
        { class: 'check' },
        h('input', { type: 'checkbox', name: 'from_steps', value: step.id }),
        ` ${step.name}`,
      ),
    ),
  );
  const read = () => {
    const body = {};
    const original = JSON.stringify(execution.input_data ?? {});
    const parsed = JSON.parse(input.value || '{}');
    if (JSON.stringify(parsed) !== original) body.input_data = parsed;
    const from = [...steps.querySelectorAll('input:checked')].map((box) => box.value);
    if (from.length > 0) body.from_steps = from;
    return body;
  };
  return {
    nodes: [h('label', { for: 'action-input' }, 'Input data (JSON)'), input, steps],
    read,
  };
}

/** The version picker of the upgrade form. */
function upgradeFields(execution) {
  const select = h('select', { id: 'action-version', name: 'to_version' });
  api(`/workflows/${encodeURIComponent(execution.workflow_id)}/versions`)
    .then((page) => {
      for (const version of page.items ?? page.versions ?? []) {
        if (version.version === execution.workflow_version) continue;
        select.append(
          h(
            'option',
            { value: String(version.version) },
            `v${version.version} ${version.summary ?? ''}`,
          ),
        );
      }
    })
    .catch(() => {});
  return {
    nodes: [h('label', { for: 'action-version' }, 'To version'), select],
    read: () => (select.value ? { to_version: Number(select.value) } : {}),
  };
}

/** The confirmation form of one action: its fields, a reason, a preview where there is one. */
function actionForm(action, execution, workflow, onDone, close) {
  const fields =
    action.name === 'retry'
      ? retryFields(execution, workflow)
      : action.name === 'upgrade'
        ? upgradeFields(execution)
        : { nodes: [], read: () => ({}) };
  const reason = h('input', { id: 'action-reason', name: 'reason', required: true });
  const outcome = h('div', { id: 'action-outcome', 'aria-live': 'polite' });
  const url = `/executions/${encodeURIComponent(execution.id)}/${action.name}`;
  const send = async (dryRun) => {
    const body = { ...fields.read(), reason: reason.value.trim() };
    if (dryRun) body.dry_run = true;
    return api(url, { method: 'POST', body });
  };
  const previewable = action.name === 'retry' || action.name === 'upgrade';
  const preview = h(
    'button',
    { type: 'button', id: 'action-preview', hidden: !previewable },
    'Preview',
  );
  preview.addEventListener('click', () => {
    send(true)
      .then((plan) => outcome.replaceChildren(h('p', {}, 'This would:'), planList(plan)))
      .catch((error) => outcome.replaceChildren(errorBox(error), ...conflictList(error)));
  });
  const form = h(
    'form',
    {
      class: 'action-form',
      'aria-label': `${action.label} this execution`,
      onsubmit: (event) => {
        event.preventDefault();
        send(false)
          .then(() => {
            announce(`${action.label} done`);
            close();
            onDone();
          })
          .catch((error) => outcome.replaceChildren(errorBox(error), ...conflictList(error)));
      },
    },
    h('h3', {}, `${action.label} this execution`),
    ...fields.nodes,
    h('label', { for: 'action-reason' }, 'Reason'),
    reason,
    h(
      'p',
      {},
      preview,
      ' ',
      h(
        'button',
        { type: 'submit', id: 'action-confirm' },
        `Confirm ${action.label.toLowerCase()}`,
      ),
      ' ',
      h('button', { type: 'button', onclick: close }, 'Back'),
    ),
    outcome,
  );
  return form;
}

/** The conflicts a refused upgrade or edit lists, one item each. */
function conflictList(error) {
  const items = error?.problem?.conflicts ?? error?.problem?.errors ?? [];
  if (!Array.isArray(items) || items.length === 0) return [];
  return [
    h(
      'ul',
      { class: 'conflicts' },
      items.map((item) =>
        h(
          'li',
          {},
          item?.message ? `${item.path ? `${item.path}: ` : ''}${item.message}` : String(item),
        ),
      ),
    ),
  ];
}

/**
 * The actions box of an execution page. `update(state)` redraws its buttons when the status
 * changes, unless a form is open; `onDone` runs after an action succeeded.
 */
export function actionsBox(onDone) {
  const box = h('section', { class: 'actions', 'aria-labelledby': 'actions-heading' });
  let shownFor = null;
  let formOpen = false;
  let last = null;

  const buttons = (execution, workflow, role) => {
    if (!mayOperate(role)) return [];
    return ACTIONS.filter((action) => action.when.includes(execution.status)).map((action) =>
      h(
        'button',
        {
          type: 'button',
          id: `action-${action.name}`,
          onclick: () => {
            formOpen = true;
            box.replaceChildren(
              h('h2', { id: 'actions-heading' }, 'Actions'),
              actionForm(action, execution, workflow, onDone, () => {
                formOpen = false;
                shownFor = null;
                if (last) void update(last);
              }),
            );
          },
        },
        action.label,
      ),
    );
  };

  const update = async (state) => {
    last = state;
    const role = await callerRole();
    const key = `${state.execution.status}|${role}`;
    if (formOpen || key === shownFor) return;
    shownFor = key;
    const offered = buttons(state.execution, state.workflow, role);
    box.replaceChildren(
      ...(offered.length === 0
        ? []
        : [
            h('h2', { id: 'actions-heading' }, 'Actions'),
            h('p', { class: 'toolbar' }, ...offered),
          ]),
    );
  };
  return { box, update };
}
