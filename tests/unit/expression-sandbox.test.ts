import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import {
  closeExpressionSandbox,
  ExpressionLimitError,
  needsSandbox,
  sandboxStats,
} from '../../src/engine/expression-sandbox/index.js';
import { evaluateCondition, evaluateExpression } from '../../src/engine/expressions.js';
import type { ExpressionContext } from '../../src/engine/steps/types.js';

const context: ExpressionContext = {
  input: { go: true, items: [{ qty: 2 }, { qty: 3 }] },
  steps: {},
  iteration: 0,
  execution: { id: 'exec-1', workflow_id: 'wf-1', workflow_version: 1 },
};
const options = { timeoutMs: 1000 };

/** Runs `work` while a main-thread heartbeat ticks; returns the largest gap between ticks. */
async function withHeartbeat(work: () => Promise<unknown>): Promise<number> {
  let last = Date.now();
  let largestGap = 0;
  const heartbeat = setInterval(() => {
    const now = Date.now();
    largestGap = Math.max(largestGap, now - last);
    last = now;
  }, 20);
  try {
    await work();
  } finally {
    clearInterval(heartbeat);
  }
  return Math.max(largestGap, Date.now() - last);
}

async function expectLimit(source: string, limit: string, timeoutMs = 1000): Promise<void> {
  const started = Date.now();
  let caught: unknown;
  const gap = await withHeartbeat(async () => {
    caught = await evaluateExpression(source, context, { timeoutMs }).catch((error) => error);
  });
  expect(caught).toBeInstanceOf(ExpressionLimitError);
  expect(caught).toMatchObject({ code: 'expression_limit', limit, source });
  expect(Date.now() - started).toBeLessThan(20_000);
  expect(gap).toBeLessThan(1000);
}

/** The sandbox's child processes: pid, command line and environment, read from /proc. */
function sandboxChildren(): { pid: number; argv: string[]; env: string[] }[] {
  let listing = '';
  try {
    listing = execFileSync('ps', ['-o', 'pid=', '--ppid', String(process.pid)], {
      encoding: 'utf8',
    });
  } catch {
    // ps exits 1 when there is no child.
  }
  return listing
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => pid > 0)
    .flatMap((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
        return argv.some((arg) => arg.endsWith('worker.mjs')) ? [{ pid, argv, env }] : [];
      } catch {
        return [];
      }
    });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterAll(async () => {
  await closeExpressionSandbox();
  expect(sandboxStats().threads).toBe(0);
});

describe('needsSandbox', () => {
  it('keeps plain expressions in process', () => {
    for (const source of [
      'input.go = true',
      'input.items[qty > 2].qty',
      '{"a": [1, input.go], "b": input.x & "y"}',
      'input.go ? "yes" : "no"',
      'input.x in [1, 2] and not_a_function or $x',
      '[1..5]',
      'input.bad(',
    ]) {
      expect(needsSandbox(source), source).toBe(false);
    }
  });

  it('sends calls, regexes, sorts, transforms and lambdas to the sandbox', () => {
    for (const source of [
      '$boolean(input.go)',
      '$secret("TOKEN")',
      'input.name ~> /a+/',
      'input.items^(qty)',
      'input ~> |items|{"x": 1}|',
      'function($x){$x}',
      'input.items[$contains(name, "a")]',
    ]) {
      expect(needsSandbox(source), source).toBe(true);
    }
  });
});

