import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { newExecutionTrace } from '../../monitoring/tracing.js';
import { idParams } from '../../schemas/common.js';
import { diagnosisSchema } from '../../schemas/diagnosis.js';
import {
  actionBodySchema,
  historyPageSchema,
  historyQuerySchema,
  MAX_HISTORY_PAGE,
  retryBodySchema,
  retryPlanSchema,
} from '../../schemas/execution-history.js';
import {
  executeBodySchema,
  executeHeadersSchema,
  executionListQuerySchema,
  executionPageSchema,
  executionViewSchema,
  MAX_STEP_PAGE,
  SUMMARISED_FAN_OUT_ITEMS,
  stepRunListQuerySchema,
  stepRunPageSchema,
} from '../../schemas/executions.js';
import { problemResponse } from '../../schemas/problem.js';
import { BODY_ENVELOPE_BYTES } from '../json-body.js';

const errors = {
  400: problemResponse('The request is invalid'),
  404: problemResponse('No such workflow or execution'),
  409: problemResponse('The execution or workflow is not in a state that allows this'),
  503: problemResponse('Postgres or Redis is unavailable; retry later'),
};

/** Executions: start, list, inspect, cancel, retry, pause, resume. Thin: parse, call, reply. */
export const executionRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/workflows/:id/execute',
    {
      // The input's own limit is checked on the parsed value (as JSON); this stops reading early.
      bodyLimit: app.config.MAX_INPUT_BYTES + BODY_ENVELOPE_BYTES,
      config: { bodyField: 'input_data' },
      schema: {
        operationId: 'executeWorkflow',
        tags: ['executions'],
        summary: 'Start an execution of the workflow (its current version, or `version`)',
        description:
          'Answers 202 with the new execution. With an Idempotency-Key header, repeating the request returns the same execution (200). No body (or an empty one) means no input. For a workflow with config.debounce, starts with the same key within the window answer 202 with the one execution that collects them and `debounced: true`.',
        params: idParams(),
        headers: executeHeadersSchema,
        body: executeBodySchema,
        response: { 200: executionViewSchema, 202: executionViewSchema, ...errors },
      },
    },
    async (request, reply) => {
      const { execution, created, debounced } = await app.executions.execute(
        request.params.id,
        request.body?.input_data ?? {},
        {
          idempotencyKey: request.headers['idempotency-key'],
          priority: request.body?.priority,
          labels: request.body?.labels,
          version: request.body?.version,
          caller: request.caller?.id,
          // The raw headers: the route's schema keeps only the ones it declares.
          traceContext: newExecutionTrace(request.raw.headers),
        },
      );
      // A debounced start is accepted whether it opened the window or joined it.
      const accepted = created || debounced;
      if (!accepted) reply.header('idempotent-replayed', 'true');
      reply.header('location', `/executions/${execution.id}`);
      return reply.code(accepted ? 202 : 200).send(execution);
    },
  );

  app.get(
    '/executions',
    {
      schema: {
        operationId: 'listExecutions',
        tags: ['executions'],
        summary: 'List executions, newest first',
        querystring: executionListQuerySchema,
        response: { 200: executionPageSchema, 400: errors[400], 503: errors[503] },
      },
    },
    async (request) => app.executions.list(request.query),
  );

  app.get(
    '/executions/:id',
    {
      schema: {
        operationId: 'getExecution',
        tags: ['executions'],
        summary: 'One execution with the state of every step run',
        params: idParams(),
        response: { 200: executionViewSchema, 404: errors[404], 503: errors[503] },
      },
    },
    async (request) => app.executions.get(request.params.id),
  );

  listSteps();

  /** Every run of an execution, a page at a time (its view summarises large fan-outs). */
  function listSteps() {
    app.get(
      '/executions/:id/steps',
      {
        schema: {
          operationId: 'listExecutionSteps',
          tags: ['executions'],
          summary: 'A page of the step runs of an execution, every for_each item included',
          description: `Runs in the order they were created (run id): each loop iteration's own step runs in definition order, then the item runs of each for_each in item order, inserted in batches as they are about to start (items not inserted yet are not listed). Filter by step_id and status; at most ${MAX_STEP_PAGE} a page. The own run of a for_each over more than ${SUMMARISED_FAN_OUT_ITEMS} items shows a note instead of its output; its item runs carry the outputs.`,
          params: idParams(),
          querystring: stepRunListQuerySchema,
          response: {
            200: stepRunPageSchema,
            400: errors[400],
            404: errors[404],
            503: errors[503],
          },
        },
      },
      async (request) => app.executions.steps(request.params.id, request.query),
    );
  }

  diagnosisRoute();

  /** Why it is not running now. */
  function diagnosisRoute() {
    app.get(
      '/executions/:id/diagnosis',
      {
        schema: {
          operationId: 'diagnoseExecution',
          tags: ['executions'],
          summary: 'Why the execution, and each unfinished step run, is not running now',
          description:
            'For each unfinished step run of the current iteration: blocked_by (dependency, concurrency, timer, retry_backoff, event, external_task, sub_workflow, paused, worker_capacity) with its details, and a one-sentence summary. A fan-out is one entry with its item counts.',
          params: idParams(),
          response: { 200: diagnosisSchema, 404: errors[404], 503: errors[503] },
        },
      },
      async (request) => app.executions.diagnosis(request.params.id),
    );
  }

  historyRoute();

  /** What happened, in order (README "History"). */
  function historyRoute() {
    app.get(
      '/executions/:id/history',
      {
        schema: {
          operationId: 'getExecutionHistory',
          tags: ['executions'],
          summary: 'What happened to the execution, in order: its start, step runs, manual actions',
          description: `Oldest first, a page at a time (at most ${MAX_HISTORY_PAGE}). The start (trigger, caller, parent), each step run's start, wait and end derived from its run (the last attempt; earlier attempts of a retried execution are in the retry's record), every manual action (cancel, pause, resume, retry, edit, upgrade) with who, when, why and, for edits, the values before and after, and the end. A for_each step is one entry with its item counts; GET /executions/{id}/steps lists its items.`,
          params: idParams(),
          querystring: historyQuerySchema,
          response: {
            200: historyPageSchema,
            400: errors[400],
            404: errors[404],
            503: errors[503],
          },
        },
      },
      async (request) => app.executions.history(request.params.id, request.query),
    );
  }

  retryRoute();

  /** Retry, with or without edits (README "Edit and resume"). */
  function retryRoute() {
    app.post(
      '/executions/:id/retry',
      {
        schema: {
          operationId: 'retryExecution',
          tags: ['executions'],
          summary:
            'Resume a failed or timed-out execution from its failed steps, or edit and resume',
          description:
            'No body: the failed steps run again. With from_steps, input_data or step_outputs: those steps (default: the failed ones) and every step depending on them run again, with the corrected input and outputs; a completed execution may be re-run this way, a running one is refused (409). dry_run answers the plan (200) and changes nothing.',
          params: idParams(),
          body: retryBodySchema,
          response: {
            200: z.union([executionViewSchema, retryPlanSchema]),
            ...errors,
          },
        },
      },
      async (request) => {
        const { reason, ...edits } = request.body ?? {};
        return app.executions.retry(request.params.id, edits, actorOf(request, reason));
      },
    );
  }

  actionRoutes();

  /** Cancel, pause, resume: one route each, the same shape, an optional reason. */
  function actionRoutes() {
    const actions = [
      ['cancel', 'cancelExecution', 'Cancel an unfinished execution; running attempts are aborted'],
      ['pause', 'pauseExecution', 'Pause: running attempts finish, no new step starts'],
      ['resume', 'resumeExecution', 'Resume a paused execution'],
    ] as const;
    for (const [action, operationId, summary] of actions) {
      app.post(
        `/executions/:id/${action}`,
        {
          schema: {
            operationId,
            tags: ['executions'],
            summary,
            params: idParams(),
            body: actionBodySchema,
            response: {
              200: executionViewSchema,
              400: errors[400],
              404: errors[404],
              409: errors[409],
              503: errors[503],
            },
          },
        },
        async (request) =>
          app.executions[action](request.params.id, actorOf(request, request.body?.reason)),
      );
    }
  }
};

/** Who asks (the credential's key id or token subject) and why, for the history. */
function actorOf(request: FastifyRequest, reason: string | undefined) {
  return { actor: request.caller?.id ?? null, reason: reason ?? null };
}
