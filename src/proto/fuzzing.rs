//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by the
//! deterministic random-input tests below (which run in `cargo test` on
//! stable). Each takes arbitrary bytes, must never panic, and checks the
//! decoder's invariants.

use super::irc::{self, decode::Input, parse::MAX_BODY};
use super::line::{LineDecoder, LineError};
use super::{json, Event};

/// Feeds `data` to an IRC session's line decoder in two pieces, then
/// decodes every line as IRC and renders what a decoded line could echo.
pub fn irc_decode(data: &[u8]) {
    let mut dec = LineDecoder::new(irc::parse::MAX_LINE);
    dec.without_telnet();
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut lines = Vec::new();
    dec.feed(&data[..split], |l| lines.push(l));
    dec.feed(&data[split..], |l| lines.push(l));
    assert!(dec.pending() <= irc::parse::MAX_LINE + 1);
    // Also the whole input as one line, as a parser sees it (a session's
    // lines never hold a line break).
    if let Ok(s) = std::str::from_utf8(data) {
        if !s.contains(['\r', '\n']) {
            lines.push(Ok(s.to_string()));
        }
    }
    for line in lines.into_iter().flatten() {
        if let Ok(m) = irc::parse::parse(&line) {
            assert!(!m.verb.is_empty());
            assert!(!m.verb.contains(' '));
            let _ = m.tags();
        }
        if let Input::Steps(steps) = irc::decode::decode_line(&line) {
            for step in steps {
                if let irc::decode::Step::Hub(cmd) = step {
                    check_rendered(cmd);
                }
            }
        }
    }
}

/// Renders the message a decoded command would become, checking that
/// every IRC line stays within 512 bytes and has no stray line breaks.
fn check_rendered(cmd: super::Command) {
    let (room, text, action) = match cmd {
        super::Command::Say { room, text, action } => (room, text, action),
        _ => return,
    };
    // The hub only lets valid room names and non-empty text through.
    let Some(room) = room
        .as_deref()
        .and_then(|r| crate::hub::names::check_room(r, 50).ok())
    else {
        return;
    };
    if text.trim().is_empty() {
        return;
    }
    let mut ev = Event::new(super::EventBody::Message {
        id: super::MsgId(1),
        seq: 1,
        room: room.into(),
        from: "nick".into(),
        text: text.into(),
        action,
    });
    ev.source = Some("nick!~user@host".into());
    let mut out = Vec::new();
    irc::render::shared(&ev, true, &mut out);
    let out = String::from_utf8(out).expect("rendering keeps UTF-8");
    for l in out.split_terminator("\r\n") {
        assert!(!l.contains('\n') && !l.contains('\r'));
        let body = l.split_once(' ').map_or(l, |(_, b)| b);
        assert!(body.len() <= MAX_BODY, "{} bytes", body.len());
    }
}

/// Feeds `data` in pieces of varying size to a text-protocol line decoder
/// and to one set up as the chat client's (no telnet, lossy UTF-8, a last
/// line at the end); checks that lines respect the limit and the buffers
/// stay bounded.
pub fn line_decoder(data: &[u8]) {
    const MAX: usize = 64;
    let mut dec = LineDecoder::new(MAX);
    let mut client = LineDecoder::new(MAX);
    client.without_telnet();
    client.lossy_utf8();
    let check_client = |l: Result<String, LineError>| match l {
        // Lossy: each bad byte may become a 3-byte U+FFFD.
        Ok(s) => assert!(s.len() <= 3 * (MAX + 1) && !s.contains('\n')),
        Err(e) => assert_eq!(e, LineError::TooLong { max: MAX }),
    };
    let mut rest = data;
    let mut step = 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        dec.feed(&rest[..n], |l| match l {
            Ok(s) => assert!(s.len() <= MAX && !s.contains('\n')),
            Err(LineError::TooLong { max }) => assert_eq!(max, MAX),
            Err(LineError::InvalidUtf8) => {}
        });
        assert!(dec.pending() <= MAX + 1);
        client.feed(&rest[..n], check_client);
        assert!(client.pending() <= MAX + 1);
        rest = &rest[n..];
        step = step % 7 + 1;
    }
    client.end(check_client);
    assert_eq!(client.pending(), 0);
}

/// Feeds `data` to a connection's framer (lines or JSON values, picked by
/// the first byte) in pieces of varying size and all at once: the items
/// must be the same however the bytes were cut, within the limit, never
/// hold a line break, and the buffers stay bounded. Each item is then
/// parsed as a JSON command.
pub fn json_stream(data: &[u8]) {
    use super::framer::Framer;
    const MAX: usize = 64;
    let check = |l: &Result<String, LineError>| match l {
        Ok(s) => assert!(s.len() <= MAX && !s.contains('\n'), "{s:?}"),
        Err(LineError::TooLong { max }) => assert_eq!(*max, MAX),
        Err(LineError::InvalidUtf8) => {}
    };
    let mut whole = Framer::new(MAX, true);
    let mut expected = Vec::new();
    whole.feed(data, |l| expected.push(l));
    let mut cut = Framer::new(MAX, true);
    let mut got = Vec::new();
    let (mut rest, mut step) = (data, 1);
    while !rest.is_empty() {
        let n = step.min(rest.len());
        cut.feed(&rest[..n], |l| got.push(l));
        assert!(cut.pending() <= 2 * (MAX + 1), "{} held", cut.pending());
        rest = &rest[n..];
        step = step % 7 + 1;
    }
    assert_eq!(got, expected);
    assert_eq!(cut.is_json(), whole.is_json());
    for item in &got {
        check(item);
        if let Ok(s) = item {
            let _ = json::parse(s);
        }
    }
}

