import { describe, expect, it } from 'vitest';
import { newExecutionTrace, tracingOn, tracingRequested } from '../../src/monitoring/tracing.js';

/** Tracing is off unless the standard variables ask for it (README "Tracing"). */
describe('tracing switch', () => {
  it('is off with no OTEL_* variable, and then makes no trace context', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingOn()).toBe(false);
    expect(newExecutionTrace({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` })).toBe(
      undefined,
    );
  });

  it('is on with an OTLP endpoint or the otlp exporter, unless the SDK is disabled', () => {
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c/v1/traces' })).toBe(
      true,
    );
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(
      tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c' }),
    ).toBe(false);
    expect(
      tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c' }),
    ).toBe(false);
  });
});
