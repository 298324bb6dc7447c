//! The HTTP routes and the pure checks behind them: which answer a request
//! gets, the WebSocket handshake (RFC 6455, with the IRCv3 subprotocols)
//! and the origin rule.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::{ws, Upgrade, WebContext};
use crate::metrics::{metrics, HttpLabels};

type Answer = Response<Full<Bytes>>;

/// The page's files, in the binary.
const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const APP_CSS: &str = include_str!("page/app.css");

/// What the page may load: its own files and a WebSocket to this host.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The answer to one request (a `/ws` handshake hands its connection over
/// through `upgrades`).
pub(super) fn route(
    mut req: Request<Incoming>,
    ctx: &WebContext,
    upgrades: &mpsc::Sender<Upgrade>,
) -> Answer {
    let (name, answer) = if req.method() != Method::GET && req.method() != Method::HEAD {
        // Bodies are never read: answer and close.
        let mut a = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        a.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        a.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        ("other", a)
    } else {
        match req.uri().path() {
            "/" => ("page", file(INDEX_HTML, "text/html; charset=utf-8")),
            "/app.js" => ("page", file(APP_JS, "text/javascript; charset=utf-8")),
            "/app.css" => ("page", file(APP_CSS, "text/css; charset=utf-8")),
            "/healthz" => ("healthz", health(ctx.shared.shutdown.is_cancelled())),
            "/metrics" => {
                ctx.shared.record_queue_depths();
                let mut a = Response::new(Full::new(Bytes::from(metrics().encode())));
                a.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                ("metrics", a)
            }
            "/ws" => {
                let origins = &ctx.shared.config.ws_origins;
                let answer = match handshake(req.headers(), origins) {
                    Ok(h) => {
                        let on = hyper::upgrade::on(&mut req);
                        // One upgrade per connection: the channel holds one.
                        match upgrades.try_send(Upgrade { on, mode: h.mode }) {
                            Ok(()) => h.response(),
                            Err(_) => {
                                plain(StatusCode::BAD_REQUEST, "one WebSocket per connection\n")
                            }
                        }
                    }
                    Err(refused) => refused.answer(),
                };
                ("ws", answer)
            }
            _ => ("other", plain(StatusCode::NOT_FOUND, "not found\n")),
        }
    };
    let labels = HttpLabels {
        route: name,
        status: answer.status().as_u16(),
    };
    metrics().http_responses.get_or_create(&labels).inc();
    answer
}

fn plain(status: StatusCode, body: &'static str) -> Answer {
    let mut a = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *a.status_mut() = status;
    a.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    a
}

fn file(body: &'static str, content_type: &'static str) -> Answer {
    let mut a = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = a.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    a
}

