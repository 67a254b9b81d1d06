#!/usr/bin/env python3
"""Writes docs/benchmarks.md and docs/bench/*.png from build/bench/results.jsonl.

    scripts/bench/report.py RESULTS.jsonl DOCS_DIR

For every part of the suite the newest run that has it is shown, so a partial
rerun (make bench BENCH_PARTS=...) updates only its own tables. The plots
are drawn by gnuplot (gnuplot-nox) when it is installed.
"""
import json
import os
import shutil
import subprocess
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def newest(rows, part):
    """The rows of `part` from the newest full run that has it."""
    mine = [r for r in rows if r.get("part") == part and r.get("suite") == "full"]
    if not mine:
        return []
    run = max(r.get("run", "") for r in mine)
    return [r for r in mine if r.get("run", "") == run]


def fmt(v, digits=1):
    if v is None or v == "":
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if isinstance(v, int):
            return str(v)
        return f"{v:.{digits}f}"
    return str(v)


def table(headers, rows):
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |")
    return "\n".join(out)


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def commands(rows):
    seen = []
    for r in rows:
        c = (r.get("command") or "").replace(ROOT + "/", "")
        if c and c not in seen:
            seen.append(c)
    if not seen:
        return ""
    return "\n```sh\n" + "\n".join(seen) + "\n```\n"


def meta(rows):
    if not rows:
        return ""
    r = rows[0]
    return (f"Run `{r.get('run')}`, server at commit `{r.get('commit')}`, "
            f"server flags `{r.get('server_args', '').strip()}`, "
            f"load average at start {fmt(r.get('loadavg_1m_at_start'), 2)}.\n")


def gnuplot(script):
    if not shutil.which("gnuplot"):
        return False
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


SYSCALLS = ("sendmsg", "recvmsg", "futex", "epoll_wait", "write", "read")


def cost_line(stat_path, dso_path, window_s, loadgen_json):
    """The cost part's result: perf stat's counts (CSV) and perf report's
    samples by library, per delivery at the loadgen's delivery rate."""
    lg = json.loads(loadgen_json)
    counts = {}
    with open(stat_path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) < 3 or line.startswith("#"):
                continue
            try:
                counts[fields[2]] = float(fields[0])
            except ValueError:
                pass  # "<not counted>"
    delivered = (lg.get("deliveries_per_s") or 0) * float(window_s)
    out = {"scenario": "cost", "part": "cost",
           "offered_msgs_per_s": lg.get("offered_msgs_per_s"),
           "deliveries_per_s": lg.get("deliveries_per_s"),
           "server_cpu_us_per_delivery": lg.get("server_cpu_us_per_delivery"),
           "window_s": float(window_s),
           "command": (lg.get("command", "") + "  # with, inside its measured window: perf stat -p <server> "
                       "-e task-clock,context-switches,syscalls:sys_enter_{" + ",".join(SYSCALLS) +
                       "} -- sleep " + str(window_s) + "; perf record -p <server> -- sleep " + str(window_s) +
                       "; perf report --sort dso")}
    if delivered > 0:
        per = lambda name: counts[name] / delivered if name in counts else None
        out["perf_cpu_us_per_delivery"] = (counts["task-clock"] * 1000 / delivered
                                           if "task-clock" in counts else None)
        out["context_switches_per_delivery"] = per("context-switches")
        for name in SYSCALLS:
            out[name + "_per_delivery"] = per("syscalls:sys_enter_" + name)
    shares = {"kernel": 0.0, "libgrpc": 0.0, "libc": 0.0, "parley_server": 0.0, "other": 0.0}
    with open(dso_path) as f:
        for line in f:
            fields = line.split()
            if len(fields) < 2 or not fields[0].endswith("%") or line.startswith("#"):
                continue
            pct, dso = float(fields[0][:-1]), " ".join(fields[1:])
            if "kernel" in dso:
                shares["kernel"] += pct
            elif dso.startswith("libgrpc") or dso.startswith("libgpr"):
                shares["libgrpc"] += pct
            elif dso.startswith("libc.so"):
                shares["libc"] += pct
            elif dso == "parley_server":
                shares["parley_server"] += pct
            else:
                shares["other"] += pct
    for k, v in shares.items():
        out["cpu_pct_" + k] = round(v, 1)
    return json.dumps(out)


def added_p99(slower, faster):
    """What `slower` adds to `faster`'s p99 in ms, when both have one."""
    a, b = slower.get("latency_p99_ms"), faster.get("latency_p99_ms")
    return a - b if a is not None and b is not None else None


def wait_bound(v):
    """A histogram bound in ms as the report shows it ("> 10000" past the last)."""
    if v is None:
        return None
    return "> 10000" if v < 0 else v


