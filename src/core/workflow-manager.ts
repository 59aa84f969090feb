import type {
  StepDefinition,
  StepInput,
  WorkflowCreateInput,
  WorkflowUpdateInput,
} from '../domain/workflow-definition.js';
import { versionSummary } from '../engine/upgrade-plan.js';
import {
  type FieldProblem,
  InvalidCursorError,
  ValidationFailedError,
  WorkflowNotFoundError,
  WorkflowVersionNotFoundError,
} from '../errors.js';
import type { Queryable } from '../store/db.js';
import { lockExistingLimits } from '../store/limit-store.js';
import type { WorkflowCache } from '../store/workflow-cache.js';
import {
  type StoredWorkflow,
  toStepView,
  toWorkflowView,
  type WorkflowListQuery,
  type WorkflowPage,
  type WorkflowView,
  type WorkflowWrite,
} from '../store/workflow-rows.js';
import type { WorkflowStore } from '../store/workflow-store.js';
import { validateWorkflow, type WorkflowDraft, type WorkflowLimits } from './workflow-validator.js';

export type {
  StepView,
  WorkflowListQuery,
  WorkflowPage,
  WorkflowSummary,
  WorkflowView,
} from '../store/workflow-rows.js';

/**
 * Nesting allowed in user JSON (config, metadata). Far beyond real configurations, and it
 * keeps recursive checks and Postgres' jsonb parser clear of their stack limits.
 */
const MAX_JSON_DEPTH = 64;

/**
 * Problems no schema states but storage imposes: U+0000 (Postgres rejects it in text and
 * jsonb) and excessive nesting. `deep` says whether other checks may safely recurse.
 */
