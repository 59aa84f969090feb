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
];

export function loggerOptions(config: Pick<Config, 'LOG_LEVEL'>): LoggerOptions {
  return {
    level: config.LOG_LEVEL,
    base: { service: 'workflow-service' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
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
