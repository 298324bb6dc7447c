//! natter driven by a real IRC client library nobody here wrote: jaraco/irc
//! (PyPI `irc`), via tests/irc/jaraco_client.py, talking with a raw-TCP
//! text user played by this test. The script runs with `NATTER_PYTHON`
//! (else `python3`): `.ci/run` installs the package into a venv,
//! `.venv-ci`, and points `NATTER_PYTHON` at it. Without python or the
//! package the test fails under CI and is skipped loudly elsewhere (the
//! rule in tests/common).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// What a skip says: what did not run, and how to get it to.
const SETUP: &str = "jaraco_irc_client_talks_with_a_text_user did not run. \
    To run it: python3 -m venv .venv-ci && .venv-ci/bin/pip install irc==20.5.0, \
    then NATTER_PYTHON=.venv-ci/bin/python cargo test (or run .ci/run)";

/// The interpreter, if it runs and has the `irc` package (else the test
/// is reported missing, as tests/common says, and `None`).
fn python_with_irc(test: &str) -> Option<std::path::PathBuf> {
    let python = common::python();
    let py = python.display();
    let setup = SETUP.replace("jaraco_irc_client_talks_with_a_text_user", test);
    match Command::new(&python)
        .args(["-c", "import irc.client"])
        .output()
    {
        Err(e) => missing(&format!("cannot run {py} ({e}); {setup}")),
        Ok(o) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            let why = err.lines().last().unwrap_or("no output");
            missing(&format!("{py} lacks the `irc` package ({why}); {setup}"));
        }
        Ok(_) => return Some(python),
    }
    None
}

#[tokio::test]
async fn jaraco_irc_client_talks_with_a_text_user() {
    // First whether the interpreter runs and has the package at all.
    let Some(python) = python_with_irc("jaraco_irc_client_talks_with_a_text_user") else {
        return;
    };
    let py = python.display();

    let srv = start(config()).await;
    let mut bob = srv.user("textbob").await;
    let irc = srv.irc_addr.expect("IRC listener on");
    let mut child = Command::new(&python)
        .arg("tests/irc/jaraco_client.py")
        .arg(irc.to_string())
        .arg(srv.addr.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));

    let status = {
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
        tokio::pin!(talk, wait);
        tokio::select! {
            () = &mut talk => wait.await,
            status = &mut wait => {
                // textbob may still have the quit to read; but if the
                // script failed, its output below says why: stop talking.
                if status.success() {
                    talk.await;
                }
                status
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        status.success() && out.lines().last() == Some("OK"),
        "jaraco client failed ({status}):\n{out}\n{err}"
    );
    srv.shutdown().await;
}

/// jaraco/irc reads history: CAP batch draft/chathistory server-time
/// message-tags, then CHATHISTORY LATEST and BEFORE by msgid, from a
/// SQLite database (tests/irc/jaraco_chathistory.py).
#[tokio::test]
async fn jaraco_irc_client_reads_chathistory() {
    let Some(python) = python_with_irc("jaraco_irc_client_reads_chathistory") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let srv = start(natter::config::Config {
        db: dir.path().join("natter.db").to_str().unwrap().into(),
        ..config()
    })
    .await;
    let mut jay = JsonClient::login(srv.addr, "jay").await;
    jay.send(serde_json::json!({"cmd": "join", "room": "pyhist"}))
        .await;
    for n in 1..=5 {
        let text = format!("p {n}");
        jay.send(Cmd::chat(text.clone())).await;
        expect_event!(jay, Event::Message { text: t, .. } if t == text).await;
    }
    let irc = srv.irc_addr.expect("IRC listener on");
    let script = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg("tests/irc/jaraco_chathistory.py")
            .arg(irc.to_string())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .output()
    });
    let out = tokio::time::timeout(Duration::from_secs(40), script)
        .await
        .expect("the script finishes (it gives up after 20 s)")
        .unwrap()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("OK"),
        "jaraco chathistory script failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    srv.shutdown().await;
}
