//! The fuzz targets (fuzz/, coverage-guided with cargo-fuzz) as ordinary tests: every stored
//! input under fuzz/corpus/<target> and fuzz/regressions/<target> is replayed, then each
//! target gets a short mutation run (seeded byte edits and splices of its corpus; not
//! coverage-guided, which needs the instrumented build cargo-fuzz makes). A panic fails.

#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(listing) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in listing.flatten() {
            out.push(std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

/// xorshift64*: a fixed seed makes a failure reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that parsers of text protocols trip over.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\0",
    b"%",
    b"%00",
    b"<",
    b">",
    b"\"",
    b"\\",
    b";",
    b",",
    b":",
    b"=",
    b"&",
    b"4294967296",
    b"18446744073709551616",
    b"-1",
    b"99999999999999999999",
    b"Content-Length: 99999\r\n",
    b"<![CDATA[",
    b"{\"",
    b"\xff\xfe",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            4 if !data.is_empty() => {
                // A run of the input repeated, as a length or count attack would.
                let start = rng.below(data.len());
                let end = (start + 1 + rng.below(32)).min(data.len());
                let run = data[start..end].repeat(1 + rng.below(64));
                data.splice(at..at, run);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

/// Runs one input; a panic keeps the input (for fuzz/regressions) and names it.
fn run(name: &str, target: fn(&[u8]), input: &[u8]) {
    let outcome = std::panic::catch_unwind(|| target(input));
    if outcome.is_err() {
        let path = std::env::temp_dir().join(format!("switchboard-fuzz-{name}.bin"));
        std::fs::write(&path, input).unwrap();
        panic!(
            "target {name} panicked on an input, kept at {}: {:?}",
            path.display(),
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn every_stored_input_and_a_mutation_run_pass_every_target() {
    for &(name, target) in targets::TARGETS {
        let seeds = inputs(name);
        assert!(!seeds.is_empty(), "fuzz/corpus/{name} is empty");
        for input in &seeds {
            run(name, target, input);
        }
        let mut rng = Rng(0x5eed_0000 ^ name.len() as u64);
        for _ in 0..8_000 {
            run(name, target, &mutate(&mut rng, &seeds));
        }
    }
}
