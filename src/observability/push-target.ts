/**
 * Where run metrics go (`--pushgateway`), apart from the push itself: the CLI validates the target
 * and names it in messages on every run, while pushgateway.ts, which loads prom-client, is only
 * imported when a push happens.
 */

/** Where and under which job name to push. */
export interface PushTarget {
  /** Pushgateway base URL, e.g. http://pushgateway:9091 (userinfo allowed for basic auth). */
  url: string;
  /** The `job` grouping label. */
  job: string;
  /** Give up on a push after this long; the run's result does not depend on it. */
  timeoutMs: number;
}

/** The target URL without userinfo, for messages. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '<invalid URL>';
  }
}
