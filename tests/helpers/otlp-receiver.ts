import { createServer, type Server } from 'node:http';
import { closeServer, listenOnLoopback } from './loopback.js';
import { type DecodedSpan, decodeTraceRequest } from './otlp-protobuf.js';

/**
 * A real OTLP/HTTP trace receiver on 127.0.0.1 for tests (README "Tracing"): it accepts what
 * the SDK's exporter sends to `/v1/traces` as `http/json` (ExportTraceServiceRequest in the
 * OTLP JSON mapping: ids as hex) or `http/protobuf` (otlp-protobuf.ts) and keeps every span
 * with its resource's service name.
 */

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
}

interface OtlpJsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: Array<{ key: string; value: OtlpValue }>;
  status?: { code?: number; message?: string };
}

interface OtlpJsonRequest {
  resourceSpans?: Array<{
    resource?: { attributes?: Array<{ key: string; value: OtlpValue }> };
    scopeSpans?: Array<{ spans?: OtlpJsonSpan[] }>;
  }>;
}

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  attributes: Record<string, string | number | boolean>;
  /** 0 unset, 1 ok, 2 error (OTLP StatusCode). */
  statusCode: number;
  statusMessage: string | undefined;
}

function plainValue(value: OtlpValue): string | number | boolean {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  return value.boolValue ?? '';
}

function attributesOf(list: Array<{ key: string; value: OtlpValue }> = []) {
  return Object.fromEntries(list.map((entry) => [entry.key, plainValue(entry.value)]));
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** What arrived as `http/protobuf`, decoded to ids and names. */
  readonly protobufSpans: DecodedSpan[] = [];
  readonly contentTypes = new Set<string>();
  private readonly server: Server;

  constructor() {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.contentTypes.add(String(request.headers['content-type']));
        const body = Buffer.concat(chunks);
        if (request.url !== '/v1/traces') return response.writeHead(404).end();
        if (request.headers['content-type'] === 'application/json')
          this.receive(JSON.parse(body.toString()) as OtlpJsonRequest);
        if (request.headers['content-type'] === 'application/x-protobuf') {
          this.protobufSpans.push(...decodeTraceRequest(body));
          // An empty ExportTraceServiceResponse: full success.
          return response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        }
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
  }

  private receive(body: OtlpJsonRequest): void {
    for (const resourceSpans of body.resourceSpans ?? []) {
      const service = String(attributesOf(resourceSpans.resource?.attributes)['service.name']);
      for (const scope of resourceSpans.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          this.spans.push({
            service,
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId || undefined,
            name: span.name,
            attributes: attributesOf(span.attributes),
            statusCode: span.status?.code ?? 0,
            statusMessage: span.status?.message,
          });
        }
      }
    }
  }

  inTrace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((span) => span.traceId === traceId);
  }

  listen(): Promise<string> {
    return listenOnLoopback(this.server);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}
