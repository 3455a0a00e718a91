#!/usr/bin/env python3
"""bench/bench.py - `make bench`: vouchd against Mosquitto, same tool, same
certificates, same run, per broker core.

Table 1 pins each broker to CPU 0 (vouchd --shards 1) and vouch-bench to
CPU 1, so a figure is what one broker core does. Every run also reads the
broker's CPU time (utime + stime of /proc/PID/stat) before and after: where
the one load-generator core cannot saturate the broker, "capacity" (1 /
broker CPU seconds per operation) is the per-core figure to compare, and the
ratio column uses it. Table 2 runs vouchd with 2 shards (both cores, shared
with the generator).

Environment: VOUCH_BUILD (default build/release), BENCH_SCALE (default 1:
multiplies connection counts and durations), BENCH_JSON=FILE (write every
raw vouch-bench result and the tables there), MOSQUITTO (path).

Every server it starts runs under `timeout` and is stopped by PID on exit.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = os.environ.get("VOUCH_BUILD", "build/release")
BENCH = os.path.join(BUILD, "vouch-bench")
VOUCHD = os.path.join(BUILD, "vouchd")
CTL = os.path.join(BUILD, "vouchctl")
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
TICK = os.sysconf("SC_CLK_TCK")
WOLFSSL_KIND = ("wolfSSL built from Debian's source with the P-256 assembly, make WOLFSSL=asm"
                if BUILD.rstrip("/").endswith("-asm") else "Debian's libwolfssl")
NCPU = os.cpu_count() or 1
BROKER_CPU = "0"
GEN_CPU = "1" if NCPU > 1 else "0"
SERVER_TIMEOUT = 1200  # seconds: no server outlives a stuck run

procs = []
work = tempfile.mkdtemp(prefix="vouch-bench.")
raw = {}


def die(msg):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(1)


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 5
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    procs.clear()
    shutil.rmtree(work, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, name, log):
    for _ in range(200):
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.stderr.write(open(log).read()[-2000:])
    die("%s did not start on port %d" % (name, port))


def start(name, argv, ports, pin=True):
    """Start a server (pinned to BROKER_CPU), wait for its ports."""
    log = os.path.join(work, name + ".log")
    pre = ["taskset", "-c", BROKER_CPU] if pin and NCPU > 1 else []
    cmd = ["timeout", "-s", "TERM", str(SERVER_TIMEOUT)] + pre + argv
    p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    for port in ports:
        wait_port(port, p, name, log)
    # timeout(1) forks the server: its child is the broker we measure
    kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
    return p, int(kids[0]) if kids else p.pid


def stop(b):
    p = b["proc"]
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    procs.remove(p)


def cpu_us(pid):
    """(user, system) CPU seconds of every thread of pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_s(pid):
    return sum(cpu_us(pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def vbench(key, pid, mode, args, pin=True):
    """Run vouch-bench --json; returns its result with the broker's CPU
    seconds for the run added as broker_cpu_s."""
    pre = ["taskset", "-c", GEN_CPU] if pin and NCPU > 1 else []
    cmd = ["timeout", "300"] + pre + [BENCH, mode, "--json", "--quiet"] + args
    u0, s0 = cpu_us(pid)
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    u1, s1 = cpu_us(pid)
    if r.returncode != 0 or not r.stdout.strip():
        print("bench: %s: vouch-bench %s failed (%d): %s" % (key, mode, r.returncode,
              r.stderr.strip()[-500:]), file=sys.stderr)
        return None
    j = json.loads(r.stdout.strip().splitlines()[-1])
    j["broker_cpu_s"] = (u1 - u0) + (s1 - s0)
    j["broker_sys_s"] = s1 - s0
    j["wall_s"] = wall
    raw[key] = j
    return j


def n(x):
    return max(1, int(x * SCALE))


# ------------------------------------------------------------------ figures


def conn_fig(j):
    """connect: (rate/s, broker CPU us per connection)."""
    if not j or not j.get("succeeded"):
        return None
    return (j["connects_per_s"], 1e6 * j["broker_cpu_s"] / j["succeeded"], j)


def resumed_fig(j):
    """connect --resume: only a run where (almost) every connection was
    resumed counts (the first one per certificate is a full handshake)."""
    if not j or not j.get("succeeded"):
        return None
    s = j.get("sessions") or {}
    if s.get("resumed", 0) < 0.9 * j["succeeded"]:
        print("bench: resumed %s of %d connections" % (s.get("resumed"), j["succeeded"]),
              file=sys.stderr)
        return None
    return (j["connects_per_s"], 1e6 * j["broker_cpu_s"] / j["succeeded"], j)


def msg_fig(j):
    """pubsub: (deliveries/s, broker CPU us per delivery)."""
    if not j or not j.get("received"):
        return None
    return (j["msgs_out_per_s"], 1e6 * j["broker_cpu_s"] / j["received"], j)


def mem_fig(j):
    """hold: bytes per connection, only when every connection was open and
    answered the last PINGREQ round."""
    if not j:
        return None
    m = j.get("broker_rss") or {}
    per = m.get("per_connection_bytes")
    pings = j.get("pings") or {}
    if per is None or j.get("open_at_end") != j.get("connections") or \
            pings.get("last_round_answered") != j.get("connections"):
        print("bench: hold: %s open, %s answered the last ping of %s" % (
            j.get("open_at_end"), pings.get("last_round_answered"), j.get("connections")),
            file=sys.stderr)
        return None
    return (per, None, j)


# ------------------------------------------------------------------ set-up


def pki():
    p = os.path.join(work, "pki")
    dev = os.path.join(p, "devices")
    fresh = os.path.join(p, "fresh")
    few = os.path.join(p, "few")
    os.makedirs(dev)
    os.makedirs(fresh)
    os.makedirs(few)

    def ctl(*a):
        subprocess.run([CTL] + list(a), check=True, stdout=subprocess.DEVNULL, timeout=600)
    ctl("pki", "ca", "--out", p, "--name", "ca", "--cn", "vouch bench CA")
    ctl("pki", "server", "--ca-cert", p + "/ca.crt", "--ca-key", p + "/ca.key", "--out", p,
        "--name", "server")
    ca = ["--ca-cert", p + "/ca.crt", "--ca-key", p + "/ca.key"]
    # a pool for the connection floods, and never-seen ones for the signups
    ctl("pki", "devices", *ca, "--out", dev, "--count", str(POOL), "--prefix", "dev")
    if SIGNUPS:
        ctl("pki", "devices", *ca, "--out", fresh, "--count", str(SIGNUPS), "--prefix", "new")
    # resumption: few certificates, so that few handshakes are full ones
    for i in range(RESUME_CERTS):
        for ext in (".crt", ".key"):
            os.link(os.path.join(dev, "dev%d%s" % (i, ext)), os.path.join(few, "dev%d%s" % (i, ext)))
    return p


def register_ca(admin, p):
    def call(method, path, body=None):
        req = urllib.request.Request(admin + path, method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")
    code = call("GET", "/api/v1/registration-code")["registrationCode"]
    subprocess.run([CTL, "pki", "verification", "--ca-cert", p + "/ca.crt", "--ca-key",
                    p + "/ca.key", "--code", code, "--out", p, "--name", "verification", "--force"],
                   check=True, stdout=subprocess.DEVNULL, timeout=60)
    call("POST", "/api/v1/cas", {"caCertificate": open(p + "/ca.crt").read(),
                                 "verificationCertificate": open(p + "/verification.crt").read(),
                                 "autoRegistration": True})


def start_vouchd(name, p, shards, signup_rate, pin=True):
    port, tport, aport = free_port(), free_port(), free_port()
    data = os.path.join(work, name + "-data")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    argv = [VOUCHD, "--listen", "127.0.0.1:%d" % port, "--tls-listen", "127.0.0.1:%d" % tport,
            "--cert", p + "/server.crt", "--key", p + "/server.key",
            "--admin-listen", "127.0.0.1:%d" % aport, "--signup-rate", str(signup_rate),
            "--shards", str(shards), "--data-dir", data, "--log-level", "warn",
            "--max-connections", "200000"]
    proc, pid = start(name, argv, [port, tport, aport], pin)
    register_ca("http://127.0.0.1:%d" % aport, p)
    return {"name": "vouchd", "proc": proc, "pid": pid, "port": port, "tport": tport,
            "aport": aport, "shards": shards, "pin": pin}


def start_mosquitto(p, mosq):
    port, tport = free_port(), free_port()
    conf = os.path.join(work, "mosquitto.conf")
    with open(conf, "w") as f:
        # as root, mosquitto drops to user "mosquitto", which cannot read
        # the key in our private directory
        if os.geteuid() == 0:
            f.write("user root\n")
        f.write("per_listener_settings false\nallow_anonymous true\npersistence false\n"
                "log_dest stderr\nlog_type error\nmax_queued_messages 1000\n"
                "listener %d 127.0.0.1\n"
                "listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/server.crt\n"
                "keyfile %s/server.key\nrequire_certificate true\n" % (port, tport, p, p, p))
    proc, pid = start("mosquitto", [mosq, "-c", conf], [port, tport])
    return {"name": "mosquitto", "proc": proc, "pid": pid, "port": port, "tport": tport}


# ------------------------------------------------------------------ the suite

POOL = n(400)
RESUME_CERTS = 20
SIGNUPS = 0  # set in main
DUR = str(max(2, int(4 * SCALE)))

TESTS = [
    # key, label, kind, mode, args(broker) -> list
    ("plain_connect", "plain TCP connect + CONNACK", "conn", "connect",
     lambda b, p: ["--port", str(b["port"]), "--connections", str(n(20000)),
                   "--concurrency", "200"]),
    ("tls_full", "mutual TLS 1.3 full handshakes", "conn", "connect",
     lambda b, p: ["--port", str(b["tport"]), "--cafile", p + "/ca.crt", "--cert-dir",
                   p + "/devices", "--tls-version", "1.3", "--connections", str(n(3000)),
                   "--client-id-prefix", "full-"]),
    ("tls_resumed", "resumed TLS connections", "resumed", "connect",
     lambda b, p: ["--port", str(b["tport"]), "--cafile", p + "/ca.crt", "--cert-dir",
                   p + "/few", "--tls-version", "1.3", "--resume", "--connections",
                   str(n(8000)), "--client-id-prefix", "res-"]),
]
for qos in (0, 1):
    for label, pubs, subs in (("1->1", 1, 1), ("10->10 pairs", 10, 10), ("1->100", 1, 100)):
        TESTS.append(("qos%d_%s" % (qos, label.replace("->", "_").split()[0]),
                      "QoS %d %s" % (qos, label), "msg", "pubsub",
                      (lambda pubs, subs, qos: lambda b, p: [
                          "--port", str(b["port"]), "--qos", str(qos), "--publishers", str(pubs),
                          "--subscribers", str(subs), "--topics", "1" if pubs == 1 else str(pubs),
                          "--size", "16", "--duration", DUR, "--drain", "3",
                          "--inflight", "64"])(pubs, subs, qos)))
TESTS += [
    ("mem_plain", "RSS per idle plain connection", "mem", "hold",
     lambda b, p: ["--port", str(b["port"]), "--connections", str(n(10000)), "--duration", "3",
                   "--ping-interval", "1", "--broker-pid", str(b["pid"]), "--concurrency", "200"]),
    ("mem_tls", "RSS per idle mutual-TLS connection", "mem", "hold",
     lambda b, p: ["--port", str(b["tport"]), "--cafile", p + "/ca.crt", "--cert-dir",
                   p + "/few", "--resume", "--connections", str(n(5000)), "--duration", "3",
                   "--ping-interval", "1", "--broker-pid", str(b["pid"]),
                   "--client-id-prefix", "mem-"]),
]
TARGET = {"plain_connect": 3, "tls_full": 5, "tls_resumed": 6, "mem_plain": 0.5,
          "mem_tls": 0.5}


def fig_of(kind, j):
    return {"conn": conn_fig, "resumed": resumed_fig, "msg": msg_fig, "mem": mem_fig}[kind](j)


def run_suite(brokers, p, tag, mosq=None):
    """Every test of TESTS on every broker. A memory test gets a broker of
    its own, fresh (an allocator keeps what earlier tests freed, and would
    hide the cost of new connections), with the pool registered."""
    res = {}
    for key, label, kind, mode, args in TESTS:
        for b in brokers:
            if kind == "mem":
                fresh = fresh_broker(b, p, mosq, key)
                sys.stderr.write("  %-8s %-10s %s\n" % (tag, b["name"], label))
                j = vbench("%s.%s.%s" % (tag, b["name"], key), fresh["pid"], mode,
                           args(fresh, p), pin=(tag == "core"))
                res[(key, b["name"])] = fig_of(kind, j)
                stop(fresh)
                continue
            sys.stderr.write("  %-8s %-10s %s\n" % (tag, b["name"], label))
            j = vbench("%s.%s.%s" % (tag, b["name"], key), b["pid"], mode, args(b, p),
                       pin=(tag == "core"))
            res[(key, b["name"])] = fig_of(kind, j)
    return res


def warm(v, p, pin=True, pool="devices"):
    """Register the device pool (a first connection is a signup) before
    anything is measured."""
    vbench("warmup", v["pid"], "connect", ["--port", str(v["tport"]), "--cafile", p + "/ca.crt",
                                           "--cert-dir", p + "/" + pool, "--connections",
                                           str(POOL if pool == "devices" else RESUME_CERTS)],
           pin=pin)


def fresh_broker(b, p, mosq, key):
    """A fresh broker for a memory figure: for TLS with only the few
    certificates it uses registered (the memory of 400 warm-up handshakes,
    freed, would be reused by the connections measured)."""
    if b["name"] == "mosquitto":
        return start_mosquitto(p, mosq)
    v = start_vouchd("vouchd-mem", p, b["shards"], 100000, pin=b["pin"])
    if key == "mem_tls":
        warm(v, p, b["pin"], pool="few")
    return v


def fmt_rate(x):
    return "-" if x is None else ("%.0f" % x if x >= 100 else "%.1f" % x)


def table(res, names, title):
    print(title)
    cols = "%-34s" + " %10s %9s %5s" * len(names) + " %7s %7s"
    hdr = ["figure"]
    for nm in names:
        hdr += [nm, "us CPU/op", "sys%"]
    hdr += ["ratio", "target"]
    print(cols % tuple(hdr))
    for key, label, kind, mode, args in TESTS:
        row = [label + (" (B)" if kind == "mem" else " (/s)")]
        figs = [res.get((key, nm)) for nm in names]
        for f in figs:
            if f is None:
                row += ["failed", "-", "-"]
            elif kind == "mem":
                row += ["%.0f" % f[0], "-", "-"]
            else:
                j = f[2]
                sysp = 100.0 * j["broker_sys_s"] / j["broker_cpu_s"] if j["broker_cpu_s"] else 0
                row += [fmt_rate(f[0]), "%.1f" % f[1], "%.0f" % sysp]
        ratio, tgt = "-", ""
        if len(figs) == 2 and figs[0] and figs[1]:
            if kind == "mem":
                ratio = "%.2fx" % (figs[0][0] / figs[1][0]) if figs[1][0] > 0 else "-"
                tgt = "<=%.1fx" % TARGET.get(key, 0.5)
            else:
                # per-core capacity: broker CPU per operation
                ratio = "%.1fx" % (figs[1][1] / figs[0][1]) if figs[0][1] > 0 else "inf"
                tgt = ">=%gx" % TARGET.get(key, 2)
        row += [ratio, tgt]
        print(cols % tuple(row))
    print()


def registered_count(b):
    url = "http://127.0.0.1:%d/metrics" % b["aport"]
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line.startswith('vouch_signups_total{outcome="registered"}'):
            return int(float(line.split()[-1]))
    return 0


def signup_row(b, p):
    """The flood, and the broker's own count of registrations sampled every
    20 ms: the most that any two samples less than a second apart saw (the
    client's CONNACK times add the network's and the scheduler's jitter)."""
    import threading
    samples, done = [], threading.Event()

    def poll():
        while not done.is_set():
            t0 = time.monotonic()
            c = registered_count(b)
            samples.append((t0, time.monotonic(), c))
            time.sleep(0.02)
    th = threading.Thread(target=poll, daemon=True)
    th.start()
    j = vbench("signup", b["pid"], "signup", [
        "--port", str(b["tport"]), "--cafile", p + "/ca.crt", "--cert-dir", p + "/fresh",
        "--concurrency", "50", "--rate", "100"])
    done.set()
    th.join(5)
    # registrations in (read of i, read of k]: the reads happened between the
    # request's start and its end, so a pair counts when even the widest
    # reading of it spans under a second
    most = 0
    for i, (s0, e0, c0) in enumerate(samples):
        for s1, e1, c1 in samples[i + 1:]:
            if e1 - s0 >= 1.0:
                break
            most = max(most, c1 - c0)
    if j is not None:
        j["broker_max_1s"] = most
    if not j:
        print("signup flood: failed")
        return
    print("signup flood (vouchd --signup-rate 15, %d never-seen certificates at 100 a second): "
          "registered %s, refused over the limit %s, %.1f registrations/s; in any one second at "
          "most %s by the broker's own count (/metrics every 20 ms), %s by CONNACK arrival "
          "(jitter included). Target: exactly the limit, never more." % (
              j.get("attempted", 0), j.get("registered"), j.get("refused_over_limit"),
              j.get("registrations_per_s", 0), j.get("broker_max_1s"),
              j.get("max_registrations_1s")))
    print()


def hold_main(total):
    """`make bench-hold`: `total` mutual-TLS connections held on one vouchd
    (6 shards: each ring's descriptor table is capped by the open-files
    limit), every one answering PINGREQs, from vouch-bench in 6 processes
    over 8 source addresses (one port takes ~28k from one address)."""
    p = pki()
    shards = max(6, -(-total // 18000))
    v = start_vouchd("vouchd-hold", p, shards, 100000, pin=False)
    warm(v, p, pin=False)
    procs = max(6, -(-total // 18000))
    print("holding %d mutual-TLS connections: vouchd --shards %d (open-files limit %d), "
          "vouch-bench --procs %d --source-addrs 127.0.0.1-127.0.0.8 --resume" % (
              total, shards, resource_limit(), procs))
    import threading
    peak = {"direct": 0, "fds": 0}
    done = threading.Event()

    def poll():
        # what the broker holds while the connections are open
        while not done.wait(2):
            try:
                m = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % v["aport"],
                                           timeout=10).read().decode()
                d = sum(float(l.split()[-1]) for l in m.splitlines()
                        if l.startswith("vouch_connections_direct"))
                peak["direct"] = max(peak["direct"], d)
                peak["fds"] = max(peak["fds"], len(os.listdir("/proc/%d/fd" % v["pid"])))
            except OSError:
                pass
    th = threading.Thread(target=poll, daemon=True)
    th.start()
    j = vbench("hold", v["pid"], "hold", [
        "--port", str(v["tport"]), "--cafile", p + "/ca.crt", "--cert-dir", p + "/few",
        "--resume", "--connections", str(total), "--procs", str(procs),
        "--source-addrs", "127.0.0.1-127.0.0.8", "--duration", "20", "--ping-interval", "5",
        "--timeout", "60", "--broker-pid", str(v["pid"]), "--client-id-prefix", "hold-",
        "--concurrency", "100"], pin=False)
    done.set()
    th.join(15)
    direct, fds = peak["direct"], peak["fds"]
    stop(v)
    if not j:
        die("the hold run failed")
    pings = j.get("pings") or {}
    rss = j.get("broker_rss") or {}
    print("connected %d of %d (%.0f/s, %s resumed), open at the end %d, answered the last "
          "PINGREQ round %d; broker: at most %.0f connections on direct descriptors and %d "
          "process descriptors (sampled every 2 s), RSS %.0f MiB (%.1f KiB per connection)" % (
              j["succeeded"], total, j["connects_per_s"], (j.get("sessions") or {}).get("resumed"),
              j["open_at_end"], pings.get("last_round_answered", 0), direct, fds,
              (rss.get("after_kib") or 0) / 1024.0, (rss.get("per_connection_bytes") or 0) / 1024.0))
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(raw, f, indent=1)
    if pings.get("last_round_answered", 0) != total:
        sys.exit(1)


def resource_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def main():
    global SIGNUPS
    for f in (BENCH, VOUCHD, CTL):
        if not os.access(f, os.X_OK):
            die("%s is missing (run make first)" % f)
    mosq = os.environ.get("MOSQUITTO") or shutil.which("mosquitto") or \
        ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    SIGNUPS = n(1000)
    t0 = time.monotonic()
    print("vouch bench (%s): %d cores (%s), Linux %s, load %s" % (WOLFSSL_KIND,
        NCPU, open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip()
        if "model name" in open("/proc/cpuinfo").read() else "?", os.uname().release,
        " ".join(open("/proc/loadavg").read().split()[:3])))
    p = pki()

    # table 1: one core each
    v = start_vouchd("vouchd-1", p, 1, 100000)
    brokers = [v]
    m = None
    if mosq:
        m = start_mosquitto(p, mosq)
        brokers.append(m)
        ver = subprocess.run([mosq, "-h"], stdout=subprocess.PIPE, text=True).stdout.split("\n")[0]
        print("against %s; brokers pinned to CPU %s, vouch-bench to CPU %s" % (ver, BROKER_CPU, GEN_CPU))
    else:
        print("mosquitto is not installed: vouchd alone (apt-get install mosquitto)")
    print()
    warm(v, p)
    res = run_suite(brokers, p, "core", mosq)
    if os.environ.get("BENCH_ONLY_CORE"):
        table(res, [b["name"] for b in brokers], "Table 1")
        return
    stop(v)
    if m:
        stop(m)
    table(res, [b["name"] for b in brokers],
          "Table 1: per broker core (vouchd --shards 1 and mosquitto on CPU %s, vouch-bench on CPU %s).\n"
          "us CPU/op: the broker's CPU (all threads) per operation; sys%%: its share in the kernel.\n"
          "Ratio: vouchd over mosquitto in per-core capacity (mosquitto's CPU per operation over "
          "vouchd's); for memory, vouchd's bytes over mosquitto's." % (BROKER_CPU, GEN_CPU))

    # signups at the default limit
    s = start_vouchd("vouchd-signup", p, 1, 15)
    signup_row(s, p)
    stop(s)

    # table 2: vouchd with 2 shards
    v2 = start_vouchd("vouchd-2", p, 2, 100000, pin=False)
    warm(v2, p, pin=False)
    res2 = run_suite([v2], p, "2shards")
    stop(v2)
    table(res2, ["vouchd"], "Table 2: vouchd --shards 2, unpinned (the generator shares both cores)")
    print("%.0f s in all; raw results: BENCH_JSON=FILE" % (time.monotonic() - t0))
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "w") as f:
            json.dump({k: v for k, v in raw.items()}, f, indent=1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(130))
    try:
        if len(sys.argv) > 1 and sys.argv[1] == "hold":
            hold_main(int(sys.argv[2]) if len(sys.argv) > 2 else 100000)
        else:
            main()
    finally:
        cleanup()
