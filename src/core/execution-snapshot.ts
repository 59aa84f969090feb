import type { WorkflowType } from '../domain/workflow-definition.js';
import type { StateManager } from '../engine/state/state-manager.js';
import type { Pool } from '../store/db.js';
import { getExecution } from '../store/executions.js';
import type { ExecutionManager, ExecutionView } from './execution-manager.js';

/** A step of the pinned definition as a graph node: what a dashboard draws. */
export interface DagNode {
  id: string;
  name: string;
  step_type: string;
  /** Effective dependencies: declared ones or the workflow type's implicit order. */
  depends_on: string[];
}

/** The first message of an execution stream: its state now and the graph it runs. */
export interface ExecutionSnapshotData {
  execution: ExecutionView;
  workflow: { workflow_type: WorkflowType; steps: DagNode[] };
}

export interface ExecutionSnapshots {
  snapshot(executionId: string): Promise<{ status: string; data: ExecutionSnapshotData }>;
  status(executionId: string): Promise<{ status: string; completedAt: Date | null } | null>;
}

/** Reads executions for streams: the full snapshot, or just the status (cheap, for polling). */
export function executionSnapshots(deps: {
  pool: Pool;
  executions: ExecutionManager;
  state: StateManager;
}): ExecutionSnapshots {
  return {
    async snapshot(executionId) {
      const execution = await deps.executions.get(executionId);
      const definition = await deps.state.definition(
        deps.pool,
        execution.workflow_id,
        execution.workflow_version,
      );
      return {
        status: execution.status,
        data: {
          execution,
          workflow: {
            workflow_type: definition.workflow_type,
            steps: definition.steps.map((step) => ({
              id: step.id,
              name: step.name,
              step_type: step.step_type,
              depends_on: step.depends_on,
            })),
          },
        },
      };
    },
    async status(executionId) {
      const row = await getExecution(deps.pool, executionId);
      return row ? { status: row.status, completedAt: row.completed_at } : null;
    },
  };
}