/// Feeds the lines of `data` to a SASL exchange as `AUTHENTICATE`
/// parameters, answering its questions as the server would (one account,
/// logins alternately accepted and refused), and to the SCRAM parsers;
/// must not panic, and every `AUTHENTICATE` it sends stays within 400 bytes.
pub fn sasl(data: &[u8]) {
    use super::irc::sasl::{Sasl, CHUNK};
    use super::irc::Reply;
    use super::{scram, AccountEvent, AccountRequest, ErrorCode, EventBody, Refusal};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let credentials = std::sync::Arc::new(scram::derive(b"pw", b"salt", 1));
    let mut sasl = Sasl::default();
    let check = |replies: &[Reply]| {
        for r in replies {
            if let Reply::Authenticate(d) = r {
                assert!(!d.is_empty() && d.len() <= CHUNK, "{} bytes", d.len());
            }
        }
    };
    for (i, line) in text.split('\n').enumerate() {
        if let Ok(first) = scram::parse_client_first(line) {
            let server_first = scram::server_first(&first, "nonce", &credentials);
            let _ = scram::verify_client_final(line, &first, &server_first, &credentials);
        }
        let step = sasl.authenticate(line.trim_end_matches('\r'));
        check(&step.replies);
        let answer = match step.ask {
            Some(AccountRequest::ScramLookup { account }) => {
                EventBody::Account(AccountEvent::Challenge {
                    account: account.into(),
                    credentials: credentials.clone(),
                })
            }
            Some(_) if i % 2 == 0 => EventBody::Account(AccountEvent::LoggedIn {
                account: "a".into(),
                nick: None,
                created: false,
            }),
            Some(_) => EventBody::Refused(Refusal::new(ErrorCode::AuthFailed)),
            None => continue,
        };
        if let Some(replies) = sasl.answer(&answer) {
            check(&replies);
        }
    }
}

/// Parses `data` as a JSON-lines command; must not panic.
pub fn json_parse(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = json::parse(s);
        let _ = json::wire::parse_event(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    const SEEDS: &[&str] = &[
        "PRIVMSG #lobby :hello",
        "@time=x;+typing=active :src PRIVMSG #a,b :\x01ACTION waves\x01",
        "JOIN #a,#b key1,key2",
        "MODE #r +ntklob-v key 10 bob *!*@x carol",
        "CAP REQ :server-time echo-message",
        "{\"cmd\":\"chat\",\"msg\":\"hi\",\"room\":\"r\"}",
        "{\"cmd\":\"login\",\"nick\":\"\\u00e9\"}",
        "{\"cmd\":\"login\",\"msg\":\"hello\",\"nick\":\"a\"}{\"cmd\":\"chat\",\"msg\":\"}{\\\"[\"} [1,{}]\n{\"cmd\":\"keep\"}",
        "\u{ff}\u{fb}\u{1}hello\r\n",
        "KICK #r bob,carol :bye now",
        "NOTICE #r :\x0304,12colour",
        "SCRAM-SHA-256\nbiwsbj1hLHI9Yg==\n+",
        "PLAIN\nAGFsaWNlAHB3\n*",
        "n,,n=a=2Cb,r=xyz\nc=biws,r=xyznonce,p=AAAA",
    ];

    /// Random bytes, and mutations of realistic lines, through every target.
    #[test]
    fn decoders_survive_random_input() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..4000 {
            let data: Vec<u8> = if i % 2 == 0 {
                let len = (rng.next() % 700) as usize;
                (0..len)
                    .map(|_| match rng.next() % 8 {
                        0 => b' ',
                        1 => b':',
                        2 => b'\n',
                        3 => b'\x01',
                        _ => rng.next() as u8,
                    })
                    .collect()
            } else {
                let mut d = SEEDS[i % SEEDS.len()].as_bytes().to_vec();
                for _ in 0..(rng.next() % 6) {
                    let pos = (rng.next() as usize) % (d.len() + 1);
                    match rng.next() % 3 {
                        0 => d.insert(pos, rng.next() as u8),
                        1 if pos < d.len() => {
                            d.remove(pos);
                        }
                        _ => {
                            let n = (rng.next() % 600) as usize;
                            d.splice(pos..pos, std::iter::repeat_n(b'x', n));
                        }
                    }
                }
                d
            };
            irc_decode(&data);
            line_decoder(&data);
            json_parse(&data);
            json_stream(&data);
            sasl(&data);
        }
    }
}
