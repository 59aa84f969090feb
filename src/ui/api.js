/**
 * The dashboard's access to the service API: the credential (kept in sessionStorage for this
 * tab only), authenticated fetches, and the execution event stream.
 */

const STORAGE_KEY = 'workflow-service.credential';

/** @typedef {{ kind: 'api-key' | 'bearer', value: string }} Credential */

/** @returns {Credential | null} */
export function loadCredential() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null');
    if (stored && typeof stored.value === 'string' && stored.value !== '') return stored;
  } catch {
    // A broken entry is as good as none.
  }
  return null;
}

/** @param {Credential | null} credential */
export function saveCredential(credential) {
  if (credential) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(credential));
  else sessionStorage.removeItem(STORAGE_KEY);
}

/** An API answer that was not 2xx, with the problem details the service sent. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {{ detail?: string, title?: string } | null} problem
   */
  constructor(status, problem) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function authHeaders() {
  const credential = loadCredential();
  if (!credential) return {};
  return credential.kind === 'bearer'
    ? { authorization: `Bearer ${credential.value}` }
    : { 'x-api-key': credential.value };
}

/**
 * GET or POST a JSON resource of the API.
 * @param {string} path
 * @param {{ method?: string, body?: unknown, signal?: AbortSignal }} [options]
 */
export async function api(path, options = {}) {
  const headers = { accept: 'application/json', ...authHeaders() };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method: options.method ?? 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

/**
 * Opens the live stream of one execution. EventSource cannot set headers, so the credential
 * travels as the `access_token` query parameter (accepted on this route only).
 * @param {string} executionId
 */
export function openExecutionStream(executionId) {
  const url = new URL(`/executions/${encodeURIComponent(executionId)}/stream`, location.href);
  const credential = loadCredential();
  if (credential) url.searchParams.set('access_token', credential.value);
  return new EventSource(url);
}
