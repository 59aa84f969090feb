import type { LogFn, LoggerOptions } from 'pino';
import type { Config } from './config.js';

/** Paths that may carry credentials; pino replaces their values before anything is written. */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  '*.password',
  '*.secret',
  '*.token',
  // Credentials of the security layer (src/plugins/security/).
  'req.headers["proxy-authorization"]',
  'req.query.access_token',
  'query.access_token',
  '*.query.access_token',
  'authorization',
  'access_token',
  '*.authorization',
  '*.access_token',
  '*.api_key',
  '*.apiKey',
  '*.jwt',
  '*.JWT_SECRET',
];

/** A request URL with any `access_token` query parameter blanked (EventSource credentials). */
function redactedUrl(url: unknown): unknown {
  return typeof url === 'string' ? url.replace(/([?&]access_token=)[^&#]*/gi, '$1[redacted]') : url;
}

interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  headers?: Record<string, unknown>;
  socket?: { remotePort?: number };
}

/** Fastify's request serializer, with the URL's credentials removed. */
function serializeRequest(request: LoggedRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactedUrl(request.url),
    version: request.headers?.['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

export function loggerOptions(config: Pick<Config, 'LOG_LEVEL'>): LoggerOptions {
  return {
    level: config.LOG_LEVEL,
    base: { service: 'workflow-service' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: { req: serializeRequest },
  };
}

/** The logging surface core and engine code use: satisfied by pino and Fastify's logger. */
export interface Log {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Log;
}
