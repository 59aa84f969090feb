/** Test helpers for /metrics (a Prometheus text parser) and SSE streams (a fetch-based client). */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
  help: Map<string, string>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;

function parseValue(text: string, line: string): number {
  // Prometheus parses values with Go's ParseFloat, which ignores case here (prom-client
  // writes "Nan").
  const special = text.toLowerCase();
  if (special === '+inf' || special === 'inf') return Number.POSITIVE_INFINITY;
  if (special === '-inf') return Number.NEGATIVE_INFINITY;
  if (special === 'nan') return Number.NaN;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`bad sample value in: ${line}`);
  return value;
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const start = LABEL.lastIndex;
    const match = LABEL.exec(text);
    if (!match || match.index !== start) throw new Error(`bad labels in: ${line}`);
    labels[match[1] as string] = (match[2] as string)
      .replace(/\\n/g, '\n')
      .replace(/\\"/g, '"')
      .replace(/\\\\/g, '\\');
    if (match[3] === '') break;
  }
  return labels;
}

/**
 * Parses the Prometheus text exposition format (version 0.0.4) strictly: every line must be a
 * HELP, a TYPE, another comment, a blank line or a well-formed sample, and every sample must
 * belong to a declared metric family. Throws on anything else.
 */
export function parsePrometheus(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const meta = /^# (HELP|TYPE) ([^ ]+) ?(.*)$/.exec(line);
      if (!meta) continue;
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) {
          throw new Error(`bad metric type in: ${line}`);
        }
        types.set(name, rest);
      } else {
        help.set(name, rest);
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!sample) throw new Error(`bad sample line: ${line}`);
    const name = sample[1] as string;
    const family = [name, name.replace(/_(bucket|sum|count|total|created)$/, '')].find((n) =>
      types.has(n),
    );
    if (!family) throw new Error(`sample of an undeclared metric: ${line}`);
    samples.push({
      name,
      labels: sample[3] ? parseLabels(sample[3], line) : {},
      value: parseValue(sample[4] as string, line),
    });
  }
  return { samples, types, help };
}

/** Sum of the samples named `name` whose labels include `labels` (0 when there is none). */
export function metricValue(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number {
  return exposition.samples
    .filter(
      (sample) =>
        sample.name === name &&
        Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
    )
    .reduce((sum, sample) => sum + sample.value, 0);
}

export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

export interface SseConnection {
  status: number;
  headers: Headers;
  /** The next message (comments excluded), or null when the server closed the stream. */
  next(timeoutMs?: number): Promise<SseMessage | null>;
  /** Every message until the server closes the stream. */
  rest(timeoutMs?: number): Promise<SseMessage[]>;
  /** Comment lines seen so far (heartbeats). */
  comments(): string[];
  close(): void;
}

/** Opens an SSE stream with node's fetch (inject does not stream) and parses its frames. */
export async function openSse(
  url: string,
  headers: Record<string, string> = {},
): Promise<SseConnection> {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const queue: Array<SseMessage | null> = [];
  const seenComments: string[] = [];
  let waiter: (() => void) | null = null;
  const push = (item: SseMessage | null) => {
    queue.push(item);
    waiter?.();
  };

  const pump = async () => {
    if (!response.body) {
      push(null);
      return;
    }
    const decoder = new TextDecoder();
    let buffer = '';
    let current: SseMessage = { id: undefined, event: 'message', data: '' };
    let hasData = false;
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let newline = buffer.indexOf('\n');
        while (newline >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, '');
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            if (hasData) push(current);
            current = { id: undefined, event: 'message', data: '' };
            hasData = false;
          } else if (line.startsWith(':')) {
            seenComments.push(line.slice(1).trim());
          } else {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') current.id = value;
            else if (field === 'event') current.event = value;
            else if (field === 'data') {
              current.data = hasData ? `${current.data}\n${value}` : value;
              hasData = true;
            }
          }
          newline = buffer.indexOf('\n');
        }
      }
    } catch {
      // Aborted by close(): the stream just ends.
    }
    push(null);
  };
  void pump();

  const next = async (timeoutMs = 15_000): Promise<SseMessage | null> => {
    const deadline = Date.now() + timeoutMs;
    while (queue.length === 0) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no SSE message within ${timeoutMs} ms from ${url}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      waiter = null;
    }
    const item = queue.shift() as SseMessage | null;
    // Keep reporting the end to later calls.
    if (item === null) queue.unshift(null);
    return item;
  };

  return {
    status: response.status,
    headers: response.headers,
    next,
    async rest(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      const messages: SseMessage[] = [];
      for (;;) {
        const message = await next(Math.max(deadline - Date.now(), 1));
        if (message === null) return messages;
        messages.push(message);
      }
    },
    comments: () => [...seenComments],
    close: () => controller.abort(),
  };
}
