//! HTTP and WebSocket on the main port and on `http_listen`: a WebSocket
//! JSON user and an IRC-over-WebSocket user chat with a telnet user;
//! /metrics parses as Prometheus text and moves; /healthz; 404; bad
//! requests and bad frames are bounded and closed.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, PATIENCE};
use futures_util::{SinkExt, StreamExt};
use natter::config::Config;
use natter::server::Server;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

struct Web {
    main: SocketAddr,
    http: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Web {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The test settings, with the web on its own port too; the main port
/// tells HTTP apart within the default first-bytes window (`banner_delay`).
fn web_config() -> Config {
    Config {
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..common::config()
    }
}

async fn start(config: Config) -> Web {
    let server = Server::bind(config).await.expect("bind");
    let (main, http) = (
        server.local_addr(),
        server.http_addr().expect("http_listen"),
    );
    let stop = CancellationToken::new();
    tokio::spawn(server.run(stop.clone()));
    Web { main, http, stop }
}

async fn telnet(addr: SocketAddr, nick: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.expect("What is your nickname?").await;
    c.send(nick).await;
    c.expect(&format!("You are now known as {nick}")).await;
    c.expect("*** In #").await;
    c
}

async fn ws_connect(addr: SocketAddr, protocol: Option<&str>) -> Ws {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_str(p).unwrap());
    }
    let (ws, resp) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake in time")
        .expect("handshake");
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(chosen.as_deref(), protocol);
    ws
}

/// The next data message's text (pings are answered by the client).
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a message in time")?;
        match msg.ok()? {
            Message::Text(t) => return Some(t.to_string()),
            Message::Binary(b) => return Some(String::from_utf8(b.to_vec()).unwrap()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// Reads JSON events until one has `type` `kind` and satisfies `pred`.
async fn expect_json(ws: &mut Ws, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut seen = Vec::new();
    loop {
        let Some(text) = next_text(ws).await else {
            panic!("closed while waiting for {kind}; saw {seen:#?}");
        };
        assert!(!text.ends_with('\n'), "one object per message, no line end");
        let v: Value = serde_json::from_str(&text).expect("one JSON object per message");
        if v["type"] == kind && pred(&v) {
            return v;
        }
        seen.push(text);
    }
}

/// Reads IRC lines until one contains `needle`.
async fn expect_irc(ws: &mut Ws, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        let Some(line) = next_text(ws).await else {
            panic!("closed while waiting for {needle:?}; saw {seen:#?}");
        };
        assert!(
            !line.contains('\r') && !line.contains('\n'),
            "no CRLF in a message: {line:?}"
        );
        if line.contains(needle) {
            return line;
        }
        seen.push(line);
    }
}

async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// One HTTP exchange on a fresh connection: what the server wrote until it
/// closed or `PATIENCE` passed.
async fn http_raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&out).into_owned()
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let resp = http_raw(addr, req.as_bytes()).await;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test]
async fn websocket_json_user_chats_with_a_telnet_user() {
    let web = start(web_config()).await;
    let mut bob = telnet(web.main, "bob").await;
    // On the main port: the first bytes are HTTP.
    let mut ws = ws_connect(web.main, None).await;
    // One welcome (the text banner's, written as JSON), then the login.
    expect_json(&mut ws, "welcome", |_| true).await;
    send_json(&mut ws, serde_json::json!({"cmd":"login","nick":"alice"})).await;
    let next = next_text(&mut ws).await.unwrap();
    let next: Value = serde_json::from_str(&next).unwrap();
    assert_eq!(next["type"], "registered", "{next}");
    assert_eq!(next["nick"], "alice");
    let presence = expect_json(&mut ws, "presence", |_| true).await;
    assert_eq!(presence["nicks"], serde_json::json!(["alice", "bob"]));
    bob.expect("alice joined").await;

    send_json(&mut ws, serde_json::json!({"cmd":"chat","msg":"hello bob"})).await;
    assert_eq!(bob.expect("hello bob").await, "alice: hello bob");
    bob.send("hi alice").await;
    let m = expect_json(&mut ws, "message", |v| v["from"] == "bob").await;
    assert_eq!(m["text"], "hi alice");

    // A message over the line limit is refused like a long line; the
    // connection stays up.
    let long = format!("{{\"cmd\":\"chat\",\"msg\":\"{}\"}}", "x".repeat(5000));
    ws.send(Message::text(long)).await.unwrap();
    let e = expect_json(&mut ws, "error", |_| true).await;
    assert_eq!(e["code"], "line_too_long");
    send_json(
        &mut ws,
        serde_json::json!({"cmd":"chat","msg":"still here"}),
    )
    .await;
    bob.expect("alice: still here").await;

    // Past ws_max_message_bytes the connection is closed (1009), and the
    // room sees alice leave.
    ws.send(Message::binary(vec![b'x'; 70 * 1024]))
        .await
        .unwrap();
    let close = loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    if let Some(frame) = close {
        assert_eq!(u16::from(frame.code), 1009);
    }
    bob.expect("alice").await;
}

