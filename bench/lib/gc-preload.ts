/**
 * Loaded into the service process of the memory workload (node --expose-gc --import ...):
 * on the parent's `gc` message over the IPC channel, collects garbage and answers with
 * process.memoryUsage(), so RSS is read after a full collection. Nothing else changes.
 */
declare const gc: (() => void) | undefined;

process.on('message', (message: unknown) => {
  if (message !== 'bench:gc') return;
  if (typeof gc === 'function') {
    gc();
    gc();
  }
  process.send?.({ type: 'bench:memory', usage: process.memoryUsage() });
});
