//! The parts of the `kdind` command that need no engine.

use std::process::Command;

fn kdind(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kdind"))
        .args(args)
        .output()
        .expect("kdind runs");
    assert!(
        output.status.success(),
        "kdind {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn completion_scripts_know_every_verb() {
    let verbs = [
        "up",
        "reup",
        "init",
        "join",
        "down",
        "clean",
        "pause",
        "unpause",
        "apiserver-port",
        "copy-image",
        "dump64",
        "split-dump64",
        "image-archive",
        "kubeconfig",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let script = kdind(&["completion", shell]);
        for verb in verbs {
            assert!(script.contains(verb), "{shell} completion lacks {verb}");
        }
    }
    let bash = kdind(&["completion", "bash"]);
    assert!(bash.contains("--cluster-id"), "flags complete too");
}