#[tokio::test]
async fn irc_over_websocket_registers_and_talks() {
    let web = start(web_config()).await;
    let mut bob = telnet(web.main, "bob").await;
    for (protocol, nick) in [("text.ircv3.net", "carol"), ("binary.ircv3.net", "dave")] {
        let mut ws = ws_connect(web.http, Some(protocol)).await;
        let send = |line: String| match protocol {
            "binary.ircv3.net" => Message::binary(line.into_bytes()),
            _ => Message::text(line),
        };
        ws.send(send(format!("NICK {nick}"))).await.unwrap();
        ws.send(send(format!("USER {nick} 0 * :{nick} on the web")))
            .await
            .unwrap();
        let welcome = expect_irc(&mut ws, " 001 ").await;
        assert!(welcome.contains(nick), "{welcome}");
        ws.send(send("JOIN #lobby".into())).await.unwrap();
        expect_irc(&mut ws, " 366 ").await;
        ws.send(send(format!("PRIVMSG #lobby :hello from {nick}")))
            .await
            .unwrap();
        assert_eq!(
            bob.expect(&format!("hello from {nick}")).await,
            format!("{nick}: hello from {nick}")
        );
        bob.send(&format!("hi {nick}")).await;
        let line = expect_irc(&mut ws, &format!("hi {nick}")).await;
        assert!(line.starts_with(":bob!"), "{line}");
        assert!(line.contains("PRIVMSG #lobby :hi"), "{line}");
        // The subprotocol decides the message type.
        ws.send(send("PING :abc".into())).await.unwrap();
        let pong = loop {
            match tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if m.to_text().unwrap().contains("PONG") {
                        break m;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("no PONG: {other:?}"),
            }
        };
        assert_eq!(pong.is_binary(), protocol == "binary.ircv3.net");
    }
}

/// Parses the text exposition format strictly: every line is a comment
/// (`# HELP`/`# TYPE`/`# UNIT`/`# EOF`) or `name{labels} value`. Returns
/// the samples as `(name{labels}, value)`.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "nothing after # EOF");
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(c) = line.strip_prefix("# ") {
            let mut w = c.splitn(3, ' ');
            let kind = w.next().unwrap();
            assert!(["HELP", "TYPE", "UNIT"].contains(&kind), "{line}");
            let name = w.next().expect("a metric name");
            assert!(name.starts_with("natter_"), "{line}");
            if kind == "TYPE" {
                let t = w.next().unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "info", "unknown"].contains(&t),
                    "{line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split(',') {
                let (k, v) = pair.split_once('=').expect("label=value");
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
            }
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.push((series.to_string(), value));
    }
    assert!(eof, "ends with # EOF");
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_parse_and_move_when_messages_flow() {
    // With a database, so that store commits are measured too.
    let dir = tempfile::tempdir().unwrap();
    let web = start(Config {
        db: dir.path().join("metrics.db").display().to_string(),
        ..web_config()
    })
    .await;
    let (status, before) = get(web.http, "/metrics").await;
    assert_eq!(status, 200);
    let before = parse_metrics(&before);
    let mut bob = telnet(web.main, "bob").await;
    let mut ws = ws_connect(web.http, None).await;
    send_json(&mut ws, serde_json::json!({"cmd":"login","nick":"erin"})).await;
    expect_json(&mut ws, "registered", |_| true).await;
    for i in 0..3 {
        send_json(
            &mut ws,
            serde_json::json!({"cmd":"chat","msg":format!("line {i}")}),
        )
        .await;
        bob.expect(&format!("line {i}")).await;
    }
    // More than flood_burst (20) lines at once: flood control holds some back.
    let mut flooder = telnet(web.main, "flo").await;
    let burst: String = (0..25).map(|i| format!("f{i}\r\n")).collect();
    flooder.send_raw(burst.as_bytes()).await;
    flooder.expect("flo: f24").await;
    let (_, after) = get(web.main, "/metrics").await;
    let after = parse_metrics(&after);
    // Other tests in this process count too: at least what this one did.
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert!(moved("natter_messages_in_total") >= 3.0);
    assert!(moved("natter_deliveries_total") >= 6.0, "sent to both");
    assert!(moved("natter_registrations_total") >= 2.0);
    assert!(moved("natter_lines_in_total") >= 4.0);
    assert!(moved("natter_bytes_out_total") > 0.0);
    assert!(moved("natter_flood_delayed_total") >= 1.0);
    assert!(moved("natter_store_commit_seconds_count") >= 1.0);
    assert!(moved("natter_store_batch_facts_sum") >= 3.0);
    assert!(
        sample(
            &after,
            "natter_connections{protocol=\"json\",transport=\"ws\"}"
        ) >= 1.0
    );
    assert!(moved("natter_connections_opened_total{protocol=\"text\",transport=\"tcp\"}") >= 1.0);
    for series in [
        "natter_sendq_bytes",
        "natter_tls_handshake_failures_total",
        "natter_slow_consumers_total",
        "natter_flood_delayed_total",
    ] {
        assert!(
            after.iter().any(|(s, _)| s == series),
            "{series} is exposed"
        );
    }
}

