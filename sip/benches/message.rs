//! The SIP thread's per-message work outside the call core: parsing a datagram into a
//! message (framing, unfolding, the header list, rsip's checks of the start line and the
//! headers every transaction keys on), and encoding one. The messages are those of a
//! signalling-only load run: SIPp's INVITE with SDP, the callee's 200 with a Record-Route
//! set, a BYE. Parsing allocates; this shows what each message costs.
//!
//!   cargo bench -p switchboard-sip --bench message

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_sip::message::SipMessage;

const INVITE: &str = "INVITE sip:1000@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4711-1-0\r\n\
From: sipp <sip:sipp@127.0.0.1:5070>;tag=4711SIPpTag001\r\n\
To: 1000 <sip:1000@127.0.0.1:5060>\r\n\
Call-ID: 1-4711@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:sipp@127.0.0.1:5070>\r\n\
Max-Forwards: 70\r\n\
Subject: Anchor Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 137\r\n\
\r\n\
v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 8\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=ptime:20\r\n";

const OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-sb-9f8e7d6c5b4a;rport=5060\r\n\
Record-Route: <sip:127.0.0.1:5080;lr>\r\n\
From: <sip:sipp@127.0.0.1:5060>;tag=sb-1a2b3c4d\r\n\
To: <sip:1000@127.0.0.1:5090>;tag=5512SIPpTag011\r\n\
Call-ID: sb-0123456789abcdef\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:127.0.0.1:5090;transport=UDP>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 129\r\n\
\r\n\
v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6002 RTP/AVP 8\r\n\
a=rtpmap:8 PCMA/8000\r\n";

const BYE: &str = "BYE sip:sb-7@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4711-1-6\r\n\
From: sipp <sip:sipp@127.0.0.1:5070>;tag=4711SIPpTag001\r\n\
To: 1000 <sip:1000@127.0.0.1:5060>;tag=sb-5e6f7a8b\r\n\
Call-ID: 1-4711@127.0.0.1\r\n\
CSeq: 2 BYE\r\n\
Contact: <sip:sipp@127.0.0.1:5070>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\
\r\n";

fn message(c: &mut Criterion) {
    let mut g = c.benchmark_group("SIP message");
    for (name, text) in [
        ("INVITE with SDP", INVITE),
        ("200 OK with SDP", OK),
        ("BYE", BYE),
    ] {
        let parsed = SipMessage::parse(text.as_bytes()).expect("parses");
        g.bench_function(format!("parse {name}"), |b| {
            b.iter(|| SipMessage::parse(black_box(text.as_bytes())).expect("parses"))
        });
        g.bench_function(format!("encode {name}"), |b| {
            b.iter(|| black_box(&parsed).encode())
        });
    }
    g.finish();
}

criterion_group!(benches, message);
criterion_main!(benches);
