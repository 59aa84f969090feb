import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { StreamMessage, StreamSink } from '../../monitoring/execution-stream.js';
import { problemResponse } from '../../schemas/problem.js';

const eventId = z
  .string()
  .max(100)
  .optional()
  .describe('Resume after this event id (a stream id such as 1764100000000-0)');

/** SSE framing of one message; JSON never contains a raw newline, so one data line. */
function frame(message: StreamMessage): string {
  return `id: ${message.id}\nevent: ${message.event}\ndata: ${JSON.stringify(message.data)}\n\n`;
}

/** GET /executions/{id}/stream: the execution's step and status changes as Server-Sent Events. */
export const executionStreamRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/executions/:id/stream',
    {
      schema: {
        operationId: 'streamExecution',
        tags: ['executions'],
        summary: 'Live step and status changes of an execution (Server-Sent Events)',
        description: [
          'text/event-stream. The first message (`event: snapshot`) is the execution as GET /executions/{id} returns it, plus the graph of its steps;',
          'then one message per change, in order: `event: step` (`type` step.queued, step.running, step.completed, step.failed, step.retrying, step.skipped, step.waiting, step.cancelled, step.pending)',
          'and `event: execution` (`type` execution.<status>). The stream closes after the execution ends.',
          'Each message has an id; reconnecting with `Last-Event-ID` (or `?last_event_id=`) sends what was missed, or a fresh snapshot when the log no longer reaches back that far.',
          'A comment line is sent every 15 s while idle. 204 when resuming after the final event.',
          'Browsers (EventSource) may pass the credential as `?access_token=`.',
        ].join(' '),
        params: z.object({ id: z.string().min(1).max(255) }).strict(),
        querystring: z
          .object({
            access_token: z
              .string()
              .max(8192)
              .optional()
              .describe('API key or bearer token, for clients that cannot set headers'),
            last_event_id: eventId,
          })
          .strict(),
        headers: z.object({ 'last-event-id': eventId }),
        produces: ['text/event-stream'],
        response: {
          204: z.null().describe('The client already received the final event'),
          404: problemResponse('No such execution'),
          503: problemResponse('Postgres or Redis is unavailable; retry later'),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const lastEventId = request.headers['last-event-id'] ?? request.query.last_event_id;
      const plan = await app.executionStreams.open(id, lastEventId);
      if (plan.kind === 'ended') return reply.code(204).send(null);

      reply.hijack();
      const response = reply.raw;
      // Headers set by hooks (request id, security headers) are not sent by a hijacked reply.
      for (const [name, value] of Object.entries(reply.getHeaders())) {
        if (value !== undefined) response.setHeader(name, value);
      }
      response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        // Reverse proxies (nginx) must not buffer the stream.
        'x-accel-buffering': 'no',
      });
      response.write('retry: 3000\n\n');
      const open = () => !response.destroyed && !response.writableEnded;
      const sink: StreamSink = {
        send(message) {
          if (open()) response.write(frame(message));
        },
        heartbeat() {
          if (open()) response.write(': heartbeat\n\n');
        },
      };
      const session = new AbortController();
      const stop = () => session.abort();
      response.on('close', stop);
      const untrack = app.executionEventHub.track(session);
      app.metrics.streamClients.inc();
      try {
        await plan.run(sink, session.signal);
      } catch (error) {
        request.log.warn({ err: error, executionId: id }, 'execution stream ended by an error');
      } finally {
        untrack();
        app.metrics.streamClients.dec();
        response.off('close', stop);
        if (!response.writableEnded) response.end();
      }
    },
  );
};
