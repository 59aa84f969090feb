import { z } from 'zod';

/**
 * Labels of an execution (README "Operations"): business keys a person searches by ("what
 * happened to order 4711?"), given on execute and on an event, inherited by sub-workflows.
 */

export const MAX_LABELS = 20;
export const MAX_LABEL_KEY_LENGTH = 64;
export const MAX_LABEL_VALUE_LENGTH = 256;
/** A label key: what `label.<key>` can name in a query string. */
export const LABEL_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/;

export type Labels = Record<string, string>;

export const labelsSchema = z
  .record(
    z
      .string()
      .min(1)
      .max(MAX_LABEL_KEY_LENGTH)
      .regex(
        LABEL_KEY_PATTERN,
        'letters, digits, "_", ".", ":", "/" and "-", starting with a letter or digit',
      ),
    z.string().max(MAX_LABEL_VALUE_LENGTH),
  )
  .refine((labels) => Object.keys(labels).length <= MAX_LABELS, {
    message: `at most ${MAX_LABELS} labels`,
  })
  .describe(
    `Up to ${MAX_LABELS} labels (keys up to ${MAX_LABEL_KEY_LENGTH} characters, values up to ${MAX_LABEL_VALUE_LENGTH}); GET /executions filters by label.<key>=<value>`,
  );

/**
 * Labels of an execution a trigger starts: the workflow's `config.trigger.labels` under those
 * the start brings (an event's own win), at most MAX_LABELS with the start's kept first.
 */
export function triggeredLabels(
  defaults: Labels | undefined,
  given: Labels | undefined,
): Labels | undefined {
  if (!defaults) return given;
  const merged: Labels = { ...given };
  for (const [key, value] of Object.entries(defaults)) {
    if (Object.keys(merged).length >= MAX_LABELS) break;
    if (!(key in merged)) merged[key] = value;
  }
  return merged;
}
