#!/usr/bin/env python3
"""A SIP login floods REGISTERs, each with a new Contact, while a trunk pings the server with
OPTIONS every 20 ms from its own address; prints the trunk's OPTIONS round trip before and
during the flood, what the REGISTERs got, and the largest 200 OK they were sent (its
Contacts: the bindings the login holds).

Before the registrar's bounds one login held ~100,000 bindings, each REGISTER listed them all
in its 200 OK (6 MB), and a trunk's OPTIONS waited up to 5.4 s behind them on the SIP thread.

usage: register_flood.py [SWITCHBOARD_BINARY] [FLOOD_SECS]
       (default target/release/switchboard, 10 s; all traffic on 127.0.0.0/8)
"""
import hashlib
import multiprocessing
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/switchboard"
FLOOD_SECS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
BASELINE_SECS = 3.0
MAX_REGISTERS = 200_000
HOST, TRUNK = "127.0.0.1", "127.0.0.2"


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(workdir):
    sip, http = free_port(), free_port(socket.SOCK_STREAM)
    config = os.path.join(workdir, "switchboard.toml")
    with open(config, "w") as f:
        f.write(f"""[sip]
listen = ["udp:{HOST}:{sip}"]
# The flood is one address: the per-source rate limit would hide the registrar.
rate_limit_per_source = 0.0
[http]
listen = "{HOST}:{http}"
[storage]
database_url = "sqlite://{workdir}/db.sqlite"
[[trunks]]
name = "carrier"
address = "{TRUNK}:5099"
inbound_sources = ["{TRUNK}/32"]
[[users]]
username = "flood"
password = "flood-secret"
""")
    env = dict(os.environ, SWITCHBOARD_DATA_DIR=os.path.join(workdir, "data"), RUST_LOG="warn")
    log = open(os.path.join(workdir, "server.log"), "w")
    proc = subprocess.Popen([BINARY, "serve", "--config", config], env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection((HOST, http), timeout=0.2).close()
            return proc, sip
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("the server did not start: see " + log.name)


class Pinger(threading.Thread):
    """The trunk's OPTIONS every 20 ms; round trips by CSeq."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((TRUNK, 0))
        self.sock.settimeout(0.01)
        self.port, self.sent, self.rtt, self.phase = port, {}, {}, "baseline"
        self.stop = False

    def run(self):
        local = self.sock.getsockname()[1]
        cseq, next_at = 0, time.time()
        while not self.stop:
            now = time.time()
            if now >= next_at:
                cseq += 1
                msg = (f"OPTIONS sip:{HOST}:{self.port} SIP/2.0\r\n"
                       f"Via: SIP/2.0/UDP {TRUNK}:{local};branch=z9hG4bKo{cseq}\r\n"
                       f"From: <sip:carrier@{TRUNK}>;tag=t\r\nTo: <sip:{HOST}>\r\n"
                       f"Call-ID: ping@{TRUNK}\r\nCSeq: {cseq} OPTIONS\r\nMax-Forwards: 70\r\n"
                       "Content-Length: 0\r\n\r\n")
                self.sock.sendto(msg.encode(), (HOST, self.port))
                self.sent[cseq] = (now, self.phase)
                next_at += 0.02
            try:
                data = self.sock.recv(65536).decode(errors="replace")
            except socket.timeout:
                continue
            m = re.search(r"CSeq: (\d+) OPTIONS", data)
            if m and int(m.group(1)) in self.sent and int(m.group(1)) not in self.rtt:
                self.rtt[int(m.group(1))] = time.time() - self.sent[int(m.group(1))][0]


def digest(challenge, method, uri, nc):
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    ha1 = hashlib.md5(f"flood:{fields['realm']}:flood-secret".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    cnonce = "%08x" % random.getrandbits(32)
    ncv = "%08x" % nc
    resp = hashlib.md5(f"{ha1}:{fields['nonce']}:{ncv}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (f'Digest username="flood", realm="{fields["realm"]}", nonce="{fields["nonce"]}", '
            f'uri="{uri}", response="{resp}", algorithm=MD5, qop=auth, nc={ncv}, '
            f'cnonce="{cnonce}"')


def flood(port, secs, out):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.settimeout(1.0)
    local = sock.getsockname()[1]
    uri = f"sip:{HOST}:{port}"
    challenge, nc, n = None, 0, 0
    end = time.time() + secs
    while time.time() < end and n < MAX_REGISTERS:
        n += 1
        auth = ""
        if challenge:
            nc += 1
            auth = "Authorization: " + digest(challenge, "REGISTER", uri, nc) + "\r\n"
        contact = f"<sip:flood@{HOST}:{10000 + n % 50000};line={n}>"
        msg = (f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bKr{n}\r\n"
               f"From: <sip:flood@{HOST}>;tag=f\r\nTo: <sip:flood@{HOST}>\r\n"
               f"Call-ID: flood@{HOST}\r\nCSeq: {n} REGISTER\r\nContact: {contact}\r\n"
               f"Expires: 3600\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        sock.sendto(msg.encode(), (HOST, port))
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            out["timeouts"] += 1
            continue
        text = data.decode(errors="replace")
        code = int(text.split(" ", 2)[1])
        out[code] = out.get(code, 0) + 1
        out["largest"] = max(out["largest"], len(data))
        out["contacts"] = max(out["contacts"], text.count("\r\nContact:"))
        if code == 401:
            challenge = re.search(r"WWW-Authenticate: (.*)\r\n", text).group(1)
            nc = 0


def flood_process(port, secs, results):
    out = {"timeouts": 0, "largest": 0, "contacts": 0}
    flood(port, secs, out)
    results.put(out)


def pct(values, q):
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main():
    with tempfile.TemporaryDirectory() as workdir:
        proc, port = start_server(workdir)
        try:
            pinger = Pinger(port)
            pinger.start()
            time.sleep(BASELINE_SECS)
            pinger.phase = "flood"
            # The flood in a process of its own, so that it does not share the pinger's
            # interpreter lock (the pinger's times are the server's, not Python's).
            results = multiprocessing.Queue()
            flooder = multiprocessing.Process(target=flood_process, args=(port, FLOOD_SECS, results))
            flooder.start()
            out = results.get()
            flooder.join()
            pinger.phase = "after"
            time.sleep(1.0)
            pinger.stop = True
            pinger.join()
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{'phase':<10} {'OPTIONS':>8} {'answered':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for phase in ("baseline", "flood"):
        sent = [c for c, (_, p) in pinger.sent.items() if p == phase]
        rtts = [pinger.rtt[c] * 1000 for c in sent if c in pinger.rtt]
        print(f"{phase:<10} {len(sent):>8} {len(rtts):>9} {pct(rtts, 0.5):>8.2f} "
              f"{pct(rtts, 0.99):>8.2f} {max(rtts, default=float('nan')):>8.2f}")
    registers = sum(v for k, v in out.items() if isinstance(k, int))
    print(f"\nREGISTERs answered in {FLOOD_SECS:.0f} s: {registers} "
          f"({', '.join(f'{k}: {v}' for k, v in sorted((k, v) for k, v in out.items() if isinstance(k, int)))}), "
          f"unanswered {out['timeouts']}")
    print(f"largest answer: {out['largest']} bytes, at most {out['contacts']} Contacts (bindings held)")


if __name__ == "__main__":
    main()
