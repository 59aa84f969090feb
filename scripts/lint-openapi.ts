// `npm run lint` step: builds the OpenAPI document the service serves at /docs/json, writes it
// to a temporary file and lints it with Spectral (.spectral.yaml: spectral:oas, failing on
// warnings too). README "Development" says why and how to read what it reports.
//
// Neither Postgres nor Redis is needed: the app is built with the "api" role (which registers
// every HTTP route) against addresses on loopback where nothing listens. The pool connects
// lazily and nothing queries it before close; the Redis clients retry silently until close.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';

// Port 1 on loopback: refused at once, so an attempt to connect costs nothing and goes nowhere.
const UNREACHABLE = {
  DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/openapi_lint',
  REDIS_URL: 'redis://127.0.0.1:1/0',
};

/** The OpenAPI document exactly as GET /docs/json serves it. */
export async function buildOpenApiDocument(): Promise<unknown> {
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    SERVICE_ROLE: 'api',
    ...UNREACHABLE,
  });
  const app = await buildApp(config);
  try {
    // @fastify/swagger builds the document only once the app is ready.
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
  }
}

async function main(): Promise<number> {
  const document = await buildOpenApiDocument();
  const dir = mkdtempSync(join(tmpdir(), 'openapi-lint-'));
  const file = join(dir, 'openapi.json');
  try {
    writeFileSync(file, JSON.stringify(document, null, 2));
    const result = spawnSync(
      'npx',
      [
        '--no-install',
        'spectral',
        'lint',
        file,
        '--ruleset',
        '.spectral.yaml',
        '--fail-severity=warn',
      ],
      { stdio: 'inherit' },
    );
    return result.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
