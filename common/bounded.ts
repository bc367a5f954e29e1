// Running an async function over many items with a bound on how many calls are in flight.

/**
 * fn over items, at most `limit` calls in flight; results in the items' order. The first call
 * that fails stops the rest: no further call starts, `stop` (each call's second argument) is
 * aborted with its error, and that error is thrown once the calls still running have settled, so
 * none is left working (or cleaning up) behind the caller's back.
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, stop: AbortSignal) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  const failed = new AbortController();
  let next = 0;
  const worker = async () => {
    while (!failed.signal.aborted && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, failed.signal);
      } catch (err) {
        if (!failed.signal.aborted) failed.abort(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed.signal.aborted) throw failed.signal.reason;
  return out;
}
