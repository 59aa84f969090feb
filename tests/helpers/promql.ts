import { parser } from '@prometheus-io/lezer-promql';

/**
 * PromQL read with Prometheus's own grammar (@prometheus-io/lezer-promql, what the Prometheus
 * UI parses with), so the monitoring kit's expressions are checked as Prometheus reads them.
 */
export interface ParsedPromql {
  /** Text of each node the parser could not fit into the grammar; empty when it parses. */
  errors: string[];
  /** Metric names of every vector selector, in order of appearance. */
  metricNames: string[];
  /** Vector selectors without a metric name (e.g. `{__name__=~"..."}`), which we cannot check. */
  unnamedSelectors: number;
}

export function parsePromql(expression: string): ParsedPromql {
  const result: ParsedPromql = { errors: [], metricNames: [], unnamedSelectors: 0 };
  const cursor = parser.parse(expression).cursor();
  do {
    const node = cursor.node;
    if (node.type.isError) {
      result.errors.push(`at ${node.from}: "${expression.slice(node.from, node.to + 10)}"`);
    } else if (node.name === 'VectorSelector') {
      const name = node.getChild('Identifier');
      if (name) result.metricNames.push(expression.slice(name.from, name.to));
      else result.unnamedSelectors += 1;
    }
  } while (cursor.next());
  return result;
}
