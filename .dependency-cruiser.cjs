// Layer rules of the service (docs/ARCHITECTURE.md, "Layers"), checked by `npm run lint`.
//
// Two kinds of rules, so that the rules cannot silently stop checking anything:
// - `forbidden`: the named rules of the layer plan, each with its own message;
// - `allowed` (any other edge between src modules is an error): the whole layer map. A new
//   folder, or a renamed one, matches none of it, so it fails until it is given a place here
//   instead of escaping every rule whose path it no longer matches.
// Imports that cannot be resolved are errors too: a resolver that stops understanding our
// `.js` specifiers would otherwise turn every rule into a no-op.
// Type-only imports count (tsPreCompilationDeps): a layer that needs another's types depends
// on it all the same. scripts/check-layer-rules.mjs proves that each rule still fires: a new
// rule needs a fixture line there.

/** Builds `^src/(a|b)(/|\.ts$)` so that `domain` names the folder and `errors` the file. */
const under = (...names) => `^src/(${names.join('|')})(/|\\.ts$)`;

const FASTIFY = '^node_modules/(fastify|fastify-[^/]+|@fastify/[^/]+)/';
/** The Postgres driver and its parts (pg-pool, pg-protocol, ...), types included. */
const PG = '^node_modules/(@types/)?pg(-pool|-protocol|-cursor|-query-stream)?/';
/** Shared files every layer may use: error catalogue, project root, logger, timers, lib. */
const KERNEL = ['errors', 'project', 'logger', 'periodic', 'lib'];
/** Entry points: started by node (server, CLI), never imported. */
const ENTRY_POINTS = '^src/(server\\.ts|cli/[^/]+\\.ts)$';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles make module order matter and hide which layer depends on which.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-orphans',
      severity: 'error',
      comment: 'A module nothing imports is dead code, or an entry point to list here.',
      from: { orphan: true, path: '^src/', pathNot: [ENTRY_POINTS, '\\.d\\.ts$'] },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import the resolver cannot follow escapes every other rule.',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
    {
      name: 'not-to-dev-dependency',
      severity: 'error',
      comment:
        'src/ runs in the image, which has no devDependencies (tests and bench may use them).',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'not-to-undeclared-package',
      severity: 'error',
      comment: 'A package imported from src/ must be in package.json, not reached transitively.',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'domain-imports-only-domain',
      severity: 'error',
      comment:
        'The domain (statuses, rows, definitions) is the bottom layer: domain modules and zod.',
      from: { path: '^src/domain/' },
      to: { pathNot: ['^src/domain/', '^node_modules/zod/'] },
    },
    {
      name: 'schemas-import-only-domain',
      severity: 'error',
      comment: 'API schemas describe domain shapes: schemas, domain and zod only.',
      from: { path: '^src/schemas/' },
      to: { pathNot: ['^src/(schemas|domain)/', '^node_modules/zod/'] },
    },
    {
      name: 'store-imports-only-lower-layers',
      severity: 'error',
      comment: 'SQL modules know rows and the domain, never the engine, use cases or HTTP.',
      from: { path: '^src/store/' },
      to: {
        path: '^src/',
        pathNot: [under('store', 'domain', 'schemas', 'lib', 'errors', 'project', 'config')],
      },
    },
    {
      name: 'store-config-types-only',
      severity: 'error',
      comment: 'The store receives settings from its caller; it may name their types only.',
      from: { path: '^src/store/' },
      to: { path: '^src/config\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'store-no-fastify',
      severity: 'error',
      comment: 'The store is used by the engine, which runs without an HTTP server.',
      from: { path: '^src/store/' },
      to: { path: FASTIFY },
    },
    {
      name: 'engine-not-to-upper-layers',
      severity: 'error',
      comment: 'The engine runs below the use cases: no core, api, plugins or assembly.',
      from: { path: '^src/engine/' },
      to: { path: under('core', 'api', 'plugins', 'app', 'server', 'runtime') },
    },
    {
      name: 'engine-no-fastify',
      severity: 'error',
      comment: 'Workers run the engine without an HTTP server.',
      from: { path: '^src/engine/' },
      to: { path: FASTIFY },
    },
    {
      name: 'core-not-to-api-or-plugins',
      severity: 'error',
      comment: 'Use cases are called by routes and plugins, never the other way round.',
      from: { path: '^src/core/' },
      to: { path: under('api', 'plugins', 'app', 'server', 'runtime') },
    },
    {
      name: 'core-no-fastify',
      severity: 'error',
      comment: 'Use cases run for events, schedules and workers too, not only for HTTP requests.',
      from: { path: '^src/core/' },
      to: { path: FASTIFY },
    },
    {
      name: 'api-not-to-store',
      severity: 'error',
      comment: 'Routes are thin: they call a core use case, which owns the SQL.',
      from: { path: '^src/api/' },
      to: { path: ['^src/store/', PG] },
    },
    {
      name: 'pg-only-in-store',
      severity: 'error',
      comment: 'SQL lives in src/store/ (the CLI opens its own pool); others get a Queryable.',
      from: { path: '^src/', pathNot: ['^src/store/', '^src/cli/'] },
      to: { path: PG },
    },
    {
      name: 'nothing-imports-assembly',
      severity: 'error',
      comment: 'app.ts, server.ts and runtime.ts assemble the layers; no layer depends on them.',
      from: { path: '^src/', pathNot: under('app', 'server', 'runtime') },
      to: { path: under('app', 'server', 'runtime') },
    },
  ],

  // The layer map: every edge between src modules must match one of these.
  allowed: [
    {
      comment: 'npm packages and node builtins: the forbidden rules restrict those',
      from: { path: '^src/' },
      to: { pathNot: '^src/' },
    },
    { comment: 'within one folder', from: { path: '^src/([^/]+)/' }, to: { path: '^src/$1/' } },
    {
      comment: 'domain: nothing below it',
      from: { path: '^src/domain/' },
      to: { path: '^src/domain/' },
    },
    { comment: 'schemas', from: { path: '^src/schemas/' }, to: { path: '^src/domain/' } },
    {
      comment: 'shared files (errors, project, logger, periodic, lib, config)',
      from: { path: under(...KERNEL, 'config') },
      to: { path: under(...KERNEL, 'config', 'domain') },
    },
    {
      comment: 'config parses settings whose meaning security defines (auth, trusted proxies)',
      from: { path: '^src/config\\.ts$' },
      to: { path: '^src/security/' },
    },
    {
      comment: 'store',
      from: { path: '^src/store/' },
      to: { path: under('domain', 'lib', 'errors', 'project') },
    },
    {
      comment: 'store: rows have the shapes the API shows, defined once in schemas (types only)',
      from: { path: '^src/store/' },
      to: { path: '^src/schemas/', dependencyTypes: ['type-only'] },
    },
    {
      comment: 'store: the settings types',
      from: { path: '^src/store/' },
      to: { path: '^src/config\\.ts$', dependencyTypes: ['type-only'] },
    },
    {
      comment: 'engine',
      from: { path: '^src/engine/' },
      to: { path: under('store', 'domain', ...KERNEL, 'config') },
    },
    {
      comment: 'engine: log context of a job (a logger helper that lives with monitoring)',
      from: { path: '^src/engine/' },
      to: { path: '^src/monitoring/log-context\\.ts$' },
    },
    {
      comment: 'engine: spans of step attempts (the tracing SDK set-up lives with monitoring)',
      from: { path: '^src/engine/' },
      to: { path: '^src/monitoring/tracing\\.ts$' },
    },
    {
      comment: 'core',
      from: { path: '^src/core/' },
      to: { path: under('engine', 'store', 'domain', 'schemas', ...KERNEL, 'config') },
    },
    {
      comment: 'security: credentials, policies and the key service',
      from: { path: '^src/security/' },
      to: { path: under('store', 'domain', ...KERNEL, 'config') },
    },
    {
      comment: 'monitoring: reads what the layers below report',
      from: { path: '^src/monitoring/' },
      to: { path: under('core', 'engine', 'store', 'domain', ...KERNEL, 'config') },
    },
    {
      comment: 'api: routes call core, shape replies with schemas',
      from: { path: '^src/api/' },
      to: {
        path: under('core', 'schemas', 'domain', 'security', 'monitoring', ...KERNEL, 'config'),
      },
    },
    {
      comment: 'api: /info lists the step types the engine runs',
      from: { path: '^src/api/' },
      to: { path: '^src/engine/steps/registry\\.ts$' },
    },
    {
      comment: 'plugins assemble every layer but the entry files',
      from: { path: '^src/plugins/' },
      to: { path: '^src/', pathNot: under('app', 'server', 'runtime') },
    },
    {
      comment: 'assembly',
      from: { path: under('app', 'server', 'runtime') },
      to: { path: '^src/' },
    },
    {
      comment: 'cli: operator commands over the store and the key service',
      from: { path: '^src/cli/' },
      to: { path: under('store', 'security', 'domain', ...KERNEL, 'config') },
    },
  ],
  allowedSeverity: 'error',

  options: {
    // The dashboard under src/ui is static browser code, served as files.
    exclude: { path: '^src/ui/' },
    doNotFollow: { path: 'node_modules' },
    // Worktrees may link node_modules to a shared install: keep `node_modules/...` paths, which
    // the package rules above match, instead of the link's target.
    preserveSymlinks: true,
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    // node-pg-migrate (and other ESM-only packages) resolve through the "import" condition.
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
