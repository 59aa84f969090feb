/**
 * A minimal decoder of OTLP's ExportTraceServiceRequest in protobuf (the `http/protobuf`
 * protocol, the exporter's default): the SDK ships an encoder but no decoder, so the test
 * receiver reads the wire format itself, field numbers as in opentelemetry-proto
 * (trace/v1/trace.proto, common/v1/common.proto).
 */

interface Field {
  no: number;
  /** A length-delimited field's bytes, or a varint's value. */
  bytes?: Buffer;
  varint?: bigint;
}

function readVarint(buffer: Buffer, start: number): { value: bigint; next: number } {
  let value = 0n;
  let shift = 0n;
  let offset = start;
  for (;;) {
    const byte = buffer[offset] as number;
    offset += 1;
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return { value, next: offset };
    shift += 7n;
  }
}

function fieldsOf(buffer: Buffer): Field[] {
  const fields: Field[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    const tag = readVarint(buffer, offset);
    offset = tag.next;
    const no = Number(tag.value >> 3n);
    const wire = Number(tag.value & 7n);
    if (wire === 0) {
      const read = readVarint(buffer, offset);
      fields.push({ no, varint: read.value });
      offset = read.next;
    } else if (wire === 2) {
      const length = readVarint(buffer, offset);
      const end = length.next + Number(length.value);
      fields.push({ no, bytes: buffer.subarray(length.next, end) });
      offset = end;
    } else if (wire === 1) offset += 8;
    else if (wire === 5) offset += 4;
    else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
  return fields;
}

const all = (fields: Field[], no: number) => fields.filter((field) => field.no === no);
const bytesOf = (fields: Field[], no: number) => all(fields, no)[0]?.bytes;

export interface DecodedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
}

function serviceOf(resource: Buffer | undefined): string {
  for (const attribute of all(fieldsOf(resource ?? Buffer.alloc(0)), 1)) {
    const keyValue = fieldsOf(attribute.bytes as Buffer);
    if (bytesOf(keyValue, 1)?.toString() !== 'service.name') continue;
    return bytesOf(fieldsOf(bytesOf(keyValue, 2) ?? Buffer.alloc(0)), 1)?.toString() ?? '';
  }
  return '';
}

/** The spans of one ExportTraceServiceRequest with their resource's service name. */
export function decodeTraceRequest(body: Buffer): DecodedSpan[] {
  const spans: DecodedSpan[] = [];
  for (const resourceSpans of all(fieldsOf(body), 1)) {
    const resource = fieldsOf(resourceSpans.bytes as Buffer);
    const service = serviceOf(bytesOf(resource, 1));
    for (const scopeSpans of all(resource, 2)) {
      for (const span of all(fieldsOf(scopeSpans.bytes as Buffer), 2)) {
        const fields = fieldsOf(span.bytes as Buffer);
        const parent = bytesOf(fields, 4);
        spans.push({
          service,
          traceId: bytesOf(fields, 1)?.toString('hex') ?? '',
          spanId: bytesOf(fields, 2)?.toString('hex') ?? '',
          parentSpanId: parent && parent.length > 0 ? parent.toString('hex') : undefined,
          name: bytesOf(fields, 5)?.toString() ?? '',
        });
      }
    }
  }
  return spans;
}
