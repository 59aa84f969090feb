import {
  type Attributes,
  type Context,
  context,
  defaultTextMapGetter,
  propagation,
  ROOT_CONTEXT,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as HttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  type IdGenerator,
  RandomIdGenerator,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { ExecutionTraceContext } from '../domain/trace-context.js';

/**
 * Tracing with the OpenTelemetry SDK (README "Tracing"; docs/ARCHITECTURE.md "Tracing"). Off
 * unless OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT, or OTEL_TRACES_EXPORTER=otlp) is
 * set; then configured by the standard OTEL_* variables. While off, every function here is a
 * check of one variable, so the engine's hot path pays nothing.
 *
 * A span cannot stay open across processes, so spans are recorded after the fact with the
 * ids the execution's stored trace context chose: the execution span's id is fixed when it
 * starts (so attempts anywhere can name it as parent) and the span itself is sent by the
 * process that ends the execution. ChosenIds lets the SDK's tracer use those ids.
 */

/** An IdGenerator that hands out, once, the ids a caller chose; random ones otherwise. */
class ChosenIds implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  traceId: string | undefined;
  spanId: string | undefined;

  generateTraceId(): string {
    const chosen = this.traceId;
    this.traceId = undefined;
    return chosen ?? this.random.generateTraceId();
  }

  generateSpanId(): string {
    const chosen = this.spanId;
    this.spanId = undefined;
    return chosen ?? this.random.generateSpanId();
  }
}

const w3c = new W3CTraceContextPropagator();
const TRACER_NAME = 'workflow-service';

let provider: NodeTracerProvider | undefined;
let tracer: Tracer | undefined;
let ids: ChosenIds | undefined;

/** Whether the standard variables ask for traces (OTEL_SDK_DISABLED=true turns them off). */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const exporter = env.OTEL_TRACES_EXPORTER;
  if (exporter !== undefined && exporter !== '') return exporter.split(',').includes('otlp');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** `http/protobuf` (the default) or `http/json`; gRPC is not offered. */
function exporterFor(env: NodeJS.ProcessEnv) {
  const protocol =
    env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  if (protocol === 'http/json') return new HttpJsonExporter();
  if (protocol === 'http/protobuf') return new ProtobufExporter();
  throw new Error(
    `OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported: use http/protobuf or http/json`,
  );
}

/**
 * Starts the SDK when the variables ask for it (before the app is built, from server.ts);
 * true when on. Registers the W3C propagator and the async context, so an `http` step sends
 * its attempt's `traceparent`.
 */
export function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (provider || !tracingRequested(env)) return provider !== undefined;
  ids = new ChosenIds();
  const resource = resourceFromAttributes({ 'service.name': serviceName }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  provider = new NodeTracerProvider({
    resource,
    idGenerator: ids,
    spanProcessors: [new BatchSpanProcessor(exporterFor(env))],
  });
  provider.register();
  tracer = provider.getTracer(TRACER_NAME);
  return true;
}

/** Sends what is buffered and stops (on close): spans of the last attempts are not lost. */
export async function stopTracing(): Promise<void> {
  const stopping = provider;
  provider = undefined;
  tracer = undefined;
  if (!stopping) return;
  await stopping.shutdown();
  trace.disable();
  propagation.disable();
  context.disable();
}

export function tracingOn(): boolean {
  return tracer !== undefined;
}

