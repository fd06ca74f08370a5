//! RFC 4475 torture messages: nothing panics, the valid ones parse, the invalid ones are refused
//! with a reply code where the message carries a Via.

use switchboard_sip::message::SipMessage;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/rfc4475");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("torture corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_torture_message_is_handled_without_panic() {
    for (name, data) in corpus() {
        let result = std::panic::catch_unwind(|| {
            SipMessage::parse(&data)
                .map(|_| ())
                .map_err(|e| e.reply.map(|r| r.0))
        });
        let result = result.unwrap_or_else(|_| panic!("{name}: parser panicked"));
        println!("{name:12} {result:?}");
    }
}

/// RFC 4475 §3.1.1: well-formed messages an element must accept (extension methods are answered
/// 501 because they are parsed and understood to be unsupported, which is what the RFC expects).
#[test]
fn valid_messages_are_accepted() {
    let corpus = corpus();
    let get = |n: &str| &corpus.iter().find(|(name, _)| name == n).unwrap().1;
    for name in [
        "wsinv",
        "esc01",
        "escnull",
        "lwsdisp",
        "longreq",
        "dblreq",
        "semiuri",
        "transports",
        "mpart01",
        "unreason",
        "noreason",
    ] {
        assert!(SipMessage::parse(get(name)).is_ok(), "{name} should parse");
    }
    for name in ["intmeth", "esc02", "mismatch02"] {
        assert_eq!(
            SipMessage::parse(get(name)).unwrap_err().reply.map(|r| r.0),
            Some(501),
            "{name}"
        );
    }
}

/// RFC 4475 §3.1.2: invalid requests get a 4xx/5xx when they can be answered.
#[test]
fn invalid_requests_are_refused() {
    let corpus = corpus();
    let get = |n: &str| &corpus.iter().find(|(name, _)| name == n).unwrap().1;
    for (name, code) in [
        ("clerr", 400),
        ("ncl", 400),
        ("mcl01", 400),
        ("insuf", 400),
        ("scalar02", 400),
        ("lwsruri", 400),
        ("lwsstart", 400),
        ("trws", 400),
        ("ltgtruri", 400),
        ("mismatch01", 400),
        ("badvers", 505),
        ("novelsc", 416),
        ("unkscm", 416),
    ] {
        let err = SipMessage::parse(get(name)).unwrap_err();
        assert_eq!(err.reply.map(|r| r.0), Some(code), "{name}: {}", err.reason);
    }
    // Responses that cannot be parsed are dropped silently.
    for name in ["bigcode", "scalarlg"] {
        assert!(
            SipMessage::parse(get(name)).unwrap_err().reply.is_none(),
            "{name}"
        );
    }
}
