/**
 * Settles as `work` does, unless `ms` pass first: then it rejects with a
 * message naming the deadline. For tests that prove a timeout fires: the
 * deadline is a generous multiple of the timeout under test, never a
 * measured duration compared against a tight figure.
 */
export function beforeDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
