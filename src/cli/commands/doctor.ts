import type { Command } from 'commander';
import type { Registry } from './index.js';

export function registerDoctor(_program: Command, _registry: Registry): void {}
