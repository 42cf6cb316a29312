/** Registers every subcommand on the program. */
import type { Command } from 'commander';
import type { CliIo } from '../io.js';
import type { CommandContext } from '../program.js';
import { registerDemo } from './demo.js';
import { registerDoctor } from './doctor.js';
import { registerExport } from './export.js';
import { registerList } from './list.js';
import { registerObtain } from './obtain.js';
import { registerRenew } from './renew.js';
import { registerRevoke } from './revoke.js';
import { registerRun } from './run.js';
import { registerStatus } from './status.js';
import { registerTrust } from './trust.js';

export interface Registry {
  io: CliIo;
  contextFor(command: Command, defaults?: { storage?: string }): CommandContext;
  finish(code: number): void;
}

export function registerCommands(program: Command, registry: Registry): void {
  registerDemo(program, registry);
  registerObtain(program, registry);
  registerRenew(program, registry);
  registerRevoke(program, registry);
  registerList(program, registry);
  registerStatus(program, registry);
  registerExport(program, registry);
  registerTrust(program, registry);
  registerDoctor(program, registry);
  registerRun(program, registry);
}

/** The Command object commander passes last to every action. */
export function commandOf(args: unknown[]): Command {
  return args[args.length - 1] as Command;
}
