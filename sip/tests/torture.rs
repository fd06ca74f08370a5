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

/// The outcomes listed in tests/data/rfc4475-outcomes.txt: accepted, refused with a status,
/// or dropped.
#[test]
fn outcomes_match_the_table() {
    let corpus = corpus();
    let table = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/rfc4475-outcomes.txt"
    ))
    .unwrap();
    let mut checked = 0;
    for line in table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (name, outcome) = line.split_once(char::is_whitespace).unwrap();
        let data = &corpus
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not in the corpus"))
            .1;
        let result = SipMessage::parse(data);
        match outcome.trim() {
            "accept" => assert!(result.is_ok(), "{name} should parse: {:?}", result.err()),
            "drop" => assert!(
                result.unwrap_err().reply.is_none(),
                "{name} should be dropped"
            ),
            code => {
                let err = result.unwrap_err();
                assert_eq!(
                    err.reply.map(|r| r.0.to_string()),
                    Some(code.to_owned()),
                    "{name}: {}",
                    err.reason
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 25, "the table was read");
}
