/**
 * Keeps `value` for `key` in `map`, dropping the oldest entry once `map` holds `limit`: the
 * in-process caches of the engine stay bounded however many workflows a process sees.
 */
export function remember<K, V>(map: Map<K, V>, key: K, value: V, limit: number): void {
  map.delete(key);
  if (map.size >= limit) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
  map.set(key, value);
}
