//! Runs the `uae` binary of the test's own build.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `uae` binary Cargo built for this test run: it sits in the target
/// profile folder, above the test binary's `deps/`.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    profile.join(format!("uae{}", std::env::consts::EXE_SUFFIX))
}

/// A command for the `uae` binary, to add arguments, input or environment to.
pub fn command() -> Command {
    Command::new(binary())
}

/// Runs `uae` with `args` and returns its output, whatever its status.
pub fn uae(args: &[&str]) -> Output {
    command().args(args).output().expect("uae runs")
}

/// Standard error of a run, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