def cluster_section(rows):
    """## 8: the cluster part (scripts/bench/cluster.sh, make bench-cluster)."""
    fan = newest(rows, "cluster-fanout")
    pairs = newest(rows, "cluster-pairs")
    bus = newest(rows, "cluster-bus")
    dur = newest(rows, "cluster-durable")
    res = newest(rows, "cluster-resume")
    if not (fan or bus or dur or res):
        return []
    first = (fan or bus or dur or res)[0]
    md = ["## 8. Cluster: one server against three (PostgreSQL, Redis)", "",
          "`make bench-cluster` (scripts/bench/cluster.sh): a PostgreSQL and a Redis of its"
          " own and three servers on them (`--store=postgres --bus=redis`, one token key),"
          " all on loopback. **The three servers, PostgreSQL, Redis and the load generator"
          " share this machine's 2 cores**, so three servers cannot deliver more than one"
          " here: the runs measure what spreading readers over servers costs (the Redis hop,"
          " a commit's second and third readers' servers), and each component's CPU per"
          " message, from which docs/cluster.md (\"How it scales\") models more machines."
          " \"Redis\" and \"PostgreSQL\" CPU are the processes' (postmaster and backends)"
          " over the measured window (`parley_loadgen --watch`), per message sent; at a"
          " few hundred messages a second that is mostly their fixed work (Redis: each"
          " server's presence list of each room, every second; PostgreSQL: its background"
          " processes), so the durable sends give the per-message costs.", "",
          meta([first])]
    # Issue 18's targets, from the pairs and the resume below.
    targets = []
    if pairs:
        added = sorted(a for a in (added_p99(m, o) for o, m in zip(
            [r for r in pairs if r.get("servers", 1) == 1],
            [r for r in pairs if r.get("servers", 1) != 1])) if a is not None)
        if added:
            med = added[len(added) // 2]
            targets.append(["added publish-to-receive p99 ≤ 10 ms at half of saturation",
                            f"median {fmt(med)} ms over {len(added)} pairs"
                            f" ({', '.join(fmt(a) for a in added)})",
                            "yes" if med <= 10 else "no"])
    for r in res:
        if r.get("streams"):
            targets.append(["every stream resumed ≤ 3 s after a server's kill -9 (10,000 streams)",
                            f"{fmt(r.get('resume_all_s'), 2)} s for the {fmt(r.get('streams_on_killed'))}"
                            f" of {fmt(r.get('streams'))} on the killed server; {r.get('duplicates')}"
                            f" duplicates, {r.get('missed')} missed",
                            "yes" if r.get("all_resumed") and (r.get("resume_all_s") or 99) <= 3
                            and r.get("streams", 0) >= 10000 and not r.get("duplicates")
                            and not r.get("missed") else "no"])
    if targets:
        md += [table(["target (issue 18)", "this run", "met?"], targets), ""]
    if fan:
        by = {}
        for r in fan:
            by.setdefault(r.get("offered_msgs_per_s"), {})[
                "one" if r.get("servers", 1) == 1 else "many"] = r
        n = max(r.get("servers", 1) for r in fan)
        lines = []
        for rate in sorted(k for k in by if k is not None):
            o, m = by[rate].get("one", {}), by[rate].get("many", {})
            lines.append([rate, (o or m).get("offered_deliveries_per_s"),
                          o.get("deliveries_per_s"), o.get("latency_p50_ms"), o.get("latency_p99_ms"),
                          m.get("deliveries_per_s"), m.get("latency_p50_ms"), m.get("latency_p99_ms"),
                          added_p99(m, o) if o and m else None,
                          o.get("server_cpu_us_per_delivery"), m.get("server_cpu_us_per_delivery"),
                          o.get("redis_cpu_us_per_msg"), m.get("redis_cpu_us_per_msg"),
                          wait_bound(o.get("store_write_wait_p99_le_ms")),
                          wait_bound(m.get("store_write_wait_p99_le_ms")),
                          (o.get("errors") or 0) + (m.get("errors") or 0)])
        md += ["### Fan-out: readers on one server, then spread over three", "",
               f"Rooms of 100, {fmt(fan[0].get('subscribers'))} readers, open loop. At each rate,"
               " first every reader and publisher on server 1 (the other two idle), then readers"
               f" and publishers round robin over all {n} (`--target` a list): 2/3 of the"
               " deliveries reach their server through Redis. Added p99 is the spread run's"
               " publish-to-receive p99 minus the one-server run's at the same rate. Commit"
               " wait: the servers' measure of a send's wait for its group commit, part of"
               " every delivery's latency.", "",
               table(["msgs/s offered", "deliveries/s offered",
                      "1 server: deliveries/s", "p50 ms", "p99 ms",
                      f"{n} servers: deliveries/s", "p50 ms", "p99 ms", "added p99 ms",
                      "servers µs CPU/delivery (1)", f"({n})",
                      "Redis µs CPU/msg (1)", f"({n})",
                      "commit wait p99 ≤ ms (1)", f"({n})", "errors"], lines),
               commands(fan)]
    if pairs:
        lines, added = [], []
        ones = [r for r in pairs if r.get("servers", 1) == 1]
        manys = [r for r in pairs if r.get("servers", 1) != 1]
        for i, (o, m) in enumerate(zip(ones, manys), 1):
            a = added_p99(m, o)
            if a is not None:
                added.append(a)
            lines.append([i, o.get("latency_p50_ms"), o.get("latency_p99_ms"),
                          wait_bound(o.get("store_write_wait_p99_le_ms")),
                          m.get("latency_p50_ms"), m.get("latency_p99_ms"),
                          wait_bound(m.get("store_write_wait_p99_le_ms")), a,
                          (o.get("errors") or 0) + (m.get("errors") or 0)])
        added.sort()
        median = added[len(added) // 2] if added else None
        rate = pairs[0].get("offered_msgs_per_s")
        md += ["### Added p99 at half of saturation, in alternating pairs", "",
               f"The fan-out above at {fmt(rate)} msgs/s ({fmt((rate or 0) * 100)} deliveries/s: half of the"
               " most the spread runs delivered), one server and then all of them, in turn:"
               " a single pair is one moment of a shared machine, so the pairs' median is"
               f" the figure. Median added p99: **{fmt(median)} ms** over {len(added)} pairs."
               " \"Commit wait\" is the servers' own: a send's wait for its group commit"
               " (PostgreSQL's WAL flush on a disk other work shares), inside every"
               " delivery's latency.", "",
               table(["pair", "1 server: p50 ms", "p99 ms", "commit wait p99 ≤ ms",
                      f"{manys[0].get('servers') if manys else ''} servers: p50 ms", "p99 ms",
                      "commit wait p99 ≤ ms", "added p99 ms", "errors"], lines),
               commands(pairs)]
    if bus:
        lines = []
        for n in sorted({r.get("servers", 1) for r in bus}):
            mine = sorted((r for r in bus if r.get("servers", 1) == n),
                          key=lambda r: r.get("offered_msgs_per_s") or 0)
            lo, hi = mine[0], mine[-1]
            slope = fixed = None
            if len(mine) > 1 and hi.get("redis_cpu_cores") is not None and lo.get("redis_cpu_cores") is not None:
                d = hi["offered_msgs_per_s"] - lo["offered_msgs_per_s"]
                slope = (hi["redis_cpu_cores"] - lo["redis_cpu_cores"]) / d * 1e6
                fixed = lo["redis_cpu_cores"] - slope * lo["offered_msgs_per_s"] / 1e6
            for r in mine:
                lines.append([n, r.get("rooms"), r.get("offered_msgs_per_s"), r.get("deliveries_per_s"),
                              r.get("latency_p50_ms"), r.get("latency_p99_ms"),
                              fmt(r.get("redis_cpu_cores"), 3), r.get("server_cpu_us_per_delivery"),
                              fmt(slope, 2) if r is hi else "",
                              fmt(fixed, 3) if r is hi else "",
                              fmt(fixed / (r.get("rooms") * n) * 1e6, 2) if r is hi and fixed is not None
                              and r.get("rooms") else "",
                              r.get("errors")])
        md += ["### The bus: what Redis costs", "",
               "Rooms of one reader per server (reader j on server j mod N), at two rates, against"
               " server 1 alone and then round robin over all: each message is one publish and"
               " one delivery per server with readers of the room. From the two rates, Redis's"
               " CPU per message (the slope) and its fixed CPU (the intercept at 0 messages/s):"
               " mostly each server's presence list of each room with readers, written every"
               " second (docs/cluster.md), so also per room and server.", "",
               table(["servers", "rooms", "msgs/s", "deliveries/s", "p50 ms", "p99 ms", "Redis cores",
                      "servers µs CPU/delivery", "Redis µs CPU/msg (slope)", "Redis fixed cores",
                      "Redis µs per room and server, each second", "errors"], lines),
               commands(bus)]
    if dur:
        md += ["### Durable sends: what PostgreSQL commits", "",
               "PostMessage closed loop, acknowledged after its commit, against server 1 and"
               " then round robin over all the servers; each server group-commits its own"
               " sends, and a batch holds its rooms' counter rows (the sequence numbers) from"
               " its first statement to its COMMIT. Send k goes through server k mod N into"
               " room k mod rooms: with rooms a multiple of N each room is written through one"
               " server, otherwise through all N, whose batches then queue on the room's row.", "",
               table(["servers", "rooms", "servers writing each room", "in flight", "sends/s",
                      "p50 ms", "p99 ms", "servers' cores",
                      "servers µs CPU/send", "PostgreSQL cores", "PostgreSQL µs CPU/send",
                      "Redis cores", "Redis µs CPU/send", "commit wait p99 ≤ ms", "errors"],
                     [[r.get("servers", 1), r.get("rooms"),
                       1 if (r.get("rooms") or 0) % r.get("servers", 1) == 0 else r.get("servers"),
                       r.get("inflight"), r.get("calls_per_s"),
                       r.get("latency_p50_ms"), r.get("latency_p99_ms"),
                       fmt(r.get("server_cpu_cores"), 2),
                       r.get("server_cpu_us_per_call"), fmt(r.get("postgres_cpu_cores"), 2),
                       r.get("postgres_cpu_us_per_call"), fmt(r.get("redis_cpu_cores"), 2),
                       r.get("redis_cpu_us_per_call"),
                       wait_bound(r.get("store_write_wait_p99_le_ms")), r.get("errors")]
                      for r in dur]),
               commands(dur)]
    if res:
        md += ["### A server killed under its streams: time to resume", "",
               "Streams round robin over the servers, one room of 100 each, messages at a fixed"
               " rate to the servers that stay; then server 1 killed with SIGKILL and, at once, a"
               " message posted in every room. Each stream that ends is opened again on another"
               " server after the last sequence number it received (`after_sequence`), as the"
               " gateway does. \"Resumed\": reopened and received an event posted after the"
               " kill, timed from the kill. Every stream checks every sequence number:"
               " duplicates, missed (a jump or a gap event), and behind (its last number"
               " below its room's last, after the posts stop). \"Others\": the streams of the"
               " servers that stayed, until each received an event posted after the kill.", "",
               table(["servers", "streams", "on the killed server", "all reopened s",
                      "all resumed s", "resume p50 ms", "resume p99 ms", "duplicates", "missed",
                      "behind", "failed reopens", "others: all received s", "others' streams ended",
                      "errors"],
                     [[r.get("servers"), r.get("streams"), r.get("streams_on_killed"),
                       fmt(r.get("reopen_all_s"), 2), fmt(r.get("resume_all_s"), 2),
                       r.get("resume_p50_ms"),
                       r.get("resume_p99_ms"), r.get("duplicates"), r.get("missed"),
                       r.get("streams_behind"), r.get("failed_reopens"),
                       fmt(r.get("others_post_kill_max_s"), 2), r.get("unexpected_ends"),
                       r.get("errors")] for r in res]),
               commands(res)]
    return md


# The peers part (scripts/bench/peers.sh, make bench-peers): each pair is
# (key, Parley's mode, the peer's mode, Parley's name, the peer's name).
PEER_PAIRS = (
    ("ws", "parley-ws", "centrifugo-ws", "Parley, WebSocket", "Centrifugo v6, WebSocket"),
    ("sse", "parley-sse", "centrifugo-ws", "Parley, SSE", "Centrifugo v6, WebSocket"),
    ("grpc", "grpc", "naive", "Parley, gRPC", "naive gRPC server"),
)
# The targets (reported, not asserted): measure -> (text, test of
# the ratio Parley / peer).
PEER_TARGETS = {
    "ws": {"cpu": ("≤ 0.5×", lambda x: x <= 0.5), "rate": ("≥ 2×", lambda x: x >= 2),
           "mem": ("≤ 0.5×", lambda x: x <= 0.5)},
    "sse": {"cpu": ("≤ 0.5×", lambda x: x <= 0.5), "rate": ("≥ 2×", lambda x: x >= 2),
            "mem": ("≤ 0.5×", lambda x: x <= 0.5)},
    "grpc": {"cpu": ("≤ 1.3×", lambda x: x <= 1.3)},
}
PEER_P99_MS = 50
# What else each pair's CPU is read against (run at the equal-load rate):
# pair -> (mode, name). naive-ws is the floor: one write per delivery and
# nothing else; naive-thread the naive gRPC server with its writes started
# off gRPC's thread, as after a commit.
PEER_FLOORS = {"ws": ("naive-ws", "naive WebSocket server (the floor)"),
               "sse": ("naive-ws", "naive WebSocket server (the floor)"),
               "grpc": ("naive-thread", "naive gRPC server, writes on its own thread")}


def mean(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return sum(xs) / len(xs) if xs else None


def peer_passes(r):
    return (bool(r.get("ok")) and (r.get("latency_p99_ms") or 1e9) <= PEER_P99_MS
            and (r.get("delivered_fraction") or 0) >= 0.95)


def peer_figures(rows, mode):
    """One system's figures in one shape and pair: the highest rate whose
    every round passed and its delivered rate, CPU per delivery and p99 at
    the equal-load rate, memory per idle subscriber over every run."""
    mine = [r for r in rows if r.get("mode") == mode]
    by_rate = {}
    for r in mine:
        if r.get("sweep") == "rate":
            by_rate.setdefault(r.get("offered_msgs_per_s"), []).append(r)
    passing = [rate for rate, rs in by_rate.items() if all(peer_passes(r) for r in rs)]
    best = max(passing) if passing else None
    half = [r for r in mine if r.get("sweep") == "half"]
    return {
        "best_rate": best,
        "delivered": mean([r.get("deliveries_per_s") for r in by_rate.get(best, [])]),
        "half_rate": half[0].get("offered_msgs_per_s") if half else None,
        "cpu": mean([r.get("server_cpu_us_per_delivery") for r in half]),
        "p99": mean([r.get("latency_p99_ms") for r in half]),
        "mem": mean([r.get("idle_bytes_per_subscriber") for r in mine]),
        "rows": mine,
    }


def peers_section(rows):
    """## 9: Parley against its peers (issue 21)."""
    # Each pair of each shape from the newest full run that has it; the
    # floor's sweeps from each of those runs (read with its pairs).
    every = [r for r in rows if r.get("part") == "peers" and r.get("suite") == "full"]
    pr = []
    for shape, pair in sorted({(r.get("subscribers"), r.get("pair")) for r in every
                               if r.get("pair") != "floor"}):
        pr += newest([r for r in every
                      if r.get("subscribers") == shape and r.get("pair") == pair], "peers")
    runs = {(r.get("subscribers"), r.get("run")) for r in pr}
    pr += [r for r in every
           if r.get("pair") == "floor" and (r.get("subscribers"), r.get("run")) in runs]
    if not pr:
        return []
    md = ["## 9. Peers: Centrifugo v6 and a naive gRPC server", "",
          "`make bench-peers` (scripts/bench/peers.sh). One load generator of the repository's,"
          " `scripts/bench/peerload` (Go), drives every system with the same shape: rooms of"
          " 100 subscribers, 100-byte messages published open loop at a fixed total rate,"
          " round robin over the rooms, each carrying its scheduled send time, so latency is"
          " publish→receive including any queueing. Parley runs as its server plus the"
          " gateway with every per-client limit lifted (`$unlimited`, scripts/bench/lib.sh);"
          " its WebSocket and SSE subscribers are signed-in users reading"
          " `/v1/rooms/{room}:ws` and `:subscribe` through the gateway, which fans out"
          " (`--edge_secret`, docs/fanout.md: one stream per room from the server, each"
          " event encoded once; `fanout=off` rows, `PEERS_FANOUT=0`, give every"
          " subscriber its own stream), and publish with"
          " `POST /v1/rooms/{room}/messages`; its gRPC subscribers call `ChatService.Subscribe`"
          " and publish with `MessageService.PostMessage`. Centrifugo v6.9.1 (built with"
          " `go install`, a benchmark dependency only) gets its JSON protocol over WebSocket"
          " (HS256 JWT connect, one channel per room, history off: its defaults) and"
          " publishes through its HTTP API `/api/publish`. The naive server"
          " (scripts/bench/naive) is the least a gRPC fan-out can do: rooms in memory, one"
          " write per delivery, no history, no auth; as `naive-thread` (`--write_thread`) it"
          " starts the writes on a thread of its own, as a server that commits a message"
          " before its fan-out must, and runs at the gRPC pair's equal-load rate."
          " The naive WebSocket server"
          " (scripts/bench/peerload/naivews, Go, gobwas/ws) is the same for WebSocket, the"
          " floor: each publication's frame built once and written to each subscriber's"
          " socket with one write, from the publishing request; it runs at each WebSocket"
          " and SSE pair's equal-load rate, and the pair's CPU figures are also given"
          " against it; the pseudo-pair `floor` sweeps it alone up the same rates, the"
          " highest rate any server reaches here with this load generator on the same"
          " cores.", "",
          "Method. Every run starts the system afresh. **CPU** is the sum of utime+stime of"
          " every server process (Parley: server and gateway) over the measured window, per"
          " delivery received in it. **Rate**: a sweep over fixed rates, the two systems of a"
          " pair alternating A B A B at each rate; a system's figure is the highest rate at"
          f" which every round had p99 ≤ {PEER_P99_MS} ms, ≥ 95% delivered and no error, and"
          " the deliveries per second it reached there. **CPU per delivery and p99** are"
          " compared at equal load: both systems at half of the lower of their two highest"
          " passing rates (A B A B again), since CPU per delivery falls as batching grows"
          " with the rate. **Memory per idle subscriber**: the RSS of all server processes"
          " after connecting N subscribers and a few idle seconds, less the RSS before,"
          " over N; the mean over all of a system's runs in the shape. SSE has no"
          " counterpart in Centrifugo's bidirectional protocol, so Parley's SSE is compared"
          " with the same Centrifugo WebSocket runs. The load generator shares the 2 cores,"
          " which caps every system's rate here; CPU per delivery is the servers' own.", "",
          "Runs " + ", ".join(sorted({f"`{r.get('run')}` at commit `{r.get('commit')}`" for r in pr}))
          + "; Parley's server flags"
          f" `{next((r.get('server_args') for r in pr if r.get('server_args')), '').strip()}`.", ""]
    for shape in sorted({r.get("subscribers") for r in pr}):
        srows = [r for r in pr if r.get("subscribers") == shape]
        ratio_rows = []
        for key, a_mode, b_mode, a_name, b_name in PEER_PAIRS:
            prow = [r for r in srows if r.get("pair") == key]
            if not prow:
                continue
            a, b = peer_figures(prow, a_mode), peer_figures(prow, b_mode)
            targets = PEER_TARGETS.get(key, {})
            for measure, label, av, bv in (
                    ("cpu", "server CPU µs per delivery (equal load)", a["cpu"], b["cpu"]),
                    ("rate", f"deliveries/s at p99 ≤ {PEER_P99_MS} ms", a["delivered"], b["delivered"]),
                    ("p99", "p99 ms at equal load", a["p99"], b["p99"]),
                    ("mem", "bytes per idle subscriber", a["mem"], b["mem"])):
                ratio = av / bv if isinstance(av, (int, float)) and bv else None
                text, test = targets.get(measure, ("–", None))
                met = "–" if test is None or ratio is None else ("yes" if test(ratio) else "no")
                ratio_rows.append([f"{a_name} / {b_name}", label, fmt(av, 2), fmt(bv, 2),
                                   fmt(ratio, 2) + ("×" if ratio is not None else ""), text, met])
            floor_mode, floor_name = PEER_FLOORS.get(key, (None, None))
            floor = peer_figures(prow, floor_mode)["cpu"] if floor_mode else None
            if floor:
                for name, v in ((a_name, a["cpu"]), (b_name, b["cpu"])):
                    ratio = v / floor if isinstance(v, (int, float)) else None
                    ratio_rows.append([f"{name} / {floor_name}",
                                       "server CPU µs per delivery (equal load)", fmt(v, 2),
                                       fmt(floor, 2), fmt(ratio, 2) + ("×" if ratio else ""),
                                       "–", "–"])
            # The floor's own sweep, when it ran with the pair (one run).
            floor_rows = [r for r in srows if r.get("pair") == "floor"
                          and r.get("run") == prow[0].get("run")]
            if floor_mode and floor_rows:
                f = peer_figures(floor_rows, floor_mode)
                ratio = (f["delivered"] / b["delivered"]
                         if isinstance(f["delivered"], (int, float)) and b["delivered"] else None)
                ratio_rows.append([f"{floor_name} / {b_name}",
                                   f"deliveries/s at p99 ≤ {PEER_P99_MS} ms (highest passing"
                                   f" msgs/s: {fmt(f['best_rate'])})", fmt(f["delivered"], 2),
                                   fmt(b["delivered"], 2),
                                   fmt(ratio, 2) + ("×" if ratio is not None else ""), "–", "–"])
            ratio_rows.append([f"{a_name} / {b_name}", "highest passing msgs/s; equal-load msgs/s",
                               f"{fmt(a['best_rate'])}; {fmt(a['half_rate'])}",
                               f"{fmt(b['best_rate'])}; {fmt(b['half_rate'])}", "", "", ""])
        md += [f"### {fmt(shape)} subscribers in rooms of 100", "",
               "Runs: " + ", ".join(f"{p} `{run}`" for p, run in sorted(
                   {(r.get("pair"), r.get("run")) for r in srows})) + ".", "",
               table(["pair", "measure", "Parley", "peer", "ratio", "target", "met"], ratio_rows), ""]
        md += ["<details><summary>Every run</summary>", "",
               table(["pair", "system", "sweep", "round", "msgs/s", "deliveries/s", "delivered",
                      "p50 ms", "p99 ms", "max ms", "server CPU µs/delivery", "server cores",
                      "idle B/subscriber", "ok"],
                     [[r.get("pair"), r.get("mode"), r.get("sweep"), r.get("round"),
                       r.get("offered_msgs_per_s"), r.get("deliveries_per_s"),
                       fmt(r.get("delivered_fraction"), 3), r.get("latency_p50_ms"),
                       r.get("latency_p99_ms"), r.get("latency_max_ms"),
                       r.get("server_cpu_us_per_delivery"), r.get("server_cpu_cores"),
                       r.get("idle_bytes_per_subscriber"), r.get("ok")]
                      for r in sorted(srows, key=lambda r: (r.get("pair", ""), r.get("sweep", ""),
                                                            r.get("offered_msgs_per_s", 0),
                                                            r.get("round", ""), r.get("mode", "")))]),
               "", "</details>", ""]
    # One command per system, as the harness ran it (pids and names vary).
    examples = {}
    for r in pr:
        examples.setdefault(r.get("mode"), r)
    md += [commands(list(examples.values()))]
    return md


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--cost":
        print(cost_line(*sys.argv[2:]))
        return
    results, docs = sys.argv[1], sys.argv[2]
    rows = load(results)
    bench_dir = os.path.join(docs, "bench")
    os.makedirs(bench_dir, exist_ok=True)
    data_dir = os.path.join(os.path.dirname(os.path.abspath(results)), "plot")
    os.makedirs(data_dir, exist_ok=True)
    md = ["# Benchmarks",
          "",
          "Generated by `make bench` (scripts/bench/run.sh, scripts/bench/report.py)",
          "from `build/bench/results.jsonl`; do not edit by hand. The load generator is",
          "`clients/loadgen` (`parley_loadgen`, gRPC callback API); REST goes through",
          "`wrk`, `scripts/bench/rest-rate` (vegeta's library, open loop) and",
          "`scripts/bench/ndjson-streams`. Each scenario below gives the exact",
          "commands. Latencies are from histograms (log-linear buckets, ≤3% error);",
          "open-loop senders stamp each message with its *scheduled* send time, so a",
          "sender that falls behind counts as latency.",
          "",
          "**Everything runs on the same 2-core machine**: the server, the gateway and",
          "the load generator share the two cores, so client CPU competes with the",
          "server's; server CPU per delivery comes from `/proc/<pid>/stat` and is not",
          "affected by that, but latency and saturation points are. A part not run",
          "since keeps the section its last run generated.",
          ""]

    machines = [r for r in rows if r.get("scenario") == "machine"]
    if machines:
        m = machines[-1]
        md += ["## Machine", "",
               table(["what", "value"], [
                   ["CPU", m.get("cpu", "")],
                   ["cores (nproc)", m.get("nproc")],
                   ["RAM (GiB)", m.get("mem_gib")],
                   ["kernel", m.get("kernel", "")],
                   ["OS", m.get("os", "")],
                   ["open files (hard limit)", m.get("nofile_hard")],
               ]), ""]

    # Each part once per gRPC build measured: Debian's libgrpc (what ships;
    # rows without a grpc tag predate the tag and used it) and the same
    # release rebuilt with -DNDEBUG (scripts/bench/grpc-ndebug.sh).
    for variant, suffix, prefix in (("debian", "", ""),
                                    ("ndebug", " — gRPC built with -DNDEBUG", "ndebug-")):
        vrows = [r for r in rows if r.get("grpc", "debian") == variant]
        if not vrows:
            continue
        first_line = len(md)
        if variant == "ndebug":
            md += ["## The same parts with gRPC built with -DNDEBUG", "",
                   "Debian's libgrpc29 is built without `-DNDEBUG`, which keeps gRPC's debug-only",
                   "checks, among them a linear scan over every outstanding completion-queue tag",
                   "at each completion (see the notes at the end). These runs load the same gRPC",
                   "release (Debian's source package 1.51.1-3, its patches) built with `-DNDEBUG`",
                   "by `scripts/bench/grpc-ndebug.sh`, through `GRPC_LIB_DIR` (`make bench-ndebug`);",
                   "Parley's binaries are the same.", ""]
        # ---- 1. fan-out ----
        plots = []
        for part, title in (("fanout", "rooms of 100"), ("fanout1", "one room")):
            fr = newest(vrows, part)
            if not fr:
                continue
            fr.sort(key=lambda r: r.get("offered_msgs_per_s", 0))
            first = fr[0]
            md += [f"## 1. Fan-out: {fmt(first.get('subscribers'))} subscribers, {title} "
                   f"({fmt(first.get('rooms'))} room(s) of {fmt(first.get('expected_fanout'))})", "",
                   "Latency is publish-to-receive, from the timestamp each message carries; \"send"
                   " p99\" is the publishers' acknowledgement. Measured by the server, read at the"
                   " window's edges (p99 as the histogram bucket bound it does not pass): \"commit"
                   " wait\", the sends' wait for their group commit, and \"server's part\", each"
                   " delivery's time from its event being queued for the commit to its stream"
                   " taking it for a write (the delivery lag in `GetStats`; blank in runs before"
                   " it existed).", "",
                   meta(fr),
                   table(["msgs/s offered", "deliveries/s offered", "deliveries/s", "p50 ms", "p99 ms",
                          "p99.9 ms", "max ms", "send p99 ms", "commit wait p99 ≤ ms",
                          "server's part p99 ≤ ms", "server cores",
                          "server µs CPU/delivery", "deliveries per core-second", "server RSS MB", "errors"],
                         [[r.get("offered_msgs_per_s"), r.get("offered_deliveries_per_s"),
                           r.get("deliveries_per_s"), r.get("latency_p50_ms"), r.get("latency_p99_ms"),
                           r.get("latency_p999_ms"), r.get("latency_max_ms"), r.get("send_p99_ms"),
                           wait_bound(r.get("store_write_wait_p99_le_ms")),
                           wait_bound(r.get("server_delivery_lag_p99_le_ms")),
                           r.get("server_cpu_cores"), r.get("server_cpu_us_per_delivery"),
                           r.get("deliveries_per_server_core_s"),
                           (r.get("server_rss_kb") or 0) / 1024, r.get("errors")] for r in fr]),
                   commands(fr)]
            dat = os.path.join(data_dir, f"{prefix}{part}.dat")
            with open(dat, "w") as f:
                for r in fr:
                    f.write(f"{r.get('deliveries_per_s', 0)} {r.get('latency_p50_ms', 0)} "
                            f"{r.get('latency_p99_ms', 0)} {r.get('latency_p999_ms', 0)}\n")
            plots.append((part, title, dat))
        if plots:
            png = os.path.join(bench_dir, f"{prefix}fanout-latency.png")
            series = []
            for part, title, dat in plots:
                for col, name in ((2, "p50"), (3, "p99"), (4, "p99.9")):
                    series.append(f"'{dat}' using 1:{col} with linespoints title '{title} {name}'")
            if gnuplot(f"""set terminal pngcairo size 900,560
    set output '{png}'
    set title 'Fan-out: publish-to-receive latency against load'
    set xlabel 'deliveries per second'
    set ylabel 'latency (ms)'
    set logscale y
    set grid
    set key top left
    plot {', '.join(series)}
    """):
                md += [f"![fan-out latency against load](bench/{prefix}fanout-latency.png)", ""]

        # ---- 2. streams ----
        sr = newest(vrows, "streams")
        if sr:
            sr.sort(key=lambda r: r.get("streams", 0))
            md += ["## 2. Concurrent Subscribe streams and memory", "", meta(sr),
                   table(["streams", "connections", "all got first write", "open s", "opens/s",
                          "server µs CPU/open", "RSS before MB", "RSS open MB", "server bytes/stream",
                          "churn s", "reopened", "RSS after churn vs before %",
                          "RSS all closed vs base %", "errors"],
                         [[r.get("streams"), r.get("connections"), r.get("all_first_writes"),
                           r.get("open_s"), r.get("opens_per_s"), r.get("server_cpu_us_per_open"),
                           (r.get("server_rss_base_kb") or 0) / 1024,
                           (r.get("server_rss_open_kb") or 0) / 1024,
                           r.get("server_bytes_per_stream"), r.get("churn_s"),
                           r.get("churn_reopened"), r.get("rss_after_churn_vs_before_pct"),
                           r.get("rss_closed_vs_base_pct"), r.get("errors")] for r in sr]),
                   commands(sr)]
            dat = os.path.join(data_dir, f"{prefix}streams.dat")
            with open(dat, "w") as f:
                for r in sr:
                    f.write(f"{r.get('streams', 0)} {(r.get('server_rss_open_kb') or 0) / 1024} "
                            f"{(r.get('server_bytes_per_stream') or 0) / 1024}\n")
            png = os.path.join(bench_dir, f"{prefix}streams-memory.png")
            if gnuplot(f"""set terminal pngcairo size 900,560
    set output '{png}'
    set title 'Server memory against concurrent Subscribe streams'
    set xlabel 'concurrent streams'
    set ylabel 'server RSS (MB)'
    set y2label 'KB per stream'
    set ytics nomirror
    set y2tics
    set grid
    set key top left
    plot '{dat}' using 1:2 with linespoints axes x1y1 title 'RSS (MB)', \\
         '{dat}' using 1:3 with linespoints axes x1y2 title 'KB per stream'
    """):
                md += [f"![memory against streams](bench/{prefix}streams-memory.png)", ""]

        # ---- 3. durable ----
        dr_all = newest(vrows, "durable")
        dr = [r for r in dr_all if r.get("mode") != "rate"]
        dr_rate = [r for r in dr_all if r.get("mode") == "rate"]
        if dr:
            md += ["## 3. Durable sends (closed loop, PostMessage acknowledged after commit)", "",
                   meta(dr),
                   table(["synchronous", "in flight", "messages/s", "p50 ms", "p99 ms", "p99.9 ms",
                          "max ms", "server cores", "server µs CPU/message",
                          "commit wait mean ms", "commit wait p99 ≤ ms", "errors"],
                         [[r.get("sync", ""), r.get("inflight"), r.get("calls_per_s"),
                           r.get("latency_p50_ms"), r.get("latency_p99_ms"), r.get("latency_p999_ms"),
                           r.get("latency_max_ms"), r.get("server_cpu_cores"),
                           r.get("server_cpu_us_per_call"), r.get("store_write_wait_mean_ms"),
                           wait_bound(r.get("store_write_wait_p99_le_ms")), r.get("errors")]
                          for r in dr]),
                   commands(dr)]
        if dr_rate:
            floor = {r.get("offered_rate"): r for r in dr_rate if r.get("sync") == "none"}
            rows_ = []
            for r in sorted((r for r in dr_rate if r.get("sync") != "none"),
                            key=lambda r: (r.get("sync", ""), r.get("offered_rate") or 0)):
                f = floor.get(r.get("offered_rate"), {})
                added = added_p99(r, f)
                rows_.append([r.get("sync", ""), r.get("offered_rate"), r.get("calls_per_s"),
                              r.get("latency_p50_ms"), r.get("latency_p99_ms"), r.get("latency_p999_ms"),
                              f.get("latency_p99_ms"), added, r.get("store_write_wait_mean_ms"),
                              wait_bound(r.get("store_write_wait_p99_le_ms")),
                              r.get("skipped_sends"), r.get("errors")])
            md += ["### Durable sends at a fixed rate: what the send path adds to p99", "",
                   "Open loop (latency from each call's scheduled time), PostMessage acknowledged"
                   " after commit, and `grpc.health.v1.Health/Check` (no token, no store) at the"
                   " same rates on the same connections; the difference of the two p99s is what"
                   " Parley's send path — token check, group commit, fan-out — adds, an upper"
                   " bound on what group commit adds. \"Commit wait\" is what group commit"
                   " itself adds, measured by the server: each write's time from its arrival at"
                   " the store's writer queue to the end of the COMMIT it ran in (the store's"
                   " write-wait histogram in `GetStats`, read at the measured window's edges;"
                   " p99 as the histogram bucket bound it does not pass).", "",
                   meta(dr_rate),
                   table(["synchronous", "offered/s", "sends/s", "p50 ms", "p99 ms", "p99.9 ms",
                          "Health/Check p99 ms", "added p99 ms", "commit wait mean ms",
                          "commit wait p99 ≤ ms", "skipped", "errors"], rows_),
                   commands(dr_rate)]

        fl = newest(vrows, "floor")
        if fl:
            md += ["### The floor: a gRPC unary call that does nothing", "",
                   "`grpc.health.v1.Health/Check` with the same calls in flight and connections as"
                   " the durable sends: no token, no store, no Parley code — what one unary call"
                   " costs the server and the load generator on this machine.", "",
                   meta(fl),
                   table(["call", "in flight", "calls/s", "p50 ms", "p99 ms", "server cores",
                          "server µs CPU/call", "load generator cores", "errors"],
                         [[r.get("call", ""), r.get("inflight"), r.get("calls_per_s"),
                           r.get("latency_p50_ms"), r.get("latency_p99_ms"),
                           r.get("server_cpu_cores"), r.get("server_cpu_us_per_call"),
                           r.get("loadgen_cpu_cores"), r.get("errors")] for r in fl]),
                   commands(fl)]

        # ---- 4. REST vs gRPC ----
        rest_all = newest(vrows, "rest")
        # Closed-loop rows have no mode tag; the fixed-rate pairs (mode=rate)
        # get their own table below.
        rr = [r for r in rest_all if r.get("mode", "closed") != "rate"]
        rate_rows = [r for r in rest_all if r.get("mode") == "rate"]
        if rr:
            lines = []
            by = {}
            for r in rr:
                by[(r.get("call") if r.get("transport") == "rest" else
                    ("post" if r.get("call") == "PostMessage" else "list"), r.get("transport"))] = r
            for call in ("post", "list"):
                g, h = by.get((call, "grpc")), by.get((call, "rest"))
                if not g or not h:
                    continue
                ratio = f"{h['calls_per_s'] / g['calls_per_s']:.2f}" if g.get("calls_per_s") else "–"
                added = added_p99(h, g)
                errs = sum(h.get(k, 0) for k in ("errors_connect", "errors_read", "errors_write",
                                                 "errors_status", "errors_timeout"))
                lines.append([("POST" if call == "post" else "GET") + " messages", g.get("inflight"),
                              g.get("calls_per_s"), h.get("calls_per_s"), ratio,
                              g.get("latency_p50_ms"), h.get("latency_p50_ms"),
                              g.get("latency_p99_ms"), h.get("latency_p99_ms"), added,
                              g.get("errors"), errs])
            md += ["## 4. REST through the gateway against direct gRPC", "", meta(rr),
                   "Closed loop, the same number of connections (wrk) and calls in flight"
                   " (loadgen); gRPC rows are `MessageService.PostMessage` and `ListMessages(n=10)`,"
                   " REST rows `POST /v1/rooms/{room}/messages` and"
                   " `GET /v1/rooms/{room}/messages?n=10`.", "",
                   table(["call", "concurrency", "gRPC calls/s", "REST calls/s", "REST/gRPC",
                          "gRPC p50 ms", "REST p50 ms", "gRPC p99 ms", "REST p99 ms",
                          "added p99 ms", "gRPC errors", "REST errors"], lines),
                   commands(rr)]
        if rate_rows:
            # Paired by call and offered rate: each REST_RATE_FRACTIONS step
            # ran both sides at the same rate.
            by = {}
            for r in rate_rows:
                call = r.get("call")
                if r.get("transport") == "grpc":
                    call = "post" if call == "PostMessage" else "list"
                by[(call, r.get("offered_rate"), r.get("transport"))] = r
            lines = []
            for call in ("post", "list"):
                closed = [r for r in rr if r.get("transport") == "rest" and r.get("call") == call]
                for rate in sorted({k[1] for k in by if k[0] == call and k[1]}):
                    g = by.get((call, rate, "grpc"), {})
                    h = by.get((call, rate, "rest"), {})
                    offered = fmt(rate)
                    if closed and closed[-1].get("calls_per_s"):
                        offered += f" ({rate / closed[-1]['calls_per_s']:.2f}×)"
                    added = added_p99(h, g)
                    lines.append([("POST" if call == "post" else "GET") + " messages",
                                  offered,
                                  h.get("latency_p50_ms"), h.get("latency_p99_ms"),
                                  g.get("latency_p50_ms"), g.get("latency_p99_ms"), added,
                                  h.get("errors"), g.get("errors")])
            md += ["### The same calls at the same offered rate (open loop)", "",
                   "The closed-loop table above runs each side at its own saturation, where p99"
                   " is mostly queueing: with the same number of calls always in flight,"
                   " Little's law (in flight = throughput × latency) sets each side's mean"
                   " latency at that number over its own throughput, so the two p99s are"
                   " queueing at two different throughputs and their difference says more about"
                   " the throughputs than about what the gateway adds to one call. Here both"
                   " sides get the same offered load, open loop: calls go out on"
                   " a fixed schedule whatever the answers do, at fractions (`REST_RATE_FRACTIONS`,"
                   " shown after each rate) of the calls/s REST sustained closed loop just before,"
                   " and each call's latency counts from its *scheduled* send time, so a sender"
                   " that falls behind counts (no coordinated omission). Added p99 is REST p99"
                   " − gRPC p99 at that equal load (the target: ≤ 2 ms). REST goes through"
                   " `scripts/bench/rest-rate` (vegeta's attacker, HTTP/1.1 keep-alive), gRPC"
                   " through `parley_loadgen --call_rate` over 2 connections. On either side at"
                   " most `--max_inflight` calls may be pending (`REST_RATE_MAX_INFLIGHT`); a call"
                   " due past that is skipped and counted in errors, as are calls the sender"
                   " never got out; errors include the 1 s warm-up. A row with errors was"
                   " overloaded at that rate (the machine is shared by client, gateway and"
                   " server): its p99 is queueing again, not the gateway's cost.", "",
                   table(["call", "offered calls/s (× REST closed loop)", "REST p50 ms", "REST p99 ms", "gRPC p50 ms",
                          "gRPC p99 ms", "added p99 ms", "REST errors", "gRPC errors"], lines),
                   commands(rate_rows)]
        nr = newest(vrows, "rest_streams")
        if nr:
            r = nr[-1]
            md += ["### REST NDJSON streams at once", "",
                   table(["streams", "got first line", "got the message posted after", "failed",
                          "all first lines after s", "message reached all after s", "ok"],
                         [[r.get("streams"), r.get("first_lines"), r.get("got_message"),
                           r.get("failed"), r.get("all_first_s"), r.get("message_to_all_s"),
                           r.get("ok")]]),
                   commands(nr)]

        # ---- 5. long poll ----
        lr = newest(vrows, "longpoll")
        if lr:
            md += ["## 5. Long-poll clients (seed 000 lobby: Join, then Receive in a loop)", "",
                   meta(lr),
                   table(["clients", "msgs/s", "deliveries/s offered", "deliveries/s", "p50 ms",
                          "p99 ms", "p99.9 ms", "max ms", "server cores", "server µs CPU/delivery",
                          "join s", "gap events", "errors"],
                         [[r.get("clients"), r.get("offered_msgs_per_s"),
                           r.get("offered_deliveries_per_s"), r.get("deliveries_per_s"),
                           r.get("latency_p50_ms"), r.get("latency_p99_ms"), r.get("latency_p999_ms"),
                           r.get("latency_max_ms"), r.get("server_cpu_cores"),
                           r.get("server_cpu_us_per_delivery"), r.get("join_s"),
                           r.get("gap_events"), r.get("errors")] for r in lr]),
                   commands(lr)]

        # ---- 6. slow consumer ----
        wr = newest(vrows, "slow")
        if wr:
            md += ["## 6. Slow consumer (one subscriber of the room stops reading)", "", meta(wr),
                   table(["subscribers", "msgs/s", "p99 before ms", "p99 during ms", "p99 change %",
                          "p99.9 before ms", "p99.9 during ms", "server RSS held by the stall KB",
                          "events to the stalled one while stalled", "after resume", "gaps after resume",
                          "errors"],
                         [[r.get("subscribers"), r.get("rate_msgs_per_s"), r.get("before_p99_ms"),
                           r.get("during_p99_ms"), r.get("p99_change_pct"), r.get("before_p999_ms"),
                           r.get("during_p999_ms"), r.get("server_rss_stalled_held_kb"),
                           r.get("stalled_events_while_stalled"), r.get("stalled_events_after_resume"),
                           r.get("gap_events_after_resume"), r.get("errors")] for r in wr]),
                   commands(wr)]

        # ---- where a delivery's CPU goes ----
        cr = [r for r in newest(vrows, "cost") if r.get("scenario") == "cost"]
        if cr:
            md += ["## 7. Where a delivery's server CPU goes (fan-out, rooms of 100)", "", meta(cr),
                   "System calls and context switches of the server per delivery (`perf stat`)",
                   "and its CPU samples by library (`perf record`), inside the load generator's",
                   "measured window. `libgrpc` includes libgpr; `libc` is mostly malloc/free and",
                   "mutexes; `kernel` is mostly the loopback TCP send (which also runs the",
                   "receiving side's softirq) and futex wake-ups.", "",
                   table(["msgs/s", "deliveries/s", "server µs CPU/delivery", "sendmsg/delivery",
                          "recvmsg/delivery", "futex/delivery", "epoll_wait/delivery",
                          "context switches/delivery", "% kernel", "% libgrpc", "% libc",
                          "% parley_server", "% other"],
                         [[r.get("offered_msgs_per_s"), r.get("deliveries_per_s"),
                           r.get("server_cpu_us_per_delivery"),
                           fmt(r.get("sendmsg_per_delivery"), 2), fmt(r.get("recvmsg_per_delivery"), 2),
                           fmt(r.get("futex_per_delivery"), 2), fmt(r.get("epoll_wait_per_delivery"), 2),
                           fmt(r.get("context_switches_per_delivery"), 2), r.get("cpu_pct_kernel"),
                           r.get("cpu_pct_libgrpc"), r.get("cpu_pct_libc"),
                           r.get("cpu_pct_parley_server"), r.get("cpu_pct_other")] for r in cr]),
                   commands(cr)]

        if variant == "ndebug":
            md[first_line:] = [l + suffix if l.startswith("## ") and l[3:4].isdigit() else l
                               for l in md[first_line:]]

    md += cluster_section(rows)
    md += peers_section(rows)

    out = os.path.join(docs, "benchmarks.md")
    text = carry_over("\n".join(md).rstrip() + "\n", out)
    notes = os.path.join(bench_dir, "notes.md")  # hand-written findings
    if os.path.exists(notes):
        with open(notes) as f:
            text += "\n" + f.read()
    with open(out, "w") as f:
        f.write(text.rstrip() + "\n")


NOTES_HEADING = "## Targets and findings"


def sections(text):
    """The text before the first level-2 heading, and [heading, body] pairs."""
    head, parts = [], []
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            parts.append([line.rstrip("\n"), line])
        elif parts:
            parts[-1][1] += line
        else:
            head.append(line)
    return "".join(head), parts


def carry_over(new_text, old_path):
    """`new_text` with the sections of the current report that it lacks (a
    part not run since, whose rows are no longer in the results file) kept
    where they were, so a run of some parts does not drop the others."""
    if not os.path.exists(old_path):
        return new_text
    with open(old_path) as f:
        _, old = sections(f.read())
    head, new = sections(new_text)
    have = {h for h, _ in new}
    out = list(new)
    for i, (heading, body) in enumerate(old):
        if heading in have or heading.startswith(NOTES_HEADING):
            continue
        # After the nearest earlier old section that is in the output.
        at = 0
        for prev, _ in reversed(old[:i]):
            found = [k for k, (h, _) in enumerate(out) if h == prev]
            if found:
                at = found[0] + 1
                break
        out.insert(at, [heading, body])
        have.add(heading)
    return head + "".join(body if body.endswith("\n") else body + "\n" for _, body in out)


if __name__ == "__main__":
    main()
