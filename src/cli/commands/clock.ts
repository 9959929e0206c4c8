// `mailstore clock [trust]`: how the store judges the system clock, which retention deletes by
// (src/store/clock.ts), and the admin's word that it is right now after a step or a bad boot.
import type { Command } from 'commander';
import type { ClockReport } from '../../store/clock-report.js';
import { printJson, printLine, wantsJson, withStore } from '../context.js';

export function register(program: Command): void {
  const clock = program
    .command('clock')
    .description('show whether the store trusts the system clock: retention (expunge --before) refuses to run while the clock is behind the latest time the store has seen, before its creation, or was stepped since the store last looked')
    .option('--json', 'print {now, seen, created, steps: [{byMs, atMs}], untrusted?} (times in ms since the epoch)')
    .action(async (_options: unknown, command: Command) => {
      await show(await withStore(command, (store) => store.clockReport()), command);
    });

  clock
    .command('trust')
    .description('say the system clock is right now (check it first: timedatectl, chronyc tracking): the store forgets the steps it saw and the latest time it had seen, and retention runs again')
    .option('--json', 'print the report as clock --json does')
    .action(async (_options: unknown, command: Command) => {
      await show(await withStore(command, (store) => store.trustClock()), command);
    });
}

async function show(report: ClockReport, command: Command): Promise<void> {
  if (wantsJson(command)) return printJson(report);
  const at = (ms: number) => new Date(ms).toISOString();
  await printLine(`clock ${at(report.now)}, latest seen ${at(report.seen)}, store created ${at(report.created)}`);
  await printLine(report.untrusted === undefined ? 'trusted: retention runs' : `not trusted: ${report.untrusted}; retention refuses until 'mailstore clock trust'`);
}
