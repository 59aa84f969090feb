#!/usr/bin/env node
// Moves TypeScript modules (git mv) and rewrites every relative import of them in src, tests,
// bench and examples. Usage: node scripts/move-module.mjs old.ts:new.ts [old2.ts:new2.ts ...]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';

const root = process.cwd();
const moves = new Map(
  process.argv.slice(2).map((pair) => {
    const [from, to] = pair.split(':');
    return [resolve(root, from), resolve(root, to)];
  }),
);
const files = execFileSync(
  'git',
  ['ls-files', '-co', '--exclude-standard', 'src', 'tests', 'bench', 'examples'],
  { encoding: 'utf8' },
)
  .split('\n')
  .filter((f) => f.endsWith('.ts') && existsSync(f))
  .map((f) => resolve(root, f));

const spec = /(from\s+|import\s*\(\s*|vi\.mock\(\s*)(['"])(\.{1,2}\/[^'"]+)\2/g;
for (const file of files) {
  const source = readFileSync(file, 'utf8');
  const newFile = moves.get(file) ?? file;
  const updated = source.replace(spec, (_whole, lead, quote, target) => {
    const abs = resolve(dirname(file), target.replace(/\.js$/, '.ts'));
    const dest = moves.get(abs) ?? abs;
    let rel = relative(dirname(newFile), dest).replace(/\.ts$/, '.js');
    if (!rel.startsWith('.')) rel = `./${rel}`;
    return `${lead}${quote}${rel}${quote}`;
  });
  if (updated !== source) writeFileSync(file, updated);
}
for (const [from, to] of moves) {
  mkdirSync(dirname(to), { recursive: true });
  execFileSync('git', ['mv', relative(root, from), relative(root, to)]);
}
