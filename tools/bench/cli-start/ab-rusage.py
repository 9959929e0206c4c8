#!/usr/bin/env python3
"""Alternating CLI appends of a corpus's messages, one build after another, each build into its own
fresh store (growing as the bench's does), beside `node -e 0`: wall and CPU (getrusage of the child,
microseconds) medians.  ab-rusage.py N LIST.TXT WORKDIR label=DIST [label=DIST ...]
(DIST: a dist directory, whose src/cli/main.js runs, or the path of a .js/.mjs entry itself)"""
import os, resource, shutil, statistics, subprocess, sys, time

n, listfile, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
builds = [b.split('=', 1) for b in sys.argv[4:]]
files = [l for l in open(listfile).read().split('\n') if l]
os.makedirs(work, exist_ok=True)

def timed(argv):
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t) * 1000
    err = p.stderr.read(); p.stderr.close(); p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0: sys.exit(f"{' '.join(argv)}: exit {p.returncode}: {err.decode()}")
    return wall, (ru.ru_utime + ru.ru_stime) * 1000

def entry(dist): return dist if dist.endswith(('.js', '.mjs')) else os.path.join(dist, 'src/cli/main.js')
runs = [('node -e 0', None)] + [(label, dist) for label, dist in builds]
stores = [os.path.join(work, f'store-{i}') for i in range(len(runs))]
for i, (label, dist) in enumerate(runs):
    if dist is None: continue
    shutil.rmtree(stores[i], ignore_errors=True)
    cli = entry(dist)
    timed(['node', cli, '--store', stores[i], 'init']); timed(['node', cli, '--store', stores[i], 'mailbox', 'create', 'INBOX'])
wall = [[] for _ in runs]; cpu = [[] for _ in runs]
for r in range(n):
    for i, (label, dist) in enumerate(runs):
        argv = ['node', '-e', '0'] if dist is None else ['node', entry(dist), '--store', stores[i], 'append', 'INBOX', files[r % len(files)]]
        w, c = timed(argv); wall[i].append(w); cpu[i].append(c)
parts = int(os.environ.get('PARTS', '1'))
for part in range(parts):
    a, b = part * n // parts, (part + 1) * n // parts
    if parts > 1: print(f'appends {a + 1}-{b}:')
    base_w = statistics.median(wall[0][a:b]); base_c = statistics.median(cpu[0][a:b])
    for i, (label, _) in enumerate(runs):
        w = statistics.median(wall[i][a:b]); c = statistics.median(cpu[i][a:b])
        print(f'{label:12} wall p50 {w:7.1f} ms  ratio {w / base_w:4.2f}  min {min(wall[i][a:b]):6.1f}  cpu p50 {c:6.1f} ms  ratio {c / base_c:4.2f}')