function spanContextOf(traceparent: string, tracestate?: string): SpanContext | undefined {
  const carrier: Record<string, string> = { traceparent };
  if (tracestate) carrier.tracestate = tracestate;
  return trace.getSpanContext(w3c.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
}

function traceparentOf(spanContext: SpanContext): string {
  const carrier: Record<string, string> = {};
  w3c.inject(trace.setSpanContext(ROOT_CONTEXT, spanContext), carrier, {
    set: (target, key, value) => {
      target[key] = value;
    },
  });
  return carrier.traceparent as string;
}

type Headers = Record<string, string | string[] | undefined>;

const firstHeader = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value[0] : value;

/**
 * The trace context of an execution being started: the caller's `traceparent` (an execute
 * request's or an event's) is its parent, else it begins a trace; the execution span's id is
 * chosen now. Undefined while tracing is off.
 */
export function newExecutionTrace(headers: Headers): ExecutionTraceContext | undefined {
  if (!ids) return undefined;
  const incoming = firstHeader(headers.traceparent);
  const tracestate = firstHeader(headers.tracestate);
  const parent = incoming ? spanContextOf(incoming, tracestate) : undefined;
  const own: SpanContext = {
    traceId: parent?.traceId ?? new RandomIdGenerator().generateTraceId(),
    spanId: new RandomIdGenerator().generateSpanId(),
    traceFlags: parent?.traceFlags ?? 1,
  };
  return {
    traceparent: traceparentOf(own),
    ...(tracestate && parent ? { tracestate } : {}),
    ...(parent && incoming ? { parent: incoming } : {}),
  };
}

/** What a span of the engine is: its name, times, attributes and outcome. */
export interface SpanRecord {
  name: string;
  startTime: Date;
  endTime: Date;
  attributes: Attributes;
  /** Set when it ended in error: the span's status message. */
  error?: string | undefined;
}

/**
 * Records one finished span with the given ids: `own` chooses its trace and span id,
 * `parent` (a traceparent) is its parent, if any.
 */
function recordSpan(record: SpanRecord, own: SpanContext, parent: string | undefined): void {
  if (!tracer || !ids) return;
  const parentContext = parent ? spanContextOf(parent) : undefined;
  const base: Context = parentContext
    ? trace.setSpanContext(ROOT_CONTEXT, { ...parentContext, isRemote: true })
    : ROOT_CONTEXT;
  ids.traceId = own.traceId;
  ids.spanId = own.spanId;
  const span = tracer.startSpan(
    record.name,
    { kind: SpanKind.INTERNAL, startTime: record.startTime, attributes: record.attributes },
    base,
  );
  ids.traceId = undefined;
  ids.spanId = undefined;
  span.setStatus(
    record.error === undefined
      ? { code: SpanStatusCode.OK }
      : { code: SpanStatusCode.ERROR, message: record.error },
  );
  span.end(record.endTime);
}

/** The execution span, sent once by the process that ends the execution. */
export function recordExecutionSpan(stored: ExecutionTraceContext, record: SpanRecord): void {
  const own = spanContextOf(stored.traceparent);
  if (own) recordSpan(record, own, stored.parent);
}

/** One step attempt's span, under its execution's span, and the context it runs in. */
export interface AttemptSpan {
  /** The attempt span's id, chosen before it runs so an `http` step can send it. */
  own: SpanContext;
  parent: string;
  /** The active context while the attempt runs: its outgoing requests carry `own`. */
  context: Context;
}

export function beginAttemptSpan(stored: ExecutionTraceContext): AttemptSpan | undefined {
  const execution = spanContextOf(stored.traceparent);
  if (!execution || !ids) return undefined;
  const own: SpanContext = {
    traceId: execution.traceId,
    spanId: new RandomIdGenerator().generateSpanId(),
    traceFlags: execution.traceFlags,
  };
  return {
    own,
    parent: stored.traceparent,
    context: trace.setSpanContext(context.active(), own),
  };
}

/** Runs `work` with the attempt's context active (its `http` requests carry it). */
export function withAttemptSpan<T>(attempt: AttemptSpan, work: () => T): T {
  return context.with(attempt.context, work);
}

export function endAttemptSpan(attempt: AttemptSpan, record: SpanRecord): void {
  recordSpan(record, attempt.own, attempt.parent);
}

/** A span of its own under the execution, for an attempt whose process died running it. */
export function recordOrphanSpan(stored: ExecutionTraceContext, record: SpanRecord): void {
  const attempt = beginAttemptSpan(stored);
  if (attempt) endAttemptSpan(attempt, record);
}
