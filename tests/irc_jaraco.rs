//! natter driven by a real IRC client library nobody here wrote: jaraco/irc
//! (PyPI `irc`), via tests/irc/jaraco_client.py, talking with a raw-TCP
//! text user played by this test. `.ci/run` installs the package; without
//! it the test fails under CI (`CI` set) and is skipped loudly elsewhere.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn jaraco_irc_client_talks_with_a_text_user() {
    let srv = start(config()).await;
    let mut bob = srv.user("textbob").await;
    let irc = srv.irc_addr.expect("IRC listener on");
    let mut child = match Command::new("python3")
        .arg("tests/irc/jaraco_client.py")
        .arg(irc.to_string())
        .arg(srv.addr.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "\n!!! SKIPPED jaraco_irc_client_talks_with_a_text_user: cannot run python3: {e}\n"
            );
            return;
        }
        Err(e) => panic!("cannot run python3 (CI must have it): {e}"),
    };

    // textbob's side of the conversation, while the script runs.
    let talk = async {
        bob.expect("pyalice joined #lobby").await;
        bob.expect("pyalice: hello from python").await;
        bob.send("hello from text").await;
        bob.send("/me waves").await;
        bob.expect("* pyalice bows").await;
        bob.expect("pyalice quit").await;
    };
    let wait = async {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().expect("wait for python") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the jaraco client script did not finish in time");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (status, ()) = tokio::join!(wait, async {
        // A missing package ends the script at once; don't wait for talk then.
        let _ = tokio::time::timeout(Duration::from_secs(30), talk).await;
    });
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if status.code() == Some(3) {
        if std::env::var_os("CI").is_some() {
            panic!("python3 lacks the `irc` package under CI (.ci/run installs it): {err}");
        }
        eprintln!(
            "\n!!! SKIPPED jaraco_irc_client_talks_with_a_text_user: {}\n!!! run: python3 -m pip install irc==20.5.0\n",
            err.trim()
        );
        return;
    }
    assert!(
        status.success() && out.lines().last() == Some("OK"),
        "jaraco client failed ({status}):\n{out}\n{err}"
    );
    srv.shutdown().await;
}
