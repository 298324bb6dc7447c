//! TLS and the main port's first-bytes window, end to end over real
//! sockets with certificates made here (rcgen): text, JSON, IRC and HTTP
//! over TLS on the main port, IRC on the IRC-over-TLS port (`sts`, WHOIS
//! 671), each protocol's first exchange byte for byte, bad handshakes,
//! and reloading the certificate on SIGHUP (the real binary).

mod client_support;
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use natter::config::Config;
use natter::server::Server;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

/// A certificate for `localhost` written as PEM files into `dir`.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

fn make_cert(dir: &Path, name: &str) -> Cert {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    Cert {
        cert,
        key,
        der: made.cert.der().clone(),
    }
}

/// A server with TLS on (certificate `cert`), all listeners on free ports.
struct TlsServer {
    addr: SocketAddr,
    irc_addr: SocketAddr,
    irc_tls_addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn tls_config(cert: &Cert) -> Config {
    Config {
        tls_cert: Some(cert.cert.clone()),
        tls_key: Some(cert.key.clone()),
        irc_tls_listen: "127.0.0.1:0".parse().unwrap(),
        ..config()
    }
}

async fn start_tls(config: Config) -> TlsServer {
    let server = Server::bind(config).await.expect("bind");
    let (addr, irc_addr) = (server.local_addr(), server.irc_addr().expect("IRC port on"));
    let irc_tls_addr = server.irc_tls_addr().expect("IRC TLS port on");
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    TlsServer {
        addr,
        irc_addr,
        irc_tls_addr,
        stop,
        task,
    }
}

impl TlsServer {
    async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("server stops");
    }
}

/// A TLS client that trusts `der` only, for `localhost`.
fn connector(der: &CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(natter::server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_connect(addr: SocketAddr, der: &CertificateDer<'static>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(PATIENCE, connector(der).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake")
}

/// Lines over any stream.
struct Lines<S> {
    r: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Lines<S> {
    fn new(s: S) -> Self {
        Lines {
            r: BufReader::new(s),
        }
    }
    async fn send(&mut self, line: &str) {
        let w = self.r.get_mut();
        w.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        w.flush().await.unwrap();
    }
    /// The next line, raw (with its line ending); `None` at EOF.
    async fn raw(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(PATIENCE, self.r.read_until(b'\n', &mut buf))
            .await
            .expect("a line in time")
            .ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&buf).into_owned())
    }
    async fn expect(&mut self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.raw().await {
                Some(l) if strip_ansi(&l).contains(needle) => return l,
                Some(l) => seen.push(l),
                None => panic!("EOF waiting for {needle:?}; saw {seen:#?}"),
            }
        }
    }
}

/// The banner a silent plaintext telnet user is sent: its first two
/// lines, byte for byte.
async fn plain_banner(addr: SocketAddr) -> String {
    let mut c = Lines::new(TcpStream::connect(addr).await.unwrap());
    let a = c.raw().await.unwrap();
    let b = c.raw().await.unwrap();
    format!("{a}{b}")
}

