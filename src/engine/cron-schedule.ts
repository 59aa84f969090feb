import { CronExpressionParser } from 'cron-parser';

/** A cron schedule from `config.trigger.schedule`: a cron string or `{cron, timezone}`. */
export interface Schedule {
  cron: string;
  timezone: string;
}

/** Reads a schedule, or says what is wrong with it. Five fields, or six with seconds first. */
export function parseSchedule(value: unknown): Schedule | { problem: string } {
  const raw = typeof value === 'string' ? { cron: value } : value;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { problem: 'must be a cron expression or {cron, timezone}' };
  }
  const { cron, timezone = 'UTC' } = raw as { cron?: unknown; timezone?: unknown };
  if (typeof cron !== 'string' || cron.trim() === '')
    return { problem: 'cron must be a cron expression' };
  if (typeof timezone !== 'string') return { problem: 'timezone must be an IANA time zone name' };
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    return { problem: `unknown time zone "${timezone}"` };
  }
  try {
    CronExpressionParser.parse(cron, { tz: timezone, strict: false });
  } catch (error) {
    return {
      problem: `invalid cron expression: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
  return { cron, timezone };
}

/** The latest tick of the schedule at or before `now`. */
export function latestTick(schedule: Schedule, now: Date): Date {
  const expression = CronExpressionParser.parse(schedule.cron, {
    tz: schedule.timezone,
    currentDate: new Date(now.getTime() + 1),
  });
  return expression.prev().toDate();
}