/// `/healthz`: 200 while accepting, 503 once shutting down.
fn health(shutting_down: bool) -> Answer {
    match shutting_down {
        false => plain(StatusCode::OK, "ok\n"),
        true => plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

/// An accepted WebSocket handshake.
#[derive(Debug, PartialEq, Eq)]
struct Handshake {
    accept: String,
    mode: ws::Mode,
    protocol: Option<&'static str>,
}

impl Handshake {
    fn response(&self) -> Answer {
        let mut a = Response::new(Full::new(Bytes::new()));
        *a.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = a.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&self.accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(p) = self.protocol {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        a
    }
}

/// Whether a header's comma-separated tokens include `token` (any case).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A refused WebSocket handshake: the status and why.
#[derive(Debug, PartialEq, Eq)]
struct Refused(StatusCode, &'static str);

impl Refused {
    fn answer(&self) -> Answer {
        let mut a = plain(self.0, self.1);
        if self.0 == StatusCode::UPGRADE_REQUIRED {
            a.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        a
    }
}

/// Checks a WebSocket handshake request.
fn handshake(headers: &HeaderMap, origins: &str) -> Result<Handshake, Refused> {
    if !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "this is a WebSocket endpoint: send Upgrade: websocket\n",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Refused(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket version 13 only\n",
        ));
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| !k.is_empty())
    else {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key is missing\n",
        ));
    };
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let origin = header_str(header::ORIGIN);
    let host = header_str(header::HOST);
    if !origin_allowed(origin, host, origins) {
        return Err(Refused(
            StatusCode::FORBIDDEN,
            "this origin may not open WebSockets here (ws_origins)\n",
        ));
    }
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let (mode, protocol) = ws::Mode::choose(&offered);
    Ok(Handshake {
        accept: derive_accept_key(key.as_bytes()),
        mode,
        protocol,
    })
}

/// The origin rule: no `Origin` (not a browser) is allowed; otherwise
/// one entry of `allowed` must match: `*` any origin, `self` the page's own
/// host (the origin's `host[:port]` equals the `Host` header), or the
/// origin itself.
fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &str) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/');
    let same_host = || {
        // "null" and other opaque origins have no host.
        origin.split_once("://").is_some_and(|(_, authority)| {
            host.is_some_and(|h| h.trim().eq_ignore_ascii_case(authority))
        })
    };
    allowed
        .split(',')
        .map(|a| a.trim().trim_end_matches('/'))
        .any(|a| match a {
            "*" => true,
            "self" => same_host(),
            a => !a.is_empty() && a.eq_ignore_ascii_case(origin),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("host", "chat.example:7777"),
    ];

    #[test]
    fn the_rfc_example_handshake_is_accepted() {
        let h = handshake(&request(GOOD), "self").unwrap();
        // RFC 6455 section 1.3.
        assert_eq!(h.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!((h.mode, h.protocol), (ws::Mode::Json, None));
        let mut irc = GOOD.to_vec();
        irc.push(("sec-websocket-protocol", "text.ircv3.net"));
        let h = handshake(&request(&irc), "self").unwrap();
        assert_eq!(h.protocol, Some("text.ircv3.net"));
        assert_eq!(h.response().status(), StatusCode::SWITCHING_PROTOCOLS);
    }

    #[test]
    fn bad_handshakes_are_refused() {
        let without = |name: &str| -> Vec<(&'static str, &'static str)> {
            GOOD.iter().copied().filter(|(k, _)| *k != name).collect()
        };
        for (name, status) in [
            ("upgrade", StatusCode::BAD_REQUEST),
            ("sec-websocket-version", StatusCode::UPGRADE_REQUIRED),
            ("sec-websocket-key", StatusCode::BAD_REQUEST),
        ] {
            let refused = handshake(&request(&without(name)), "self").unwrap_err();
            assert_eq!(refused.0, status, "without {name}");
        }
        let mut foreign = GOOD.to_vec();
        foreign.push(("origin", "https://evil.example"));
        let refused = handshake(&request(&foreign), "self").unwrap_err();
        assert_eq!(refused.0, StatusCode::FORBIDDEN);
        let old = Refused(StatusCode::UPGRADE_REQUIRED, "").answer();
        assert_eq!(old.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }

    #[test]
    fn origins() {
        let host = Some("chat.example:7777");
        assert!(origin_allowed(None, host, "self"));
        assert!(origin_allowed(
            Some("http://chat.example:7777"),
            host,
            "self"
        ));
        assert!(origin_allowed(
            Some("https://CHAT.example:7777/"),
            host,
            "self"
        ));
        assert!(!origin_allowed(
            Some("http://chat.example:8888"),
            host,
            "self"
        ));
        assert!(!origin_allowed(Some("null"), host, "self"));
        assert!(!origin_allowed(
            Some("http://chat.example:7777"),
            None,
            "self"
        ));
        assert!(origin_allowed(Some("http://x.example"), host, "*"));
        let list = "https://a.example, https://b.example";
        assert!(origin_allowed(Some("https://b.example"), host, list));
        assert!(!origin_allowed(
            Some("http://chat.example:7777"),
            host,
            list
        ));
        assert!(origin_allowed(
            Some("http://chat.example:7777"),
            host,
            "self,https://a.example"
        ));
        assert!(!origin_allowed(Some("http://x.example"), host, ""));
    }

    #[test]
    fn health_follows_shutdown() {
        assert_eq!(health(false).status(), StatusCode::OK);
        assert_eq!(health(true).status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