#[tokio::test]
async fn health_page_and_not_found() {
    let web = start(web_config()).await;
    for addr in [web.main, web.http] {
        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".into()));
        assert_eq!(get(addr, "/nope").await.0, 404);
        let (status, page) = get(addr, "/").await;
        assert_eq!(status, 200);
        assert!(page.contains("<label for=\"nick\""), "{page}");
        for asset in ["/app.js", "/app.css"] {
            assert_eq!(get(addr, asset).await.0, 200, "{asset}");
        }
    }
    // HEAD: headers only.
    let head = http_raw(
        web.http,
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
    // Anything but GET/HEAD: answered, body unread, closed.
    let post = http_raw(
        web.http,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    // A telnet user on the main port is still greeted and chats.
    let mut t = telnet(web.main, "frank").await;
    t.send("/who").await;
    t.expect("frank").await;
}

#[tokio::test]
async fn bad_requests_are_bounded_and_closed() {
    let web = start(Config {
        http_header_timeout: Duration::from_millis(500),
        http_max_request_bytes: 8 * 1024,
        ..web_config()
    })
    .await;
    // Malformed.
    let bad = http_raw(web.http, b"GET / HTTP/1.1\r\nthis is not a header\r\n\r\n").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad:?}");
    // Oversized head: refused and closed, never buffered whole.
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..2000 {
        big.extend_from_slice(format!("X-Filler-{i}: aaaaaaaaaaaaaaaaaaaa\r\n").as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let mut s = TcpStream::connect(web.http).await.unwrap();
    let _ = s.write_all(&big).await; // the server may close before all is written
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut out))
        .await
        .expect("closed");
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 431"), "{out:?}");
    // Slowloris: a head that never ends is closed after the header timeout.
    let mut s = TcpStream::connect(web.http).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut out))
        .await
        .expect("the server gives up on the slow client")
        .ok();
    assert!(started.elapsed() < PATIENCE);
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 408"), "{out:?}");
    // The server goes on.
    assert_eq!(get(web.http, "/healthz").await.0, 200);
}

#[tokio::test]
async fn websocket_origins_are_checked() {
    let web = start(web_config()).await;
    let request = |origin: &str| {
        let mut req = format!("ws://{}/ws", web.http)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
        req
    };
    let foreign = tokio_tungstenite::connect_async(request("http://evil.example")).await;
    match foreign {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403)
        }
        other => panic!("a foreign origin was let in: {:?}", other.map(|_| ())),
    }
    let own = format!("http://{}", web.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(request(&own))
        .await
        .expect("the page's own origin is let in");
    expect_json(&mut ws, "welcome", |_| true).await;
}
