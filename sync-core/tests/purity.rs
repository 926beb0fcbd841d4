//! sync-core stays pure: no clock, no global RNG, no threads, no async runtime, no IO crates.
//! (clippy.toml enforces the same at lint time; this test fails `cargo test` as well.)

use std::fs;
use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                fs::read_to_string(&path).expect("read file"),
            ));
        }
    }
}

#[test]
fn purity() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() > 10, "found the sources");
    let banned = [
        "Instant::now",
        "SystemTime::now",
        "Timestamp::now",
        "thread_rng",
        "rand::random",
        "tokio::",
        "std::thread",
        "std::fs",
        "std::net",
        "TcpStream",
        "UdpSocket",
        "ToSocketAddrs",
        "lookup_host",
        "HashMap",
        "HashSet",
    ];
    let mut hits = Vec::new();
    for (path, text) in &files {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for b in banned {
                if code.contains(b) {
                    hits.push(format!("{path}:{}: {b}", n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "impure code in sync-core:\n{}",
        hits.join("\n")
    );
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let deps = manifest
        .split("[dev-dependencies]")
        .next()
        .unwrap_or_default();
    for crate_name in [
        "tokio",
        "nostr-sdk",
        "nostr-relay-pool",
        "prometheus",
        "reqwest",
        "async-std",
    ] {
        assert!(
            !deps.contains(&format!("{crate_name}.")) && !deps.contains(&format!("{crate_name} =")),
            "sync-core depends on {crate_name}"
        );
    }
}
