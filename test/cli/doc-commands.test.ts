// Every `mailstore ...` command line the admin's texts print (README.md, RECOVERY.md, docs/*.md,
// packaging/: the units and /etc/default/mailstore, each command's --help, and the commands the
// error messages in src/ name) against the program itself: the command and subcommand exist, each
// option is one of theirs (or global), and a value from a fixed set is one of that set. An admin at
// 3 a.m. pastes these; a flag renamed in the code and not in the text fails here, not then.
// (What the recipes do is the drills': drills.test.ts, disaster.test.ts.)
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { repoRoot, requireBuilt } from './helpers.js';

/** The built program (its every command registered): compiled, it loads in a fraction of the source's time. */
async function buildProgram(): Promise<Command> {
  requireBuilt();
  const program = await import(join(repoRoot, 'dist/src/cli/program.js')) as { buildProgram: () => Promise<Command> };
  return program.buildProgram();
}

/** The admin's texts; BENCHMARKS.md records what was run at the time, not what to run. */
const DOCS = ['README.md', 'RECOVERY.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

const GLOBAL_WITH_VALUE = new Set(['--store', '--wait']);
const GLOBAL = new Set([...GLOBAL_WITH_VALUE, '--no-wait', '--help', '-h', '--version', '-V']);

/** Text where a command line ends: a comment, a redirection, a pipe, a list or a subshell's end. */
const END = /\s(?:#|\|\||&&|\|\s|;|>|<|2>&1)|\)|;|…/;

/** Each `mailstore ...` invocation in a piece of text (a code span or a code block's line). */
function invocations(text: string): string[] {
  const found: string[] = [];
  const words = /(?:^|[\s(`'"=])mailstore\s+(?=--?[a-z]|[a-z])/g;
  for (let match = words.exec(text); match; match = words.exec(text)) {
    const start = match.index + match[0].length;
    const rest = text.slice(start);
    const end = rest.search(END);
    found.push((end < 0 ? rest : rest.slice(0, end)).trim());
  }
  return found;
}

interface Place { where: string; line: string }

/** A command line, not prose: `mailstore` first, after cron's fields, variables, `out=$(` or `runuser -u USER --`. */
const COMMAND_LINE = /^\s*(?:(?:[0-9*,/-]+\s+){5})?(?:out=\$\()?(?:[A-Z_]+=\S+\s+)*(?:runuser -u \S+ -- )?mailstore\s/;

/** The command lines of a markdown text: code spans (joined across line breaks) and code blocks' lines (a trailing \\ continues one). */
function docCommandLines(file: string): Place[] {
  const text = readFileSync(join(repoRoot, file), 'utf8').replaceAll('\\|', '|');
  const places: Place[] = [];
  for (const span of text.matchAll(/`([^`]+)`/g)) {
    const code = span[1]!.replace(/\s*\n\s*/g, ' ');
    if (COMMAND_LINE.test(code)) for (const line of invocations(code)) places.push({ where: file, line });
  }
  for (const line of text.replace(/\\\n\s*/g, ' ').split('\n')) {
    if (/^( {4}|\t)/.test(line) && COMMAND_LINE.test(line)) for (const command of invocations(line)) places.push({ where: file, line: command });
  }
  return places;
}

/** The units' ExecStart= lines, and serve with /etc/default/mailstore's MAILSTORE_SERVE_OPTIONS. */
function packagingCommandLines(): Place[] {
  const places: Place[] = [];
  for (const file of readdirSync(join(repoRoot, 'packaging'))) {
    const text = readFileSync(join(repoRoot, 'packaging', file), 'utf8');
    for (const exec of text.matchAll(/^ExecStart=\/usr\/bin\/mailstore (.*)$/gm)) places.push({ where: `packaging/${file}`, line: exec[1]!.replace(/\$\w+/g, '') });
    for (const options of text.matchAll(/^MAILSTORE_SERVE_OPTIONS="([^"]*)"/gm)) places.push({ where: `packaging/${file}`, line: `serve ${options[1]}` });
  }
  return places;
}

/** A command named in quotes ('mailstore reconstruct --check', `mailstore snapshot`). */
const QUOTED = /['`]mailstore ((?:--store \S+ )?[a-z][^'`$]*)['`$]/g;

/** Commands the source's messages and help texts name in quotes ('mailstore reconstruct --check'). */
function sourceCommandLines(dir: string): Place[] {
  const places: Place[] = [];
  for (const entry of readdirSync(join(repoRoot, dir), { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    const text = readFileSync(path, 'utf8');
    for (const quoted of text.matchAll(QUOTED)) places.push({ where: path.slice(repoRoot.length + 1), line: quoted[1]! });
  }
  return places;
}

const negatable = (option: Option) => (option.negate ? option.long : option.long);
const optionNames = (command: Command) => command.options.flatMap((o: Option) => [negatable(o), o.short].filter(Boolean) as string[]);

/** What is wrong with one command line, or undefined. `strict`: the first word must be a command. */
function problem(program: Command, line: string, strict: boolean): string | undefined {
  const tokens = line.split(/\s+/).filter(Boolean);
  let i = 0;
  while (i < tokens.length && GLOBAL.has(tokens[i]!.split('=')[0]!)) i += GLOBAL_WITH_VALUE.has(tokens[i]!) ? 2 : 1;
  if (i >= tokens.length) return undefined; // `mailstore --help`
  const first = tokens[i]!;
  if (/^[A-Z]/.test(first)) return undefined; // `mailstore COMMAND --help`
  const names = first.split('|');
  const commands = names.map((name) => program.commands.find((c) => c.name() === name));
  if (commands.some((c) => c === undefined)) return strict || commands.some(Boolean) ? `no command '${first}'` : undefined;
  const candidates: Command[] = [...(commands as Command[])];
  for (const token of tokens.slice(i + 1)) {
    for (const word of token.replace(/[[\]]/g, '').split('|')) {
      for (const command of commands as Command[]) {
        const sub = command.commands.find((c) => c.name() === word);
        if (sub) candidates.push(sub);
      }
    }
  }
  // a command of subcommands only (mailbox, tier, acl ...): the next word names them
  for (const command of commands as Command[]) {
    const group = command.commands.length > 0 && command.options.length === 0;
    const next = tokens[i + 1];
    if (group && next !== undefined && /^[a-z]/.test(next) && !/^(help)$/.test(next)) {
      for (const word of next.replace(/[[\]]/g, '').split('|')) {
        if (!command.commands.some((c) => c.name() === word)) return `no command '${command.name()} ${word}'`;
      }
    }
  }
  for (let t = i + 1; t < tokens.length; t++) {
    for (const flag of tokens[t]!.match(/(?<![\w-])--?[a-z][a-z0-9-]*/g) ?? []) {
      if (GLOBAL.has(flag)) continue;
      const owners = candidates.filter((c) => optionNames(c).includes(flag));
      if (owners.length === 0) return `'${flag}' is no option of ${candidates.map((c) => `'${c.parent?.parent ? `${c.parent.name()} ` : ''}${c.name()}'`).join(' or ')}`;
      // a value from a fixed set (--format mbox|maildir): each one named must be in it
      const option = owners[0]!.options.find((o: Option) => o.long === flag || o.short === flag)!;
      const value = tokens[t]!.includes('=') ? tokens[t]!.split('=')[1] : tokens[t + 1];
      if (option.argChoices && value !== undefined && /^[a-z]/.test(value)) {
        for (const choice of value.replace(/[[\]]/g, '').split('|')) {
          if (!option.argChoices.includes(choice)) return `'${flag} ${choice}': not one of ${option.argChoices.join(', ')}`;
        }
      }
    }
  }
  return undefined;
}

/** Every command and subcommand of the program, depth first. */
function allCommands(command: Command): Command[] {
  return command.commands.flatMap((c) => [c, ...allCommands(c)]);
}

describe('the command lines the texts print', () => {
  it('name commands, subcommands, options and option values that exist (README, RECOVERY, docs/, packaging/)', async () => {
    const program = await buildProgram();
    const places = [...DOCS.flatMap(docCommandLines), ...packagingCommandLines()];
    expect(places.length).toBeGreaterThan(150); // the extraction finds the texts' command lines
    const wrong = places.map((p) => ({ ...p, problem: problem(program, p.line, true) })).filter((p) => p.problem);
    expect(wrong.map((w) => `${w.where}: mailstore ${w.line}: ${w.problem}`)).toEqual([]);
  });

  it('in each --help and in the messages of src/: what they tell an admin to run exists', async () => {
    const program = await buildProgram();
    const helps: Place[] = [program, ...allCommands(program)].flatMap((command) => {
      let text = '';
      command.configureOutput({ writeOut: (s) => { text += s; } }).outputHelp();
      return [...text.replace(/\s*\n\s*/g, ' ').matchAll(QUOTED)].map((quoted) => ({ where: `mailstore ${command.name()} --help`, line: quoted[1]! }));
    });
    const places = [...helps, ...sourceCommandLines('src')];
    expect(places.length).toBeGreaterThan(50);
    const wrong = places.map((p) => ({ ...p, problem: problem(program, p.line, false) })).filter((p) => p.problem);
    expect(wrong.map((w) => `${w.where}: mailstore ${w.line}: ${w.problem}`)).toEqual([]);
  });

  it('are checked: a renamed option, a missing subcommand and a value outside its set are each found', async () => {
    const program = await buildProgram();
    expect(problem(program, 'scrub --repair --sources COPY', true)).toMatch(/'--sources' is no option of 'scrub'/);
    expect(problem(program, 'tier stat', true)).toBe("no command 'tier stat'");
    expect(problem(program, 'export INBOX --format mbx --out F', true)).toMatch(/not one of mbox, maildir/);
    expect(problem(program, 'reconstruct', true)).toBeUndefined();
    expect(problem(program, '--store /s backup check --repo R --read-data', true)).toBeUndefined();
    expect(problem(program, 'mailbox create|rename|delete [--recursive]|list|status NAME', true)).toBeUndefined();
  });
});