#[tokio::test]
async fn text_json_and_irc_over_tls_on_the_main_port() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "a");
    let srv = start_tls(tls_config(&cert)).await;
    // The banner, byte for byte but for the online count.
    let banner = plain_banner(srv.addr).await;
    let shape = |b: &str| match b.split_once("natter! ") {
        Some((head, tail)) => {
            let rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{head}natter! N{rest}")
        }
        None => b.to_string(),
    };
    assert_eq!(
        shape(&banner),
        "\x1b[33m*** Welcome to natter! N people online.\x1b[0m\r\n\
         \x1b[33m*** What is your nickname?\x1b[0m\r\n"
    );

    // A person on a TLS terminal says nothing: the same banner, inside TLS,
    // after the window.
    let started = Instant::now();
    let mut text = Lines::new(tls_connect(srv.addr, &cert.der).await);
    let got = format!("{}{}", text.raw().await.unwrap(), text.raw().await.unwrap());
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(shape(&got), shape(&banner));
    text.send("tina").await;
    text.expect("You are now known as tina").await;
    text.expect("*** In #lobby").await;

    // A JSON client speaks first: its first byte back is `{`, never the banner.
    let mut json = Lines::new(tls_connect(srv.addr, &cert.der).await);
    json.send(r#"{"cmd":"login","nick":"jo"}"#).await;
    let first = json.raw().await.unwrap();
    assert!(first.starts_with(r#"{"type":"welcome""#), "{first:?}");
    json.expect(r#""type":"registered""#).await;

    // An IRC client on the main port, over TLS: IRC from the first byte.
    let mut irc = Lines::new(tls_connect(srv.addr, &cert.der).await);
    irc.send("NICK ivy").await;
    irc.send("USER ivy 0 * :Ivy").await;
    let first = irc.raw().await.unwrap();
    assert_eq!(
        shape(&first),
        ":natter NOTICE * :*** Welcome to natter! N people online.\r\n"
    );
    irc.expect(" 001 ivy ").await;
    irc.send("JOIN #lobby").await; // IRC users join what they ask for
    irc.expect(" 366 ivy #lobby ").await;

    // They talk across protocols; WHOIS says who is on TLS.
    irc.send("PRIVMSG #lobby :hi from irc over tls").await;
    text.expect("ivy: hi from irc over tls").await;
    irc.send("WHOIS tina").await;
    irc.expect(" 671 ivy tina :is using a secure connection")
        .await;
    let mut plain = srv_user(srv.addr, "pete").await;
    plain.send("hi from plaintext").await;
    text.expect("pete: hi from plaintext").await;
    irc.send("WHOIS pete").await;
    let mut seen = Vec::new();
    loop {
        let l = irc.raw().await.expect("WHOIS reply");
        if l.contains(" 318 ") {
            break;
        }
        seen.push(l);
    }
    assert!(
        !seen.iter().any(|l| l.contains(" 671 ")),
        "plaintext pete is not secure: {seen:#?}"
    );
    srv.shutdown().await;
}

/// A plaintext text user registered as `nick`.
async fn srv_user(addr: SocketAddr, nick: &str) -> Lines<TcpStream> {
    let mut c = Lines::new(TcpStream::connect(addr).await.unwrap());
    c.expect("What is your nickname?").await;
    c.send(nick).await;
    c.expect("*** In #").await;
    c
}

#[tokio::test]
async fn irc_on_the_tls_port_with_sts() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "a");
    let srv = start_tls(Config {
        sts_duration: Duration::from_secs(86400),
        ..tls_config(&cert)
    })
    .await;
    // The TLS port: IRC from the first byte; `sts` with its duration.
    let mut tls = Lines::new(tls_connect(srv.irc_tls_addr, &cert.der).await);
    tls.send("CAP LS 302").await;
    let notice = tls.raw().await.unwrap();
    assert!(
        notice.starts_with(":natter NOTICE * :*** Welcome"),
        "{notice:?}"
    );
    let ls = tls.raw().await.unwrap();
    assert!(ls.starts_with(":natter CAP * LS :"), "{ls:?}");
    assert!(ls.trim_end().ends_with(" sts=duration=86400"), "{ls:?}");
    // sts is not requested (spec): refused as unknown.
    tls.send("CAP REQ :sts").await;
    tls.expect("CAP * NAK :sts").await;
    tls.send("CAP END").await;
    tls.send("NICK sam").await;
    tls.send("USER sam 0 * :Sam").await;
    tls.expect(" 001 sam ").await;
    tls.send("WHOIS sam").await;
    tls.expect(" 671 sam sam :is using a secure connection")
        .await;

    // Plaintext IRC is told where to upgrade; old CAP LS hears nothing.
    let mut plain = IrcClient::connect(srv.irc_addr).await;
    plain.send("CAP LS 302").await;
    let ls = plain.expect("CAP * LS").await;
    let port = srv.irc_tls_addr.port();
    assert!(ls.ends_with(&format!(" sts=port={port}")), "{ls:?}");
    let mut old = IrcClient::connect(srv.irc_addr).await;
    old.send("CAP LS").await;
    let ls = old.expect("CAP * LS").await;
    assert!(!ls.contains("sts"), "{ls:?}");
    srv.shutdown().await;

    // Without TLS there is no sts at all.
    let srv = start(config()).await;
    let mut plain = IrcClient::connect(srv.irc_addr.unwrap()).await;
    plain.send("CAP LS 302").await;
    let ls = plain.expect("CAP * LS").await;
    assert!(!ls.contains("sts"), "{ls:?}");
    srv.shutdown().await;
}

/// Reads whatever arrives until EOF (or `PATIENCE`).
async fn read_to_end(mut s: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn each_protocol_sees_only_its_own_first_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "a");
    let srv = start_tls(tls_config(&cert)).await;

    // A silent telnet user: the banner, and only after the window.
    let started = Instant::now();
    let mut telnet = Lines::new(TcpStream::connect(srv.addr).await.unwrap());
    let first = telnet.raw().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    let welcome = "\x1b[33m*** Welcome to natter! ";
    assert!(first.starts_with(welcome), "{first:?}");
    let ask = "\x1b[33m*** What is your nickname?\x1b[0m\r\n";
    assert_eq!(telnet.raw().await.unwrap(), ask);

    // A telnet user quicker than the window: the banner, then the answer.
    let mut quick = Lines::new(TcpStream::connect(srv.addr).await.unwrap());
    quick.send("quick").await;
    assert!(quick.raw().await.unwrap().starts_with(welcome));
    assert_eq!(quick.raw().await.unwrap(), ask);
    let known = quick.raw().await.unwrap();
    assert!(
        known.starts_with("\x1b[33m*** You are now known as quick."),
        "{known:?}"
    );

    // JSON: the first byte back is `{`.
    let mut json = Lines::new(TcpStream::connect(srv.addr).await.unwrap());
    json.send(r#"{"cmd":"login","nick":"jj"}"#).await;
    let first = json.raw().await.unwrap();
    assert!(
        first.starts_with(r#"{"type":"welcome","server":"natter""#),
        "{first:?}"
    );

    // IRC: the first line back is the server's, as IRC.
    let mut irc = Lines::new(TcpStream::connect(srv.addr).await.unwrap());
    irc.send("CAP LS 302").await;
    let first = irc.raw().await.unwrap();
    assert!(
        first.starts_with(":natter NOTICE * :*** Welcome"),
        "{first:?}"
    );
    let ls = irc.raw().await.unwrap();
    assert!(ls.starts_with(":natter CAP * LS :"), "{ls:?}");

    // HTTP, plain and over TLS: an HTTP answer from the web server and
    // nothing else (it keeps connections alive: this request asks it not to).
    for (tls, path, status) in [
        (false, "/no-such-page", "404"),
        (true, "/no-such-page", "404"),
        (false, "/healthz", "200"),
        (true, "/healthz", "200"),
    ] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let answer = if tls {
            let mut s = tls_connect(srv.addr, &cert.der).await;
            s.write_all(request.as_bytes()).await.unwrap();
            read_to_end(s).await
        } else {
            let mut s = TcpStream::connect(srv.addr).await.unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            read_to_end(s).await
        };
        let answer = String::from_utf8_lossy(&answer);
        let want = format!("HTTP/1.1 {status} ");
        assert!(answer.starts_with(&want), "tls {tls} {path}: {answer:?}");
        assert!(!answer.contains("***"), "tls {tls} {path}: {answer:?}");
    }

    // A TLS client's first bytes back are a TLS handshake (checked by the
    // handshake succeeding at all), never the banner: a raw ClientHello
    // gets a TLS record, 0x16, as its first byte.
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    tcp.write_all(&client_hello()).await.unwrap();
    let mut b = [0u8; 1];
    tokio::time::timeout(PATIENCE, tcp.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b[0], 0x16, "a TLS record (ServerHello), not text");
    srv.shutdown().await;
}

/// A ClientHello as a real client sends it (taken from rustls' own
/// first flight, written into a buffer).
fn client_hello() -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(natter::server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

#[tokio::test]
async fn bad_tls_input_is_closed_and_crashes_nothing() {
    let failures =
        || natter::server::tls::HANDSHAKE_FAILURES.load(std::sync::atomic::Ordering::Relaxed);
    // A TLS client on a server with no certificate: closed, counted.
    let srv = start(config()).await;
    let before = failures();
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    tcp.write_all(&client_hello()).await.unwrap();
    assert_eq!(read_to_end(tcp).await, b"", "closed with no words");
    assert!(failures() > before);
    // The server goes on.
    srv_user(srv.addr, "still").await;
    srv.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "a");
    let srv = start_tls(Config {
        registration_timeout: Duration::from_millis(400),
        ..tls_config(&cert)
    })
    .await;
    // A handshake that stalls after its first bytes: dropped by the
    // registration timeout.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    tcp.write_all(&client_hello()[..20]).await.unwrap();
    assert_eq!(read_to_end(tcp).await, b"");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < PATIENCE, "{took:?}");
    // The same on the IRC TLS port, where the client sends nothing at all.
    let tcp = TcpStream::connect(srv.irc_tls_addr).await.unwrap();
    assert_eq!(read_to_end(tcp).await, b"");

    // Garbage after 0x16, of several shapes: each closed (maybe with an
    // alert), the server unharmed.
    let mut junk: Vec<Vec<u8>> = vec![
        vec![0x16],
        vec![0x16, 0xff, 0xff, 0xff, 0xff],
        vec![0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5],
        vec![0x16, 0x03, 0x03, 0x40, 0x00], // a record longer than allowed
    ];
    let mut x: u32 = 12345;
    junk.push(
        std::iter::once(0x16)
            .chain((0..4096).map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }))
            .collect(),
    );
    for bytes in &junk {
        let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
        tcp.write_all(bytes).await.unwrap();
        let got = read_to_end(tcp).await;
        assert!(
            got.is_empty() || got[0] == 0x15,
            "nothing, or a TLS alert: {got:?}"
        );
    }
    // Still serving TLS and plaintext.
    let mut t = Lines::new(tls_connect(srv.addr, &cert.der).await);
    t.send("after").await;
    t.expect("You are now known as after").await;
    srv_user(srv.addr, "plainafter").await;
    srv.shutdown().await;
}

