#!/usr/bin/env node
// Proves that every layer rule of .dependency-cruiser.cjs still fires. A rule can stop checking
// anything without a sound (a path regex edited, a resolver option changed, a layer renamed):
// `depcruise src` would then pass on a clean tree and on a broken one alike. This builds a small
// tree in a temporary directory with one violation per rule and clean edges beside them
// (`ok.ts`), cruises it with the real configuration, and fails when a rule stays silent, when a
// rule has no fixture here, or when a clean edge is reported. KEEP=1 keeps the tree to look at.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const root = process.cwd();
const config = createRequire(import.meta.url)(resolve(root, '.dependency-cruiser.cjs'));

/** One violation per rule: file → content. Every other file is imported by something. */
const FIXTURE = {
  'src/server.ts': "import './app.js';\n",
  'src/app.ts': "import './runtime.js';\nexport const app = 1;\n",
  'src/runtime.ts': 'export const runtime = 1;\n',
  'src/errors.ts': 'export const errors = 1;\n',
  'src/config.ts': 'export const config = 1;\nexport type Config = { a: number };\n',
  'src/lib/orphan.ts': 'export const orphan = 1;\n',
  'src/domain/x.ts': "import '../errors.js';\nexport const x = 1;\n",
  'src/domain/ok.ts': "import { z } from 'zod';\nimport './x.js';\nexport const s = z.string();\n",
  'src/schemas/x.ts': "import '../config.js';\nexport const x = 1;\n",
  'src/schemas/ok.ts':
    "import '../domain/ok.js';\nimport { z } from 'zod';\nexport const s = z.string();\n",
  'src/store/db.ts': "import pg from 'pg';\nexport const pool = pg.Pool;\n",
  'src/store/x.ts': "import '../engine/a.js';\nexport const x = 1;\n",
  'src/store/y.ts': "import { config } from '../config.js';\nexport const y = config;\n",
  'src/store/z.ts': "import 'fastify';\nexport const z = 1;\n",
  'src/store/ok.ts':
    "import type { Config } from '../config.js';\nimport '../domain/ok.js';\nimport './db.js';\nexport type C = Config;\n",
  'src/engine/a.ts': "import './b.js';\nexport const a = 1;\n",
  'src/engine/b.ts': "import './a.js';\nexport const b = 1;\n",
  'src/engine/c.ts': "import '../core/ok.js';\nexport const c = 1;\n",
  'src/engine/d.ts': "import 'fastify';\nexport const d = 1;\n",
  'src/engine/ok.ts': "import '../store/ok.js';\nimport '../errors.js';\nexport const ok = 1;\n",
  'src/core/x.ts': "import '../api/ok.js';\nexport const x = 1;\n",
  'src/core/y.ts': "import 'fastify';\nexport const y = 1;\n",
  'src/core/z.ts': "import 'pg';\nexport const z = 1;\n",
  'src/core/w.ts': "import '../runtime.js';\nexport const w = 1;\n",
  'src/core/v.ts': "import 'vitest';\nexport const v = 1;\n",
  'src/core/u.ts': "import 'semver';\nexport const u = 1;\n",
  'src/core/ok.ts': "import '../engine/ok.js';\nimport '../store/ok.js';\nexport const ok = 1;\n",
  'src/api/x.ts': "import '../store/ok.js';\nexport const x = 1;\n",
  'src/api/y.ts': "import './missing.js';\nexport const y = 1;\n",
  'src/api/ok.ts': "import '../core/ok.js';\nimport '../schemas/ok.js';\nexport const ok = 1;\n",
  'src/newlayer/x.ts': "import '../core/ok.js';\nexport const x = 1;\n",
};

/** The rule each fixture file breaks (besides not-in-allowed for cross-layer ones). */
const EXPECTED = {
  'no-circular': 'src/engine/a.ts',
  'no-orphans': 'src/lib/orphan.ts',
  'not-to-unresolvable': 'src/api/y.ts',
  'not-to-dev-dependency': 'src/core/v.ts',
  'not-to-undeclared-package': 'src/core/u.ts',
  'domain-imports-only-domain': 'src/domain/x.ts',
  'schemas-import-only-domain': 'src/schemas/x.ts',
  'store-imports-only-lower-layers': 'src/store/x.ts',
  'store-config-types-only': 'src/store/y.ts',
  'store-no-fastify': 'src/store/z.ts',
  'engine-not-to-upper-layers': 'src/engine/c.ts',
  'engine-no-fastify': 'src/engine/d.ts',
  'core-not-to-api-or-plugins': 'src/core/x.ts',
  'core-no-fastify': 'src/core/y.ts',
  'api-not-to-store': 'src/api/x.ts',
  'pg-only-in-store': 'src/core/z.ts',
  'nothing-imports-assembly': 'src/core/w.ts',
  'not-in-allowed': 'src/newlayer/x.ts',
};

const problems = [];
for (const rule of config.forbidden) {
  if (!(rule.name in EXPECTED)) problems.push(`rule ${rule.name} has no fixture in this script`);
}

const dir = mkdtempSync(join(tmpdir(), 'layer-rules-'));
try {
  for (const [path, content] of Object.entries(FIXTURE)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  // The real tsconfig and package.json: resolution and dependency types as in the repository.
  copyFileSync(join(root, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  let output;
  try {
    output = execFileSync(
      process.execPath,
      [
        join(root, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'),
        'src',
        '--config',
        join(root, '.dependency-cruiser.cjs'),
        '--output-type',
        'json',
      ],
      { cwd: dir, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
  } catch (error) {
    // Violations make depcruise exit non-zero; its JSON is still on stdout.
    output = error.stdout;
    if (!output) throw error;
  }
  const violations = JSON.parse(output).summary.violations;
  const fired = new Set(violations.map((v) => `${v.rule.name} ${v.from}`));
  for (const [rule, from] of Object.entries(EXPECTED)) {
    if (!fired.has(`${rule} ${from}`)) problems.push(`rule ${rule} did not fire on ${from}`);
  }
  for (const v of violations) {
    if (v.from.endsWith('/ok.ts')) {
      problems.push(`clean edge reported: ${v.rule.name} ${v.from} -> ${v.to}`);
    }
  }
} finally {
  if (process.env.KEEP) console.log(`check-layer-rules: fixture kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}

for (const problem of problems) console.error(problem);
if (problems.length > 0) {
  console.error(`check-layer-rules: ${problems.length} problems with .dependency-cruiser.cjs`);
  process.exit(1);
}
console.log(`check-layer-rules: all ${Object.keys(EXPECTED).length} layer rules fire`);
