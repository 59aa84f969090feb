#!/usr/bin/env node
// Size rules of the codebase (docs/ARCHITECTURE.md, "Rules that lint checks"): no source file
// in src/ over 450 lines, no function over 80 lines of its own. A nested function (a callback,
// a helper declared inside) counts for itself and only by its first line in the function
// around it: Biome's noExcessiveLinesPerFunction counts it in both, which would punish
// splitting a long function into local helpers. Usage: node scripts/check-size.mjs [dir ...]
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import ts from 'typescript';

const MAX_FILE_LINES = 450;
const MAX_FUNCTION_LINES = 80;
const CODE = new Map([
  ['.ts', ts.ScriptKind.TS],
  ['.mts', ts.ScriptKind.TS],
  ['.js', ts.ScriptKind.JS],
  ['.mjs', ts.ScriptKind.JS],
]);

function* sourceFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (CODE.has(extname(entry.name)) && !entry.name.endsWith('.d.ts')) yield path;
  }
}

function isFunction(node) {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node)
  );
}

function functionName(node, source) {
  if (node.name) return node.name.getText(source);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent))) {
    return parent.name.getText(source);
  }
  if (parent && ts.isPropertyDeclaration(parent)) return parent.name.getText(source);
  if (parent && ts.isCallExpression(parent)) {
    return `(callback of ${parent.expression.getText(source).slice(0, 40)})`;
  }
  return '(anonymous)';
}

/** Every function of a file with its own lines: its span minus its nested functions' spans
 * but their first lines (where the parent declares or passes them). */
function functionSizes(source) {
  const sizes = [];
  const lineOf = (pos) => source.getLineAndCharacterOfPosition(pos).line;
  const span = (node) => lineOf(node.getEnd()) - lineOf(node.getStart(source)) + 1;
  // Returns the lines of `node`'s subtree that nested functions take from their parent.
  const visit = (node) => {
    if (!isFunction(node)) {
      let taken = 0;
      node.forEachChild((child) => {
        taken += visit(child);
      });
      return taken;
    }
    let nested = 0;
    node.forEachChild((child) => {
      nested += visit(child);
    });
    const total = span(node);
    sizes.push({
      name: functionName(node, source),
      line: lineOf(node.getStart(source)) + 1,
      own: total - nested,
    });
    return total - 1;
  };
  visit(source);
  return sizes;
}

const roots = process.argv.length > 2 ? process.argv.slice(2) : ['src'];
const problems = [];
let checked = 0;
for (const root of roots) {
  for (const path of sourceFiles(root)) {
    checked += 1;
    const text = readFileSync(path, 'utf8');
    const name = relative(process.cwd(), path);
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    if (lines > MAX_FILE_LINES) {
      problems.push(`${name}: ${lines} lines (at most ${MAX_FILE_LINES} per file)`);
    }
    const kind = CODE.get(extname(path));
    const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, kind);
    for (const fn of functionSizes(source)) {
      if (fn.own > MAX_FUNCTION_LINES) {
        problems.push(
          `${name}:${fn.line}: function ${fn.name} has ${fn.own} lines of its own (at most ${MAX_FUNCTION_LINES})`,
        );
      }
    }
  }
}

// No file read means a wrong directory, not a clean codebase.
if (checked === 0) {
  console.error(`check-size: no source file under ${roots.join(', ')}`);
  process.exit(2);
}
for (const problem of problems) console.error(problem);
if (problems.length > 0) {
  console.error(`check-size: ${problems.length} problems in ${checked} files`);
  process.exit(1);
}
console.log(
  `check-size: ${checked} files within ${MAX_FILE_LINES} lines, functions within ${MAX_FUNCTION_LINES}`,
);
