#!/usr/bin/env python3
"""Attacks at a bounded rate beside a load run (benches/load/sipp.sh soak with SOAK_ATTACKS=1),
each from its own loopback address, so the soak's legitimate calls show what they cost:

  http-idle     40 silent HTTP connections held open, re-opened as the server closes them
  http-guess    10 wrong Basic passwords a second (401, then 429 once throttled)
  sip-tcp-idle  40 silent SIP/TCP connections held open, re-opened as closed
  sip-flood     50 INVITEs a second from a stranger (403, or dropped past the source rate)
  rtp-spray     2,000 valid-looking RTP packets a second over the media port range; any
                packet that comes back is audio the stranger took

usage: attacks.py HOST SIP_PORT HTTP_PORT RTP_LOW RTP_HIGH SECS OUT.json
"""
import json
import random
import socket
import struct
import sys
import threading
import time

HOST, SIP, HTTP = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
RTP_LOW, RTP_HIGH, SECS, OUT = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
END = time.time() + SECS
stats = {k: 0 for k in (
    'http_idle_opened', 'http_idle_closed_by_server', 'http_guess_401', 'http_guess_429',
    'http_guess_other', 'sip_tcp_opened', 'sip_tcp_closed_by_server', 'sip_flood_sent',
    'sip_flood_answers', 'rtp_sprayed', 'rtp_received')}
lock = threading.Lock()


def count(key, n=1):
    with lock:
        stats[key] += n


def hold_idle(src, port, opened, closed, n=40):
    socks = []
    while time.time() < END:
        while len(socks) < n:
            s = socket.socket()
            s.bind((src, 0))
            try:
                s.connect((HOST, port))
                s.setblocking(False)
                socks.append(s)
                count(opened)
            except OSError:
                s.close()
                break
        for s in list(socks):
            try:
                if s.recv(1) == b'':
                    raise OSError
            except BlockingIOError:
                continue
            except OSError:
                socks.remove(s)
                s.close()
                count(closed)
        time.sleep(0.5)
    for s in socks:
        s.close()


def guess():
    path = '/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls.json'
    import base64
    while time.time() < END:
        token = base64.b64encode(b'AC0123456789abcdef0123456789abcdef:guess%d' % random.randrange(1 << 30))
        s = socket.socket()
        s.bind(('127.0.0.78', 0))
        try:
            s.settimeout(5)
            s.connect((HOST, HTTP))
            s.sendall(b'GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nConnection: close\r\n\r\n'
                      % (path.encode(), token))
            code = s.recv(64).split(b' ')[1]
            count({b'401': 'http_guess_401', b'429': 'http_guess_429'}.get(code, 'http_guess_other'))
        except (OSError, IndexError):
            count('http_guess_other')
        finally:
            s.close()
        time.sleep(0.1)


def flood():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('127.0.0.80', 0))
    s.setblocking(False)
    port = s.getsockname()[1]
    n = 0
    while time.time() < END:
        n += 1
        msg = ('INVITE sip:+15551234@%s:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.80:%d;branch=z9hG4bKatk%d\r\n'
               'From: <sip:attacker@127.0.0.80>;tag=a%d\r\nTo: <sip:+15551234@%s>\r\nCall-ID: atk%d@127.0.0.80\r\n'
               'CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n'
               % (HOST, SIP, port, n, n, HOST, n))
        s.sendto(msg.encode(), (HOST, SIP))
        count('sip_flood_sent')
        try:
            while s.recvfrom(4096):
                count('sip_flood_answers')
        except BlockingIOError:
            pass
        time.sleep(0.02)


def spray():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('127.0.0.81', 0))
    s.setblocking(False)
    seq, port = 0, RTP_LOW
    payload = bytes([0xd5]) * 160
    while time.time() < END:
        for _ in range(40):
            seq = (seq + 1) & 0xffff
            s.sendto(struct.pack('!BBHII', 0x80, 8, seq, seq * 160, 0xbad) + payload, (HOST, port))
            port = port + 2 if port + 2 <= RTP_HIGH else RTP_LOW
        count('rtp_sprayed', 40)
        try:
            while True:
                data, _ = s.recvfrom(2048)
                if len(data) > 12 and data[0] >> 6 == 2 and data[1] & 0x7f < 72:
                    count('rtp_received')
        except BlockingIOError:
            pass
        time.sleep(0.02)


threads = [
    threading.Thread(target=hold_idle, args=('127.0.0.77', HTTP, 'http_idle_opened', 'http_idle_closed_by_server')),
    threading.Thread(target=guess),
    threading.Thread(target=hold_idle, args=('127.0.0.79', SIP, 'sip_tcp_opened', 'sip_tcp_closed_by_server')),
    threading.Thread(target=flood),
    threading.Thread(target=spray),
]
for t in threads:
    t.start()
for t in threads:
    t.join()
json.dump(stats, open(OUT, 'w'), indent=1)
print(json.dumps(stats))