function findStorageProblems(draft: WorkflowDraft): { problems: FieldProblem[]; deep: boolean } {
  const problems: FieldProblem[] = [];
  let deep = false;
  const visit = (value: unknown, path: string, depth: number): void => {
    if (typeof value === 'string') {
      if (value.includes('\u0000')) {
        problems.push({ path, message: 'must not contain the character U+0000' });
      }
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    if (depth > MAX_JSON_DEPTH) {
      deep = true;
      problems.push({ path, message: `is nested more than ${MAX_JSON_DEPTH} levels deep` });
      return;
    }
    const entries = Array.isArray(value)
      ? value.map((item, index) => [`[${index}]`, item] as const)
      : Object.entries(value).map(([key, item]) => [`.${key}`, item] as const);
    for (const [suffix, item] of entries) {
      if (!Array.isArray(value) && suffix.includes('\u0000')) {
        problems.push({ path: `${path}${suffix}`, message: 'key must not contain U+0000' });
      }
      visit(item, `${path}${suffix}`, depth + 1);
    }
  };
  for (const [field, value] of Object.entries(draft)) visit(value, field, 0);
  return { problems, deep };
}

/** Rebuilds the request form of a stored step, so a PUT without `steps` keeps them as given. */
function toStepInput(step: StepDefinition): StepInput {
  // null = none declared: the workflow type's implicit order applies again after the merge.
  return { ...toStepView(step), dependencies: step.dependencies ?? undefined };
}

/** Every limit the steps name that does not exist, by its place; those that do are locked. */
async function unknownLimitProblems(steps: StepInput[], db: Queryable): Promise<FieldProblem[]> {
  const references = steps.flatMap((step, index) =>
    (step.limits ?? []).map((limit, position) => ({
      path: `steps[${index}].limits[${position}].name`,
      name: limit.name,
    })),
  );
  const existing = await lockExistingLimits(db, [...new Set(references.map((ref) => ref.name))]);
  return references
    .filter((ref) => !existing.has(ref.name))
    .map((ref) => ({
      path: ref.path,
      message: `no limit is named "${ref.name}"; create it first with PUT /limits/${ref.name}`,
    }));
}

/** A version in the history, as the API shows it. */
export interface VersionListItem {
  version: number;
  created_at: string;
  created_by: string | null;
  summary: string | null;
}

/** The history is ordered by version number: a cursor is the last version seen, opaque. */
function encodeVersionCursor(version: number): string {
  return Buffer.from(`v${version}`).toString('base64url');
}

function decodeVersionCursor(cursor: string): number {
  const match = /^v([1-9]\d{0,8})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (match?.[1] === undefined || encodeVersionCursor(Number(match[1])) !== cursor) {
    throw new InvalidCursorError('not a version cursor');
  }
  return Number(match[1]);
}

function uniqueTags(tags: string[]): string[] {
  return [...new Set(tags)];
}

/** Workflow definition use cases: validation, persistence and caching, without HTTP. */
export class WorkflowManager {
  constructor(
    private readonly store: WorkflowStore,
    private readonly cache: WorkflowCache,
    private readonly limits: WorkflowLimits,
  ) {}

  /** Validates and stores a new workflow (version 1); `createdBy` is who asked (the caller's id). */
  async create(input: WorkflowCreateInput, createdBy: string | null = null): Promise<WorkflowView> {
    const draft: WorkflowDraft = {
      name: input.name,
      description: input.description ?? null,
      workflow_type: input.workflow_type,
      config: input.config,
      metadata: input.metadata,
      tags: uniqueTags(input.tags),
      steps: input.steps,
    };
    const stored = await this.store.insert((db) => this.toWrite(draft, input.status, db), {
      createdBy,
      summary: versionSummary,
    });
    return toWorkflowView(stored);
  }

  /** One workflow with its steps. */
  async get(id: string): Promise<WorkflowView> {
    return JSON.parse(await this.getJson(id)) as WorkflowView;
  }

  /**
   * One workflow with its steps as JSON text, from the cache when it is there: the hottest
   * read answers with the cached text as it is, and a miss with the very text it caches.
   */
  async getJson(id: string): Promise<string> {
    const cached = await this.cache.get(id);
    if (cached.json !== null) return cached.json;
    const stored = await this.store.get(id);
    if (stored === null) throw new WorkflowNotFoundError(id);
    const json = JSON.stringify(toWorkflowView(stored));
    await this.cache.fill(id, json, cached.ticket);
    return json;
  }

  /** A page of workflows, newest first, with steps_count instead of steps. */
  async list(query: WorkflowListQuery): Promise<WorkflowPage> {
    return this.store.list(query);
  }

  /** Merges the given fields over the stored workflow, validates, and stores a new version. */
  async update(
    id: string,
    input: WorkflowUpdateInput,
    createdBy: string | null = null,
  ): Promise<WorkflowView> {
    const stored = await this.store.update(
      id,
      (current, db) => this.toWrite(this.merge(current, input), input.status ?? current.status, db),
      { createdBy, summary: versionSummary },
    );
    if (stored === null) throw new WorkflowNotFoundError(id);
    await this.cache.invalidate(id);
    return toWorkflowView(stored);
  }

  /** A page of the workflow's versions, newest first, each with who stored it and what changed. */
  async versions(
    id: string,
    query: { limit: number; cursor?: string | undefined },
  ): Promise<{ items: VersionListItem[]; next_cursor: string | null }> {
    const before = query.cursor === undefined ? undefined : decodeVersionCursor(query.cursor);
    const rows = await this.store.listVersions(id, { limit: query.limit + 1, before });
    if (rows === null) throw new WorkflowNotFoundError(id);
    const page = rows.slice(0, query.limit).map((row) => ({
      ...row,
      created_at: row.created_at.toISOString(),
    }));
    const last = page[page.length - 1];
    return {
      items: page,
      next_cursor: rows.length > query.limit && last ? encodeVersionCursor(last.version) : null,
    };
  }

  /** One version with the definition it pinned, as stored. */
  async version(
    id: string,
    version: number,
  ): Promise<VersionListItem & { definition: Record<string, unknown> }> {
    const row = await this.store.getVersion(id, version);
    if (row === null) {
      if ((await this.store.get(id)) === null) throw new WorkflowNotFoundError(id);
      throw new WorkflowVersionNotFoundError(id, version);
    }
    const { definition, ...summary } = row;
    return {
      ...summary,
      created_at: row.created_at.toISOString(),
      definition: { ...definition },
    };
  }

  /** Deletes a workflow that has no unfinished executions. */
  async delete(id: string): Promise<void> {
    const deleted = await this.store.delete(id);
    if (!deleted) throw new WorkflowNotFoundError(id);
    await this.cache.remove(id);
  }

  private merge(current: StoredWorkflow, input: WorkflowUpdateInput): WorkflowDraft {
    return {
      name: input.name ?? current.name,
      description: input.description !== undefined ? input.description : current.description,
      workflow_type: input.workflow_type ?? current.workflow_type,
      config: input.config ?? current.config,
      metadata: input.metadata ?? current.metadata,
      tags: uniqueTags(input.tags ?? current.tags),
      steps: input.steps ?? current.steps.map(toStepInput),
    };
  }

  /**
   * What a create or update writes, in its transaction: the validated definition, whose
   * named limits must exist (locked until the commit, so none is deleted meanwhile). Every
   * problem found, of the definition and its limits, is refused at once.
   */
  private async toWrite(
    draft: WorkflowDraft,
    status: WorkflowWrite['status'],
    db: Queryable,
  ): Promise<WorkflowWrite> {
    let write: WorkflowWrite | null = null;
    let problems: FieldProblem[] = [];
    try {
      write = this.validate(draft, status);
    } catch (error) {
      if (!(error instanceof ValidationFailedError)) throw error;
      problems = error.errors;
    }
    problems.push(...(await unknownLimitProblems(draft.steps, db)));
    if (write === null || problems.length > 0) throw new ValidationFailedError(problems);
    return write;
  }

  private validate(draft: WorkflowDraft, status: WorkflowWrite['status']): WorkflowWrite {
    const storage = findStorageProblems(draft);
    if (storage.deep) throw new ValidationFailedError(storage.problems);
    let definition: WorkflowWrite['definition'];
    try {
      definition = validateWorkflow(draft, this.limits);
    } catch (error) {
      if (error instanceof ValidationFailedError && storage.problems.length > 0) {
        throw new ValidationFailedError([...error.errors, ...storage.problems]);
      }
      throw error;
    }
    if (storage.problems.length > 0) throw new ValidationFailedError(storage.problems);
    return {
      name: draft.name,
      description: draft.description ?? null,
      workflow_type: draft.workflow_type,
      status,
      config: draft.config,
      metadata: draft.metadata,
      tags: draft.tags,
      definition,
    };
  }
}
