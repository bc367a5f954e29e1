// Runs a writer's operations one after another (write, commit, cancel may be called without
// awaiting the previous one), whatever each of them ends with.
export class Serial {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