/// The certificate a TLS server presents.
async fn served_cert(addr: SocketAddr, trust: &[&CertificateDer<'static>]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for der in trust {
        roots.add((*der).clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(natter::server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_connections() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a");
    let b = make_cert(dir.path(), "b");
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let (cert, key) = (served.join("cert.pem"), served.join("key.pem"));
    std::fs::copy(&a.cert, &cert).unwrap();
    std::fs::copy(&a.key, &key).unwrap();
    let natter = binary::serve(
        Path::new("off"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--irc-tls-listen",
            "off",
        ],
    );
    let trust = [&a.der, &b.der];
    assert_eq!(served_cert(natter.addr, &trust).await, a.der.to_vec());
    let mut old = Lines::new(tls_connect(natter.addr, &a.der).await);
    old.send("olduser").await;
    if tokio::time::timeout(PATIENCE / 2, old.expect("You are now known as olduser"))
        .await
        .is_err()
    {
        panic!("{:#?}", natter.log.lock().unwrap());
    }

    let hangup = |n: &binary::Natter| {
        // SAFETY: plain syscall on our own child's pid.
        let r = unsafe { libc::kill(n.child.id() as i32, libc::SIGHUP) };
        assert_eq!(r, 0);
    };
    let wait_log = |n: &binary::Natter, needle: &str, count: usize| {
        let deadline = Instant::now() + PATIENCE;
        while n
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
            < count
        {
            assert!(Instant::now() < deadline, "no {needle:?} logged");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // A broken file: the old certificate stays, and the log says why.
    std::fs::write(&cert, "garbage").unwrap();
    hangup(&natter);
    wait_log(&natter, "TLS certificate not reloaded", 1);
    assert!(natter.logged("tls_cert"));
    assert_eq!(served_cert(natter.addr, &trust).await, a.der.to_vec());

    // The new pair: new connections get it, the old one goes on.
    std::fs::copy(&b.cert, &cert).unwrap();
    std::fs::copy(&b.key, &key).unwrap();
    hangup(&natter);
    wait_log(&natter, "TLS certificate reloaded", 1);
    assert_eq!(served_cert(natter.addr, &trust).await, b.der.to_vec());
    let mut new = Lines::new(tls_connect(natter.addr, &b.der).await);
    new.send("newuser").await;
    new.expect("You are now known as newuser").await;
    old.expect("newuser joined #lobby").await;
    old.send("still here").await;
    new.expect("olduser: still here").await;
    natter.stop();
}

#[test]
fn self_signed_certificate_prints_its_fingerprint() {
    let mut child = std::process::Command::new(binary::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--irc-listen", "off"])
        .args([
            "--irc-tls-listen",
            "off",
            "--db",
            "off",
            "--tls-self-signed",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(PATIENCE).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("SHA-256"), "{line:?}");
    let fp = line.trim().rsplit(' ').next().unwrap_or_default();
    assert_eq!(fp.len(), 95, "{fp:?}");
    assert!(fp
        .split(':')
        .all(|h| h.len() == 2 && h.chars().all(|c| c.is_ascii_hexdigit())));
}

/// `natter chat` over TLS: JSON with `tls://` and `--ca`, IRC with
/// `ircs://`, a certificate nobody vouches for refused, `--insecure` warned.
#[test]
fn natter_chat_over_tls() {
    use client_support::Chat;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "a");
    let other = make_cert(dir.path(), "other");
    let srv = rt.block_on(start_tls(tls_config(&cert)));
    let ca = cert.cert.to_str().unwrap();
    let main = format!("tls://localhost:{}", srv.addr.port());

    let mut json = Chat::spawn(&[&main, "--ca", ca, "--nick", "carl"]);
    json.expect("you are now known as carl");
    let mut irc = Chat::spawn(&[
        "--irc",
        &format!("ircs://localhost:{}", srv.irc_tls_addr.port()),
        "--ca",
        ca,
        "--nick",
        "ircy",
        "--join",
        "#lobby",
    ]);
    irc.expect("you are now known as ircy");
    json.expect("ircy joined #lobby");
    irc.send("hello over ircs");
    json.expect("<ircy> hello over ircs");
    json.send("/quit");
    json.wait();
    irc.send("/quit");
    irc.wait();

    // A CA that did not sign the server's certificate: no connection.
    let mut wrong = Chat::spawn(&[
        &main,
        "--ca",
        other.cert.to_str().unwrap(),
        "--nick",
        "wrong",
        "--no-reconnect",
    ]);
    wrong.expect("TLS handshake failed");
    assert!(!wrong.wait().success());

    // --insecure connects, and says loudly what it gives up.
    let mut loose = Chat::spawn(&[&main, "--insecure", "--nick", "loose"]);
    loose.expect("you are now known as loose");
    loose.send("/quit");
    loose.wait();
    let err = loose.stderr().join("\n");
    assert!(err.contains("WARNING: --insecure"), "{err}");
    rt.block_on(srv.shutdown());
}

/// A real IRC client library over TLS: jaraco/irc with Python's `ssl`
/// (tests/irc/jaraco_tls.py) on the IRC TLS port, talking with a plaintext
/// text user. Needs python with the `irc` package (`NATTER_PYTHON`; see
/// tests/irc_jaraco.rs): missing, it fails under CI and is skipped loudly
/// elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaraco_irc_client_over_tls() {
    let python = common::python();
    let has_irc = std::process::Command::new(&python)
        .args(["-c", "import irc.client, ssl"])
        .output();
    if !has_irc.as_ref().is_ok_and(|o| o.status.success()) {
        missing(&format!(
            "jaraco_irc_client_over_tls did not run: {} cannot import irc.client \
             (python3 -m venv .venv-ci && .venv-ci/bin/pip install irc==20.5.0, \
             then NATTER_PYTHON=.venv-ci/bin/python cargo test)",
            python.display()
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "a");
    let srv = start_tls(tls_config(&cert)).await;
    let mut bob = srv_user(srv.addr, "textbob").await;
    let child = std::process::Command::new(&python)
        .arg("tests/irc/jaraco_tls.py")
        .arg(srv.irc_tls_addr.to_string())
        .arg(&cert.cert)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    let script = tokio::task::spawn_blocking(move || child.wait_with_output());
    bob.expect("pytls: hello over tls").await;
    bob.send("hello back").await;
    let out = tokio::time::timeout(Duration::from_secs(40), script)
        .await
        .expect("the script finishes")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("OK"),
        "jaraco over TLS failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    srv.shutdown().await;
}

/// A TLS reader that falls behind: what the socket does not take stays
/// encrypted in rustls' buffer and must still go out (the transport's
/// `flushed`), in order, once the reader reads again.
#[tokio::test]
async fn a_tls_reader_that_falls_behind_gets_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "a");
    let srv = start_tls(Config {
        flood_rate: 0,
        sendq: 4 * 1024 * 1024,
        socket_sendbuf: 4096,
        ..tls_config(&cert)
    })
    .await;
    let mut slow = Lines::new(tls_connect(srv.addr, &cert.der).await);
    slow.send("slow").await;
    slow.expect("*** In #lobby").await;
    // An IRC talker: IRC users get no echo of their own lines, so the
    // talker never has output of its own to read.
    let mut talker = IrcClient::register_lobby(srv.irc_addr, "talker").await;
    slow.expect("talker joined").await;
    // ~630 KiB while `slow` reads nothing: more than the socket buffers hold.
    let pad = "x".repeat(400);
    for i in 0..1500 {
        talker.send(&format!("PRIVMSG #lobby :{i:04} {pad}")).await;
    }
    talker.send("PRIVMSG #lobby :done").await;
    for i in 0..1500 {
        let line = strip_ansi(&slow.expect("talker: ").await);
        assert!(line.contains(&format!("talker: {i:04} ")), "{i}: {line}");
    }
    slow.expect("talker: done").await;
    srv.shutdown().await;
}