describe('sandboxed evaluation', () => {
  it('never sends a plain expression to the pool', async () => {
    const before = sandboxStats().evaluations;
    expect(await evaluateCondition('input.go = true', context, options)).toBe(true);
    expect(await evaluateExpression('input.items[qty > 2].qty', context, options)).toBe(3);
    expect(sandboxStats().evaluations).toBe(before);
    expect(await evaluateExpression('$sum(input.items.qty)', context, options)).toBe(5);
    expect(sandboxStats().evaluations).toBe(before + 1);
  });

  it('keeps ordinary errors as ExpressionError with their jsonata code', async () => {
    await expect(evaluateExpression('$number("x") + "a"', context, options)).rejects.toMatchObject({
      name: 'ExpressionError',
      code: 'D3030',
    });
  });

  it('calls function bindings in the main thread', async () => {
    const result = await evaluateExpression('$secret("A") & "!"', context, {
      timeoutMs: 1000,
      bindings: { secret: (name: string) => `value-${name}` },
    });
    expect(result).toBe('value-A!');
  });

  it('runs in child processes with a bounded heap and stack and none of our environment', async () => {
    process.env.WF_SECRET_SANDBOX_PROBE = 'probe-secret-value';
    try {
      expect(await evaluateExpression('$string(1)', context, options)).toBe('1');
    } finally {
      delete process.env.WF_SECRET_SANDBOX_PROBE;
    }
    const children = sandboxChildren();
    expect(children.length).toBeGreaterThan(0);
    for (const child of children) {
      expect(child.argv).toContain('--max-old-space-size=64');
      expect(child.argv.some((arg) => /^--stack-size=\d+$/.test(arg))).toBe(true);
      expect(child.env.join('\n')).not.toMatch(/WF_SECRET_|DATABASE_URL|JWT_SECRET|probe-secret/);
    }
  });

  it('stops a catastrophic regex by killing its process', async () => {
    await evaluateExpression('$string(1)', context, options);
    const before = sandboxChildren().map((child) => child.pid);
    await expectLimit('$contains($pad("", 4000, "a"), /a*a*b/)', 'time');
    // workerpool's .timeout() kills the busy child; the pool starts another on demand.
    const deadline = Date.now() + 5000;
    while (before.every(alive) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(before.some((pid) => !alive(pid))).toBe(true);
  });

  it('survives the hostile allocations that aborted the process under worker threads', async () => {
    for (const source of [
      '$length($pad("", 200000000))',
      '$substring($reduce([1..27], function($acc, $i){ $acc & $acc }, "x"), 1, 2)',
      '($a := [1..4000000]; $count($append($append($a, $a), $append($a, $a))))',
    ]) {
      // A generous soft time limit, so memory (not the time guard) stops them on a busy machine.
      await expectLimit(source, 'memory', 8000);
      expect(await evaluateExpression('$uppercase("alive")', context, options)).toBe('ALIVE');
    }
  });

  it('stops a self-applying recursion, by whichever guard trips first', async () => {
    // Each call keeps its closure, so the recursion grows both time and memory: on an idle
    // machine the soft time guard trips first (an ExpressionError), on a loaded one the
    // child's heap limit may (an ExpressionLimitError). Either way it is stopped, and the
    // sandbox goes on serving.
    const error = await evaluateExpression(
      '(function($f){$f($f)})(function($f){$f($f)})',
      context,
      options,
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    expect(['ExpressionError', 'ExpressionLimitError']).toContain((error as Error).name);
    expect((error as Error).message).toMatch(/exceeded its (time|memory) limit|depth/);
    expect(await evaluateExpression('$uppercase("alive")', context, options)).toBe('ALIVE');
  });

  it('stops a huge string', async () => {
    await expectLimit('$length($pad("", 200000000))', 'memory');
  });

  it('refuses a range too large for the thread before building it', async () => {
    await expectLimit('$count([1..9000000])', 'memory');
  });

  it('stops an infinite recursion that grows memory', async () => {
    await expectLimit('($f := function($a){ $f($append($a, $a)) }; $f([1]))', 'memory', 20_000);
  });

  it('refuses a 50 MB result', async () => {
    await expectLimit('($s := $pad("", 50000, "x"); $map([1..1000], function(){ $s }))', 'output');
  });

  it('keeps serving tasks queued behind children that died', async () => {
    // Every child the pool may hold dies of an out-of-memory abort at once (the string doubles
    // past the heap in one step, so no in-child check refuses it first), with an ordinary
    // expression queued behind them: it must still run (workerpool alone leaves it queued).
    const doubling = '$substring($reduce([1..27], function($acc, $i){ $acc & $acc }, "x"), 1, 2)';
    const children = Math.max(2, availableParallelism());
    const breaches = Array.from({ length: children }, () =>
      evaluateExpression(doubling, context, { timeoutMs: 8000 }).catch((error: unknown) => error),
    );
    const queued = evaluateExpression('$uppercase("queued")', context, { timeoutMs: 8000 });
    for (const breach of await Promise.all(breaches)) {
      expect(breach).toMatchObject({ code: 'expression_limit', limit: 'memory' });
    }
    expect(await queued).toBe('QUEUED');
  });

  it('still answers after breaches', async () => {
    expect(await evaluateExpression('$uppercase("ok")', context, options)).toBe('OK');
  });
});
