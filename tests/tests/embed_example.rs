//! The embedding example (`sync-runtime/examples/embed.rs`) is what an operator copies into
//! their own relay, so it must work: it runs a relay with the GRASP policy and the sync runtime
//! on one store, a client announces a repository on it, and the example exits 0 only if the
//! remote relay's patches are then served by our relay.

use std::process::Command;

#[test]
fn the_embedding_example_syncs_into_a_relay_that_serves_it() {
    let example = grasp_sync_tests::workspace_bin::build_executable(&[
        "-p",
        "sync-runtime",
        "--example",
        "embed",
    ]);
    let output = Command::new(example).output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("remote relay connected: true; patches served by our relay: 3"),
        "{stdout}"
    );
}
