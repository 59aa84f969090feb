export { needsSandbox } from './classify.js';
export { EXPRESSION_LIMIT_CODE, type ExpressionLimit, ExpressionLimitError } from './errors.js';
export {
  closeExpressionSandbox,
  configureExpressionSandbox,
  evaluate,
  type SandboxEvaluateOptions,
  type SandboxLimits,
  type SandboxStats,
  sandboxStats,
} from './pool.js';
