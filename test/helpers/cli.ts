/** A CliContext for calling command adapters in-process: quiet, no output, no interrupts. */
import type { CliContext } from '../../src/cli/context.js';
import { CliReporter } from '../../src/cli/render.js';

export function quietCliContext(overrides: Partial<CliContext> = {}): CliContext {
  return {
    json: false,
    debug: false,
    quiet: true,
    reporter: new CliReporter({ quiet: true, plain: true }),
    signal: new AbortController().signal,
    onFirstInterrupt: () => () => undefined,
    print: () => undefined,
    ...overrides,
  };
}
