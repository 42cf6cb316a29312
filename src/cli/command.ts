/**
 * What a command module gets from the program: the shared types and helpers
 * every command imports. Commands import this module, never program.ts or one
 * another, so imports run one way: program.ts -> commands -> command.ts.
 */
import type { Command } from 'commander';
import type { Logger } from '../logger.js';
import type { CliIo, CliOutput } from './io.js';
import type { CliSettings } from './settings.js';

/** What every command gets: resolved settings, a logger on stderr, and the run's streams and stop signal. */
export interface CommandContext {
  io: CliIo;
  settings: CliSettings;
  /**
   * Where human text goes (tables, confirmations, progress): stdout, or nowhere
   * with --quiet. A command's data (--json, an exported PEM) goes to io.stdout.
   */
  out: CliOutput;
  logger: Logger;
}

/** The program's side, handed to every command when it registers. */
export interface CommandHost {
  io: CliIo;
  contextFor(command: Command, defaults?: { storage?: string }): CommandContext;
  finish(code: number): void;
}

/** A command module's entry: defines its subcommand on `program`. */
export type RegisterCommand = (program: Command, host: CommandHost) => void;

/** The Command object commander passes last to every action. */
export function commandOf(args: unknown[]): Command {
  return args[args.length - 1] as Command;
}
