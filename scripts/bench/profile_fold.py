#!/usr/bin/env python3
"""Where a server's CPU goes, from `perf script -F tid,ip,sym` of a run with
call graphs: each sample is given to one thread role (by the frames of its
stack) and to the first component below whose pattern one of its frames
matches. Prints a Markdown table: the share of the samples and, given the
server's CPU per call, the microseconds per call.

  profile_fold.py SCRIPT_TXT US_PER_CALL
"""
import collections
import re
import sys

# Thread roles: the first whose pattern a frame of the stack matches.
ROLES = [
    ("hub dispatcher", r"parley::chat::Dispatcher::Run"),
    ("store writer", r"parley::store::WriteQueue|CheckpointLoop"),
    ("worker pools", r"parley::WorkerPool::Loop"),
    ("gRPC threads", r"."),
]

# Components, in order: a sample goes to the first that matches any of its
# frames, so the narrow ones (allocation, waiting) come first.
COMPONENTS = [
    ("malloc / free", r"^(_int_malloc|_int_free|malloc|__libc_malloc|__GI___libc_malloc|cfree|__GI___libc_free|free|malloc_consolidate|unlink_chunk|operator new|operator delete|tcache)"),
    ("sleeping and waking (futex, scheduler)", r"futex|^schedule$|__schedule|finish_task_switch|pthread_cond_(wait|signal)"),
    ("socket writes (sendmsg)", r"sendmsg"),
    ("socket reads (recvmsg)", r"recvmsg"),
    ("SQLite: insert the event", r"sqlite_internal::(\(anonymous namespace\)::)?InsertEvent"),
    ("SQLite: WAL checkpoint", r"sqlite3_wal_checkpoint|Checkpoint"),
    ("SQLite: commit and the rest", r"sqlite3|SqliteStore"),
    ("the call's checks (token, room, member)", r"parley::api::(ReadableRoom|Authenticate|ResolveRoom|ResolveUser|SignedInUser|CheckStrings)|IdempotentSends::KeyOf|ValidateMessageText"),
    ("the answer: event to proto, Finish", r"parley::api::(ToProto|FinishWith|SetCreated)|ServerUnaryReactor::Finish"),
    ("hub: publish, order, deliver", r"parley::chat::"),
    ("ids (UUIDs)", r"NewUuid|NewTimeOrderedUuid"),
    ("metrics and call stats", r"parley::metrics|CallStats|CallRecord|StatsInterceptor"),
    ("gRPC: receive, parse, dispatch the call", r"grpc|chttp2|protobuf"),
    ("other", r"."),
]


def samples(path):
    stack = None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = None
        elif not line[0].isspace():
            stack = []
        elif stack is not None:
            parts = line.split(None, 1)
            stack.append(parts[1] if len(parts) > 1 else parts[0])
    if stack:
        yield stack


def main():
    path, us_per_call = sys.argv[1], float(sys.argv[2])
    roles = [(n, re.compile(p)) for n, p in ROLES]
    comps = [(n, re.compile(p)) for n, p in COMPONENTS]
    by_role = collections.Counter()
    by_comp = collections.Counter()
    by_both = collections.Counter()
    total = 0
    for stack in samples(path):
        total += 1
        role = next(n for n, p in roles if any(p.search(f) for f in stack))
        comp = next(n for n, p in comps if any(p.search(f) for f in stack))
        by_role[role] += 1
        by_comp[comp] += 1
        by_both[(role, comp)] += 1
    if total == 0:
        sys.exit("profile_fold: no samples")

    def row(name, n):
        return f"| {name} | {100 * n / total:.1f}% | {us_per_call * n / total:.1f} |"

    print(f"Samples: {total}; server CPU per send: {us_per_call:.1f} µs.\n")
    print("| thread | share | µs per send |")
    print("|---|---:|---:|")
    for name, _ in ROLES:
        print(row(name, by_role[name]))
    print("\n| component | share | µs per send | mostly on |")
    print("|---|---:|---:|---|")
    for name, _ in COMPONENTS:
        n = by_comp[name]
        if n == 0:
            continue
        where = max(ROLES, key=lambda r: by_both[(r[0], name)])[0]
        print(f"{row(name, n)} {where} |")


if __name__ == "__main__":
    main()
