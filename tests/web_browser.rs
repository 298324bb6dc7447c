//! The web chat page in a real browser: Debian's Chromium, headless,
//! driven over the Chrome DevTools Protocol (a WebSocket, with the same
//! client crate the WebSocket tests use). The page loads from the main
//! port, the user types a nickname and a line with the keyboard, a telnet
//! user receives it and answers, and the page shows the answer.
//! Screenshots (desktop, phone-sized, dark) are saved in
//! `target/tmp/web-page*.png`.
//!
//! Needs `chromium` (`.ci/run` installs it): skipped with a visible line
//! when it is missing, a failure under CI.

mod common;

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64ct::Encoding as _;
use common::PATIENCE;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Chromium, ended when the test ends (passed or not).
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts headless Chromium on a free debugging port; returns it and the
/// browser's DevTools WebSocket address (which it prints when ready). A
/// Chromium that has not printed it within its patience is killed and
/// started once more: on CI it once stalled at start for over 30 s (load
/// 1.3), before natter had any part in it.
async fn launch(chromium: PathBuf) -> (Browser, String) {
    match try_launch(&chromium).await {
        Some(ready) => ready,
        None => try_launch(&chromium)
            .await
            .expect("chromium says where DevTools listens (second start)"),
    }
}

/// One start of Chromium for [`launch`]: none if it did not say where
/// DevTools listens in time (it is killed then).
async fn try_launch(chromium: &std::path::Path) -> Option<(Browser, String)> {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads Chromium's log until it is gone (so its pipe never fills).
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(Ok(url.trim().to_string()));
            }
            seen.push(line);
        }
        let _ = tx.send(Err(seen.join("\n")));
    });
    let browser = Browser {
        child,
        _profile: profile,
    };
    let url = tokio::task::spawn_blocking(move || rx.recv_timeout(PATIENCE * 3))
        .await
        .unwrap()
        .ok()?
        .unwrap_or_else(|log| panic!("chromium exited: {log}"));
    Some((browser, url))
}

/// A DevTools session on one page.
struct Cdp {
    ws: Ws,
    next_id: u64,
    session: Option<String>,
    /// Events read while waiting for an answer.
    events: VecDeque<Value>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let v = self.read(method).await;
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            self.events.push_back(v);
        }
    }

    async fn read(&mut self, waiting_for: &str) -> Value {
        loop {
            let msg = tokio::time::timeout(PATIENCE * 2, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("DevTools: no {waiting_for} in time"))
                .expect("DevTools connection open")
                .expect("DevTools message");
            if let Message::Text(t) = msg {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    async fn event(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(i).unwrap();
        }
        loop {
            let v = self.read(method).await;
            if v["method"] == method {
                return v;
            }
        }
    }

    /// Evaluates `js` in the page (awaiting a promise); its value.
    async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Types `text` into the focused element and presses Enter, as a
    /// keyboard user would.
    async fn type_line(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).await;
        for kind in ["keyDown", "keyUp"] {
            let mut key = json!({"type": kind, "key": "Enter", "code": "Enter",
                                 "windowsVirtualKeyCode": 13});
            if kind == "keyDown" {
                key["text"] = json!("\r");
            }
            self.call("Input.dispatchKeyEvent", key).await;
        }
    }

    /// Waits (in the page, with a deadline) until the element `id` shows `needle`.
    async fn wait_text(&mut self, id: &str, needle: &str) {
        let js = format!(
            r#"new Promise((resolve, reject) => {{
                const el = document.getElementById({id:?});
                const ok = () => el.textContent.includes({needle:?});
                if (ok()) return resolve(true);
                const o = new MutationObserver(() => {{ if (ok()) {{ o.disconnect(); resolve(true); }} }});
                o.observe(el, {{subtree: true, childList: true, characterData: true}});
                setTimeout(() => {{ o.disconnect(); reject(new Error("no " + {needle:?} + " in: " + document.body.innerText + " " + pageState())); }}, {ms});
            }})"#,
            ms = PATIENCE.as_millis()
        );
        self.eval(&js).await;
    }

    async fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64ct::Base64::decode_vec(r["data"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_chats_with_a_telnet_user() {
    let Some(chromium) = common::find_tool("chromium") else {
        return common::missing(
            "chromium is not installed: the web page was not tested in a browser",
        );
    };
    let server = common::start(natter::config::Config {
        // Clients that speak first (HTTP) are told apart on the main port.
        // Generous: a browser on a loaded machine may open a connection
        // and send its request late (docs/PROTOCOL.md, *HTTP and WebSocket*).
        banner_delay: Duration::from_secs(1),
        ..common::config()
    })
    .await;
    let mut tess = server.user("tess").await;
    let (_browser, devtools) = launch(chromium).await;
    let (ws, _) = tokio_tungstenite::connect_async(devtools.as_str())
        .await
        .expect("DevTools");
    let mut cdp = Cdp {
        ws,
        next_id: 0,
        session: None,
        events: VecDeque::new(),
    };
    let target = cdp
        .call("Target.createTarget", json!({"url": "about:blank"}))
        .await;
    let attached = cdp
        .call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )
        .await;
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    cdp.call("Page.enable", json!({})).await;
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1000, "height": 640, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    let url = format!("http://{}/", server.addr);
    cdp.call("Page.navigate", json!({"url": url})).await;
    cdp.event("Page.loadEventFired").await;
    let loaded = cdp
        .eval("typeof pageState === 'function' && getComputedStyle(document.body).margin === '0px'")
        .await;
    assert_eq!(loaded, json!(true), "app.js and app.css were loaded");

    // Every form field has a label; the nickname field has the focus.
    let labelled = cdp
        .eval("[...document.querySelectorAll('input')].every(i => i.labels.length > 0)")
        .await;
    assert_eq!(labelled, json!(true));
    cdp.screenshot("web-page-login.png").await;
    cdp.eval("document.getElementById('nick').focus()").await;
    cdp.type_line("webby").await;
    cdp.wait_text("log", "You are webby").await;
    tess.expect("webby joined").await;
    cdp.wait_text("members", "tess").await;

    cdp.type_line("hello from the browser").await;
    assert_eq!(
        tess.expect("hello from the browser").await,
        "webby: hello from the browser"
    );
    tess.send("hi webby, from telnet").await;
    cdp.wait_text("log", "hi webby, from telnet").await;
    // A slash command goes out as its JSON command.
    cdp.type_line("/me waves").await;
    tess.expect("* webby waves").await;
    cdp.wait_text("log", "webby waves").await;
    let errors = cdp
        .eval("[...document.querySelectorAll('#log .error')].map(e => e.textContent)")
        .await;
    assert_eq!(errors, json!([]), "no refusals on the way");
    let desktop = cdp.screenshot("web-page.png").await;

    // Phone-sized, and dark.
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 700, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await;
    cdp.call(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .await;
    let fits = cdp
        .eval("document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, json!(true), "no sideways scrolling on a phone");
    let phone = cdp.screenshot("web-page-phone-dark.png").await;
    eprintln!("screenshots: {} {}", desktop.display(), phone.display());
    server.shutdown().await;
}
