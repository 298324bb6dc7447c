//! Room history from a real SQLite file, over real sockets, in every
//! protocol: text replay on joining and `/history`, the JSON `history`
//! command (before/after by id or time, `more`, the cap on limits), IRC
//! `CHATHISTORY` with every selector in a `batch` with `msgid` and `time`
//! tags; bad requests; and a restart that keeps history, ids and order.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use common::*;
use natter::config::Config;
use serde_json::json;

/// The test settings on a database file, without flood control.
fn on_db(db: &Path) -> Config {
    Config {
        db: db.to_str().unwrap().into(),
        flood_rate: 0,
        ..config()
    }
}

/// One message as JSON clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Said {
    id: String,
    seq: u64,
    text: String,
    ts: u64,
}

/// Says `texts` as `j` in its current room, each after the previous one's
/// echo; returns them as stored.
async fn say_all(j: &mut JsonClient, texts: impl IntoIterator<Item = String>) -> Vec<Said> {
    let mut said = Vec::new();
    for text in texts {
        j.send(Cmd::chat(text.clone())).await;
        loop {
            let line = j.c.line().await.expect("echo");
            let Some(s) = natter::proto::json::wire::parse_event(&line) else {
                continue;
            };
            if let Event::Message {
                id, seq, text: t, ..
            } = s.event
            {
                if t == text {
                    said.push(Said {
                        id: id.into(),
                        seq,
                        text,
                        ts: s.ts,
                    });
                    break;
                }
            }
        }
    }
    said
}

/// Sends a JSON history request; returns the texts, `more`, and every
/// message as [`Said`].
async fn history(j: &mut JsonClient, request: serde_json::Value) -> (Vec<Said>, bool) {
    j.send(request).await;
    let (messages, more) =
        expect_event!(j, Event::History { messages, more, replay: false, .. } => (messages, more))
            .await;
    let said = messages
        .into_iter()
        .map(|m| match m.event {
            Event::Message { id, seq, text, .. } => Said {
                id: id.into(),
                seq,
                text: text.into(),
                ts: m.ts,
            },
            other => panic!("not a message: {other:?}"),
        })
        .collect();
    (said, more)
}

fn texts(said: &[Said]) -> Vec<&str> {
    said.iter().map(|s| s.text.as_str()).collect()
}

fn numbered(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|n| format!("{prefix} {n}")).collect()
}

#[tokio::test]
async fn a_restart_keeps_history_ids_and_each_rooms_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("natter.db");
    let srv = start(on_db(&db)).await;
    let mut a = JsonClient::login(srv.addr, "alice").await;
    let lobby = say_all(&mut a, numbered("lobby", 1..=3)).await;
    a.send(json!({"cmd": "join", "room": "side"})).await;
    expect_event!(a, Event::Presence { room, .. } if room == "side").await;
    let side = say_all(&mut a, numbered("side", 1..=2)).await;
    drop(a);
    srv.shutdown().await;

    let srv = start(on_db(&db)).await;
    let mut b = JsonClient::connect(srv.addr).await;
    b.send(Cmd::Login { nick: "bob".into() }).await;
    // The replay on joining: the lines from before the restart, as they were.
    let (messages, replay) =
        expect_event!(b, Event::History { messages, replay, .. } => (messages, replay)).await;
    assert!(replay, "shown on joining, not asked for");
    let replayed: Vec<(String, u64, String)> = messages
        .into_iter()
        .map(|m| match m.event {
            Event::Message { id, seq, text, .. } => (id.into(), seq, text.into()),
            other => panic!("{other:?}"),
        })
        .collect();
    let before: Vec<(String, u64, String)> = lobby
        .iter()
        .map(|s| (s.id.clone(), s.seq, s.text.clone()))
        .collect();
    assert_eq!(replayed, before);
    let (got, more) = history(&mut b, json!({"cmd": "history", "limit": 10})).await;
    assert_eq!(
        got.iter().map(|s| &s.id).collect::<Vec<_>>(),
        lobby.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
    assert!(!more);
    // Each room's order goes on where it stopped (bob's join counted too).
    let next = say_all(&mut b, ["lobby again".to_string()]).await;
    assert!(next[0].seq > lobby[2].seq, "{next:?} after {lobby:?}");
    assert!(next[0].id > lobby[2].id, "ids keep increasing");
    b.send(json!({"cmd": "join", "room": "SIDE"})).await;
    let replayed = expect_event!(b, Event::History { messages, .. } => messages).await;
    assert_eq!(replayed.len(), 2, "side's lines, found under another case");
    let next = say_all(&mut b, ["side again".to_string()]).await;
    assert!(next[0].seq > side[1].seq, "{next:?} after {side:?}");
    srv.shutdown().await;
}

/// A join into a room that never had a message is answered an empty
/// replay at once, with no store read (`natter_history_unread_total`);
/// once a line is said there, a join replays it, also after the room
/// emptied and came back, and the messages-only history of an emptied
/// room that had only joins and parts is still answered (empty).
#[tokio::test]
async fn a_room_that_never_had_a_message_replays_nothing_without_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(on_db(&dir.path().join("natter.db"))).await;
    let unread = || metric(srv.addr, "natter_history_unread_total");
    let before = unread().await;
    let mut a = JsonClient::login(srv.addr, "alice").await;
    let (room, messages, replay) =
        expect_event!(a, Event::History { room, messages, replay, .. } => (room, messages, replay))
            .await;
    assert_eq!((room.as_ref(), messages.len(), replay), ("lobby", 0, true));
    a.send(json!({"cmd": "join", "room": "quiet"})).await;
    let (room, messages, more) =
        expect_event!(a, Event::History { room, messages, more, .. } => (room, messages, more))
            .await;
    assert_eq!((room.as_ref(), messages.len(), more), ("quiet", 0, false));
    // Other tests' servers share the counter, and count only upwards.
    assert!(unread().await >= before + 2.0, "both joins answered unread");
    // Asked, in a room with joins and parts but no message: the same.
    let (got, more) = history(&mut a, json!({"cmd": "history", "room": "quiet"})).await;
    assert!(got.is_empty() && !more, "{got:?}");
    // A line, then the room empties and comes back: its line is replayed.
    say_all(&mut a, ["said in quiet".to_string()]).await;
    a.send(json!({"cmd": "part", "room": "quiet"})).await;
    expect_event!(a, Event::Left { room, .. } if room == "quiet").await;
    let mut b = JsonClient::login(srv.addr, "bob").await;
    b.send(json!({"cmd": "join", "room": "quiet"})).await;
    let messages =
        expect_event!(b, Event::History { room, messages, .. } if room == "quiet" => messages)
            .await;
    let texts: Vec<String> = messages
        .into_iter()
        .map(|m| match m.event {
            Event::Message { text, .. } => text.into(),
            other => panic!("not a message: {other:?}"),
        })
        .collect();
    assert_eq!(texts, ["said in quiet"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn text_users_see_a_replay_on_joining_and_ask_for_more() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(on_db(&dir.path().join("natter.db"))).await;
    let mut a = srv.user("alice").await;
    for n in 1..=15 {
        a.send(&format!("line {n}")).await;
        a.expect(&format!("alice: line {n}")).await;
    }
    let mut b = srv.client().await;
    b.expect("What is your nickname?").await;
    b.send("bob").await;
    b.expect("*** History of #lobby:").await;
    // The last 10 lines (history_on_join), each with its time, then the end.
    for n in 6..=15 {
        let l = b.line().await.unwrap();
        assert!(
            l.starts_with('[') && l.ends_with(&format!("] alice: line {n}")),
            "{l}"
        );
    }
    assert_eq!(
        b.line().await.unwrap(),
        "*** End of history (/history 50 shows more)"
    );
    b.send("/history 3").await;
    b.expect("*** History of #lobby:").await;
    for n in 13..=15 {
        assert!(b
            .line()
            .await
            .unwrap()
            .ends_with(&format!("alice: line {n}")));
    }
    b.expect("*** End of history (/history 50 shows more)")
        .await;
    b.send("/history").await;
    b.expect("*** History of #lobby:").await;
    for n in 1..=15 {
        assert!(b
            .line()
            .await
            .unwrap()
            .ends_with(&format!("alice: line {n}")));
    }
    assert_eq!(b.line().await.unwrap(), "*** End of history");
    // Joining the room one is in again replays nothing (the next history
    // is the answer to /history 1, asked after it).
    b.send("/join lobby").await;
    b.send("/history 1").await;
    b.expect("*** History of #lobby:").await;
    assert!(b.line().await.unwrap().ends_with("alice: line 15"));
    assert_eq!(
        b.line().await.unwrap(),
        "*** End of history (/history 50 shows more)"
    );
    // A new room has none; bad counts are refused and the session goes on.
    b.send("/join quiet").await;
    b.expect("*** In #quiet").await;
    b.send("/history").await;
    b.expect("*** No history in #quiet").await;
    for bad in ["/history 0", "/history lots", "/history -2"] {
        b.send(bad).await;
        b.expect("usage: /history [LINES]").await;
    }
    b.send("still here").await;
    b.expect("bob: still here").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn json_history_pages_by_id_and_time_and_caps_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        history_max_lines: 5,
        ..on_db(&dir.path().join("natter.db"))
    };
    let srv = start(config).await;
    let mut a = JsonClient::login(srv.addr, "alice").await;
    let s = say_all(&mut a, numbered("m", 1..=12)).await;
    let t = |range: std::ops::RangeInclusive<usize>| -> Vec<&str> {
        range.map(|i| s[i - 1].text.as_str()).collect()
    };

    // Newest first page, capped at history_max_lines whatever the limit.
    let (page, more) = history(&mut a, json!({"cmd": "history", "limit": 1_000_000})).await;
    assert_eq!((texts(&page), more), (t(8..=12), true));
    assert_eq!(page, s[7..].to_vec(), "same ids, seqs and times as live");
    let (page, more) = history(&mut a, json!({"cmd": "history", "limit": 2})).await;
    assert_eq!((texts(&page), more), (t(11..=12), true));
    // Older pages with `before` (an id); `more` turns false at the start.
    let (page, more) = history(
        &mut a,
        json!({"cmd": "history", "limit": 3, "before": s[7].id}),
    )
    .await;
    assert_eq!((texts(&page), more), (t(5..=7), true));
    let (page, more) = history(
        &mut a,
        json!({"cmd": "history", "limit": 5, "before": s[4].id}),
    )
    .await;
    assert_eq!((texts(&page), more), (t(1..=4), false));
    // Newer pages with `after`.
    let (page, more) = history(
        &mut a,
        json!({"cmd": "history", "limit": 3, "after": s[7].id}),
    )
    .await;
    assert_eq!((texts(&page), more), (t(9..=11), true));
    let (page, more) = history(
        &mut a,
        json!({"cmd": "history", "limit": 3, "after": s[9].id}),
    )
    .await;
    assert_eq!((texts(&page), more), (t(11..=12), false));
    // Both: the lines strictly between.
    let (page, more) = history(
        &mut a,
        json!({"cmd": "history", "after": s[2].id, "before": s[6].id}),
    )
    .await;
    assert_eq!((texts(&page), more), (t(4..=6), false));
    // Times in ms: before the first line there is nothing; after a time
    // before it, the oldest lines.
    let first_ts = s[0].ts;
    let (page, more) = history(&mut a, json!({"cmd": "history", "before": first_ts - 1})).await;
    assert_eq!((page.len(), more), (0, false));
    let (page, _) = history(
        &mut a,
        json!({"cmd": "history", "limit": 2, "after": first_ts - 1}),
    )
    .await;
    assert_eq!(texts(&page), t(1..=2));
    let later = s[11].ts + 60_000;
    let (page, more) = history(
        &mut a,
        json!({"cmd": "history", "limit": 2, "before": later}),
    )
    .await;
    assert_eq!((texts(&page), more), (t(11..=12), true));
    // By room name, in any case.
    let (page, _) = history(
        &mut a,
        json!({"cmd": "history", "room": "LOBBY", "limit": 1}),
    )
    .await;
    assert_eq!(texts(&page), t(12..=12));
    srv.shutdown().await;
}

#[tokio::test]
async fn json_history_refuses_what_it_cannot_answer_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(on_db(&dir.path().join("natter.db"))).await;
    let mut a = JsonClient::login(srv.addr, "alice").await;
    let mut b = JsonClient::login(srv.addr, "bob").await;
    b.send(json!({"cmd": "join", "room": "secret"})).await;
    expect_event!(b, Event::Presence { room, .. } if room == "secret").await;
    say_all(&mut b, ["hidden".to_string()]).await;

    // A room alice is not in, and one that does not exist: not_in_room
    // for both (history does not tell who has which room).
    for room in ["secret", "nowhere"] {
        a.send(json!({"cmd": "history", "room": room})).await;
        let (code, about) = expect_event!(a, Event::Error { code, room, .. } => (code, room)).await;
        assert_eq!((&*code, about.as_deref()), ("not_in_room", Some(room)));
    }
    for bad in [
        json!({"cmd": "history", "before": "not-an-id"}),
        json!({"cmd": "history", "after": true}),
        json!({"cmd": "history", "before": -5}),
        json!({"cmd": "history", "limit": "ten"}),
        json!({"cmd": "history", "limit": 0}),
        json!({"cmd": "history", "room": 7}),
    ] {
        a.send(bad.clone()).await;
        assert_eq!(a.expect_error().await, "bad_arguments", "{bad}");
    }
    // Before logging in, there is no room to read.
    let mut c = JsonClient::connect(srv.addr).await;
    c.send(json!({"cmd": "history"})).await;
    assert_eq!(c.expect_error().await, "not_in_room");
    // The session goes on.
    let said = say_all(&mut a, ["still here".to_string()]).await;
    assert_eq!(said.len(), 1);
    srv.shutdown().await;
}

/// A raw IRC client that asked for `caps` and registered as `nick`.
async fn irc_with_caps(addr: SocketAddr, nick: &str, caps: &str) -> IrcClient {
    let mut i = IrcClient::connect(addr).await;
    i.send("CAP LS 302").await;
    i.send(&format!("NICK {nick}")).await;
    i.send(&format!("USER {nick} 0 * :{nick}")).await;
    i.send(&format!("CAP REQ :{caps}")).await;
    let ack = i.expect("CAP").await;
    let ack = if ack.contains(" LS ") {
        i.expect(" ACK ").await
    } else {
        ack
    };
    assert!(ack.contains(" ACK "), "{ack}");
    i.send("CAP END").await;
    i.numeric("001").await;
    i
}

/// One line of a batch: its tags and the rest.
#[derive(Debug)]
struct Tagged {
    tags: HashMap<String, String>,
    line: String,
}

/// Reads a `chathistory` batch for `target`: its lines, each with tags.
async fn batch(i: &mut IrcClient, target: &str) -> Vec<Tagged> {
    let start = i.expect(" BATCH +").await;
    let words: Vec<&str> = start.split(' ').collect();
    assert_eq!(&words[3..], ["chathistory", target], "{start}");
    let id = &words[2][1..];
    let mut lines = Vec::new();
    loop {
        let l = i.line().await.expect("batch line");
        if l == format!(":natter BATCH -{id}") {
            return lines;
        }
        let (tags, line) = match l.strip_prefix('@') {
            Some(rest) => rest.split_once(' ').expect("tags then a message"),
            None => ("", l.as_str()),
        };
        let tags: HashMap<String, String> = tags
            .split(';')
            .filter(|t| !t.is_empty())
            .map(|t| match t.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (t.to_string(), String::new()),
            })
            .collect();
        assert_eq!(tags.get("batch").map(String::as_str), Some(id), "{l}");
        lines.push(Tagged {
            tags,
            line: line.to_string(),
        });
    }
}

/// The texts of a batch's PRIVMSGs.
fn said(lines: &[Tagged]) -> Vec<String> {
    lines
        .iter()
        .filter(|t| t.line.contains(" PRIVMSG "))
        .map(|t| t.line.rsplit_once(" :").expect("text").1.to_string())
        .collect()
}

#[tokio::test]
async fn irc_chathistory_answers_every_selector_in_a_tagged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        history_max_lines: 8,
        ..on_db(&dir.path().join("natter.db"))
    };
    let srv = start(config).await;
    let irc = srv.irc_addr.unwrap();
    let caps = "batch draft/chathistory server-time message-tags";
    let mut i = irc_with_caps(irc, "ivy", caps).await;
    let isupport = i.numeric("005").await + &i.numeric("005").await;
    assert!(isupport.contains("CHATHISTORY=8"), "{isupport}");
    assert!(
        isupport.contains("MSGREFTYPES=msgid,timestamp"),
        "{isupport}"
    );
    i.send("JOIN #hist").await;
    i.numeric("366").await;
    let mut j = JsonClient::login(srv.addr, "jay").await;
    j.send(json!({"cmd": "join", "room": "hist"})).await;
    expect_event!(j, Event::Presence { room, .. } if room == "hist").await;
    let s = say_all(&mut j, numbered("h", 1..=12)).await;
    let t = |range: std::ops::RangeInclusive<usize>| -> Vec<String> {
        range.map(|n| format!("h {n}")).collect()
    };
    let m = |n: usize| format!("msgid={}", s[n - 1].id);
    i.sync().await;

    // LATEST: the newest, oldest first, each with its msgid and time.
    i.send("CHATHISTORY LATEST #hist * 3").await;
    let got = batch(&mut i, "#hist").await;
    assert_eq!(said(&got), t(10..=12));
    for (line, s) in got.iter().zip(&s[9..]) {
        assert_eq!(line.tags["msgid"], s.id, "{line:?}");
        let time = &line.tags["time"];
        assert!(time.ends_with('Z') && time.len() == 24, "{time}");
        assert!(line.line.starts_with(":jay!"), "{line:?}");
        assert!(line.line.ends_with(&format!("PRIVMSG #hist :{}", s.text)));
    }
    i.send(&format!("CHATHISTORY BEFORE #hist {} 2", m(5)))
        .await;
    assert_eq!(said(&batch(&mut i, "#hist").await), t(3..=4));
    i.send(&format!("CHATHISTORY AFTER #hist {} 2", m(5))).await;
    assert_eq!(said(&batch(&mut i, "#hist").await), t(6..=7));
    i.send(&format!("CHATHISTORY AROUND #hist {} 4", m(5)))
        .await;
    assert_eq!(said(&batch(&mut i, "#hist").await), t(3..=6));
    i.send(&format!("CHATHISTORY AROUND #hist {} 4", m(12)))
        .await;
    assert_eq!(
        said(&batch(&mut i, "#hist").await),
        t(9..=12),
        "near the end"
    );
    i.send(&format!("CHATHISTORY BETWEEN #hist {} {} 10", m(2), m(6)))
        .await;
    assert_eq!(said(&batch(&mut i, "#hist").await), t(3..=5));
    i.send(&format!("CHATHISTORY BETWEEN #hist {} {} 2", m(6), m(2)))
        .await;
    assert_eq!(
        said(&batch(&mut i, "#hist").await),
        t(4..=5),
        "backwards: the newest"
    );
    i.send(&format!("CHATHISTORY LATEST #hist {} 10", m(9)))
        .await;
    assert_eq!(said(&batch(&mut i, "#hist").await), t(10..=12));
    // Timestamps work as references too.
    i.send("CHATHISTORY AFTER #hist timestamp=2000-01-01T00:00:00.000Z 2")
        .await;
    assert_eq!(said(&batch(&mut i, "#hist").await), t(1..=2));
    i.send("CHATHISTORY BEFORE #hist timestamp=2000-01-01T00:00:00.000Z 2")
        .await;
    assert!(batch(&mut i, "#hist").await.is_empty());
    // A huge limit is capped by CHATHISTORY=8.
    i.send("CHATHISTORY LATEST #hist * 4000000000").await;
    assert_eq!(said(&batch(&mut i, "#hist").await), t(5..=12));
    // Lower case, another case of the channel name.
    i.send("chathistory latest #HIST * 1").await;
    assert_eq!(
        said(&batch(&mut i, "#hist").await),
        t(12..=12),
        "named as it is"
    );
    // Private history is not kept: an empty batch.
    i.send("CHATHISTORY LATEST jay * 5").await;
    assert!(batch(&mut i, "jay").await.is_empty());

    // With draft/event-playback, joins are history too.
    let mut e = irc_with_caps(irc, "eve", &format!("{caps} draft/event-playback")).await;
    e.send("JOIN #hist").await;
    e.numeric("366").await;
    e.send("CHATHISTORY LATEST #hist * 3").await;
    let got = batch(&mut e, "#hist").await;
    assert_eq!(got.len(), 3);
    assert!(got[2].line.contains(" JOIN #hist"), "{got:?}");
    assert!(got[2].line.starts_with(":eve!"), "{got:?}");
    srv.shutdown().await;
}

/// The next `n` PRIVMSG lines.
async fn privmsgs(i: &mut IrcClient, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines.len() < n {
        let l = i.expect(" PRIVMSG ").await;
        lines.push(l);
    }
    lines
}

#[tokio::test]
async fn irc_clients_without_chathistory_get_a_replay_on_join() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(on_db(&dir.path().join("natter.db"))).await;
    let irc = srv.irc_addr.unwrap();
    let mut j = JsonClient::login(srv.addr, "jay").await;
    j.send(json!({"cmd": "join", "room": "hist"})).await;
    expect_event!(j, Event::Presence { room, .. } if room == "hist").await;
    say_all(&mut j, numbered("r", 1..=12)).await;

    // Plain: the last 10 lines after the names, no batch, no tags.
    let mut p = IrcClient::register(irc, "plain").await;
    p.send("JOIN #hist").await;
    p.numeric("366").await;
    let lines = privmsgs(&mut p, 10).await;
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit_once(" :").unwrap().1)
        .collect();
    assert_eq!(texts, numbered("r", 3..=12), "{lines:#?}");
    assert!(lines.iter().all(|l| l.starts_with(":jay!")));
    // server-time: each replayed line carries the time it was said.
    let mut t = irc_with_caps(irc, "timed", "server-time").await;
    t.send("JOIN #hist").await;
    t.numeric("366").await;
    let lines = privmsgs(&mut t, 10).await;
    assert!(lines.iter().all(|l| l.starts_with("@time=")), "{lines:#?}");
    // draft/chathistory: no replay, the client asks. (The replay would
    // have been asked for before this request; history requests are
    // answered off the connection, so this is as far as a test can tell.)
    let mut c = irc_with_caps(irc, "asker", "batch draft/chathistory").await;
    c.send("JOIN #hist").await;
    c.numeric("366").await;
    c.send("CHATHISTORY LATEST #hist * 1").await;
    let mut seen = Vec::new();
    loop {
        let l = c.line().await.unwrap();
        if l.contains(" BATCH -") {
            break;
        }
        seen.push(l);
    }
    seen.extend(c.sync().await);
    let unbatched = seen
        .iter()
        .filter(|l| l.contains("PRIVMSG") && !l.contains("batch="))
        .count();
    assert_eq!(unbatched, 0, "{seen:#?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn malformed_chathistory_gets_fail_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(on_db(&dir.path().join("natter.db"))).await;
    let irc = srv.irc_addr.unwrap();
    // Before registering: 451.
    let mut u = IrcClient::connect(irc).await;
    u.send("CHATHISTORY LATEST #lobby * 10").await;
    u.numeric("451").await;

    let caps = "batch draft/chathistory server-time message-tags";
    let mut i = irc_with_caps(irc, "ivy", caps).await;
    i.send("JOIN #hist").await;
    i.numeric("366").await;
    i.send("CHATHISTORY").await;
    i.numeric("461").await;
    for (request, expected) in [
        (
            "CHATHISTORY FOO #hist * 10",
            "FAIL CHATHISTORY INVALID_PARAMS FOO :",
        ),
        (
            "CHATHISTORY LATEST #hist",
            "FAIL CHATHISTORY INVALID_PARAMS LATEST :",
        ),
        (
            "CHATHISTORY BETWEEN #hist * 10",
            "FAIL CHATHISTORY INVALID_PARAMS BETWEEN :",
        ),
        (
            "CHATHISTORY LATEST #hist * 0",
            "FAIL CHATHISTORY INVALID_PARAMS LATEST :",
        ),
        (
            "CHATHISTORY LATEST #hist * -1",
            "FAIL CHATHISTORY INVALID_PARAMS LATEST :",
        ),
        (
            "CHATHISTORY LATEST #hist * ten",
            "FAIL CHATHISTORY INVALID_PARAMS LATEST :",
        ),
        (
            "CHATHISTORY LATEST #hist * 99999999999999999999999",
            "FAIL CHATHISTORY INVALID_PARAMS LATEST :",
        ),
        (
            "CHATHISTORY BEFORE #hist msgid=garbage 10",
            "FAIL CHATHISTORY INVALID_PARAMS BEFORE msgid=garbage :",
        ),
        (
            "CHATHISTORY AFTER #hist timestamp=yesterday 10",
            "FAIL CHATHISTORY INVALID_PARAMS AFTER timestamp=yesterday :",
        ),
        (
            "CHATHISTORY AROUND #hist * 10",
            "FAIL CHATHISTORY INVALID_PARAMS AROUND * :",
        ),
        (
            "CHATHISTORY BEFORE #hist 12345 10",
            "FAIL CHATHISTORY INVALID_PARAMS BEFORE 12345 :",
        ),
        (
            "CHATHISTORY TARGETS * * 10",
            "FAIL CHATHISTORY INVALID_PARAMS TARGETS :",
        ),
    ] {
        i.send(request).await;
        let l = i.expect("FAIL").await;
        assert!(
            l.starts_with(&format!(":natter {expected}")),
            "{request}: {l}"
        );
    }
    // A channel ivy is not on, or that does not exist.
    let mut b = JsonClient::login(srv.addr, "bob").await;
    b.send(json!({"cmd": "join", "room": "secret"})).await;
    expect_event!(b, Event::Presence { room, .. } if room == "secret").await;
    say_all(&mut b, ["hidden".to_string()]).await;
    // Both get the same standard reply, so it does not tell which exists.
    for chan in ["#secret", "#nowhere"] {
        i.send(&format!("CHATHISTORY LATEST {chan} * 10")).await;
        let l = i.expect("FAIL").await;
        assert_eq!(
            l,
            format!(":natter FAIL CHATHISTORY INVALID_TARGET LATEST {chan} :Messages could not be retrieved")
        );
    }
    // Still registered, still talking.
    i.send("PRIVMSG #hist :still here").await;
    i.send("CHATHISTORY LATEST #hist * 10").await;
    let got = batch(&mut i, "#hist").await;
    assert_eq!(said(&got), ["still here"]);
    srv.shutdown().await;
}

/// The `msgid` (and `time`) a live PRIVMSG, NOTICE and TOPIC carries for
/// a `message-tags` client is the one the line is stored under: the same
/// line comes back from `CHATHISTORY` with the same tags.
#[tokio::test]
async fn live_msgid_and_time_are_those_history_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(on_db(&dir.path().join("natter.db"))).await;
    let irc = srv.irc_addr.unwrap();
    let caps = "batch draft/chathistory draft/event-playback server-time message-tags";
    let mut i = irc_with_caps(irc, "ivy", caps).await;
    let mut j = irc_with_caps(irc, "jay", "server-time message-tags").await;
    let mut k = IrcClient::register(irc, "kim").await;
    for c in [&mut i, &mut j, &mut k] {
        c.join("#live").await;
    }
    let tags_of = |l: &str| -> HashMap<String, String> {
        l.strip_prefix('@')
            .and_then(|r| r.split_once(' '))
            .map_or("", |(t, _)| t)
            .split(';')
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut live = Vec::new();
    for (line, seen) in [
        ("PRIVMSG #live :hello there", "PRIVMSG #live :hello there"),
        ("NOTICE #live :a notice", "NOTICE #live :a notice"),
        ("TOPIC #live :the topic", "TOPIC #live :the topic"),
    ] {
        i.send(line).await;
        let got = j.expect(seen).await;
        let tags = tags_of(&got);
        assert!(tags.contains_key("msgid"), "{got}");
        assert!(tags.contains_key("time"), "{got}");
        let plain = k.expect(seen).await;
        assert!(plain.starts_with(':'), "no tags without the caps: {plain}");
        live.push((seen, tags));
    }
    i.send("CHATHISTORY LATEST #live * 10").await;
    let got = batch(&mut i, "#live").await;
    for (seen, tags) in live {
        let stored = got
            .iter()
            .find(|t| t.line.contains(seen))
            .unwrap_or_else(|| panic!("{seen} in {got:?}"));
        assert_eq!(stored.tags.get("msgid"), tags.get("msgid"), "{seen}");
        assert_eq!(stored.tags.get("time"), tags.get("time"), "{seen}");
    }
    srv.shutdown().await;
}

/// The `time` tag of a line.
fn time_of(l: &str) -> String {
    l.strip_prefix('@')
        .and_then(|r| r.split_once(' '))
        .map_or("", |(t, _)| t)
        .split(';')
        .find_map(|t| t.strip_prefix("time="))
        .unwrap_or_else(|| panic!("no time tag: {l}"))
        .to_string()
}

/// The `(target, time)` pairs of a `draft/chathistory-targets` batch.
async fn targets(i: &mut IrcClient, from: &str, to: &str) -> Vec<(String, String)> {
    i.send(&format!("CHATHISTORY TARGETS {from} {to} 50")).await;
    let start = i.expect(" BATCH +").await;
    assert!(start.ends_with(" draft/chathistory-targets"), "{start}");
    let mut out = Vec::new();
    loop {
        let l = i.line().await.expect("batch line");
        if l.contains(" BATCH -") {
            return out;
        }
        let words: Vec<&str> = l.split(' ').collect();
        let at = words.iter().position(|w| *w == "TARGETS").expect("TARGETS");
        out.push((words[at + 1].to_string(), words[at + 2].to_string()));
    }
}

/// `CHATHISTORY TARGETS` lists the rooms one is in and the people one
/// has private lines with, each by the time of its newest line, oldest
/// first, and only when that newest line is within the (exclusive) window.
#[tokio::test]
async fn chathistory_targets_lists_rooms_and_people_by_their_newest_line() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(on_db(&dir.path().join("natter.db"))).await;
    let irc = srv.irc_addr.unwrap();
    let caps = "batch draft/chathistory server-time message-tags";
    let mut i = irc_with_caps(irc, "ivy", caps).await;
    let mut j = irc_with_caps(irc, "jay", caps).await;
    for room in ["#ta", "#tb"] {
        i.join(room).await;
        j.join(room).await;
        i.expect(&format!("JOIN {room}")).await;
    }
    let mut newest: HashMap<String, String> = HashMap::new();
    for (line, target) in [
        ("PRIVMSG #ta :one", "#ta"),
        ("PRIVMSG jay :a private one", "jay"),
        ("PRIVMSG #tb :two", "#tb"),
        ("PRIVMSG #ta :three", "#ta"),
    ] {
        i.send(line).await;
        let seen = j.expect(line).await;
        newest.insert(target.to_string(), time_of(&seen));
    }
    let order = |mut v: Vec<(String, String)>| {
        v.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        v
    };
    let expect = |from: &str, to: &str| {
        let inside = newest
            .iter()
            .filter(|(_, t)| t.as_str() > from && t.as_str() < to)
            .map(|(n, t)| (n.clone(), t.clone()));
        order(inside.collect())
    };
    let (all_from, all_to) = ("2000-01-01T00:00:00.000Z", "2200-01-01T00:00:00.000Z");
    let stamp = |t: &str| format!("timestamp={t}");
    let got = targets(&mut i, &stamp(all_from), &stamp(all_to)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.windows(2).all(|w| w[0].1 <= w[1].1),
        "oldest first: {got:?}"
    );
    assert_eq!(order(got), expect(all_from, all_to));
    // From #ta's first line's time (exclusive) on.
    let first = newest["jay"].clone();
    let got = targets(&mut i, &stamp(&first), &stamp(all_to)).await;
    assert_eq!(order(got), expect(&first, all_to));
    // Up to #ta's newest line (exclusive): #ta is not listed, though it
    // has an older line inside the window.
    let last = newest["#ta"].clone();
    let got = targets(&mut i, &stamp(all_from), &stamp(&last)).await;
    assert!(got.iter().all(|(n, _)| n != "#ta"), "{got:?}");
    assert_eq!(order(got), expect(all_from, &last));
    // Rooms one has left are not listed.
    i.send("PART #tb").await;
    i.expect("PART #tb").await;
    let got = targets(&mut i, &stamp(all_from), &stamp(all_to)).await;
    assert!(got.iter().all(|(n, _)| n != "#tb"), "{got:?}");
    srv.shutdown().await;
}

/// A `TAGMSG` whose tags ask to be kept (`+draft/persist`, reactions) is
/// in the room's and the private history, with its tags and live msgid,
/// for clients with `draft/event-playback`; others are not shown it, and
/// a typing notification is not kept.
#[tokio::test]
async fn kept_tagmsg_comes_back_with_event_playback_only() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(on_db(&dir.path().join("natter.db"))).await;
    let irc = srv.irc_addr.unwrap();
    let caps = "batch draft/chathistory draft/event-playback server-time message-tags";
    let mut i = irc_with_caps(irc, "ivy", caps).await;
    let mut j = irc_with_caps(irc, "jay", "batch draft/chathistory message-tags").await;
    i.join("#tags").await;
    j.join("#tags").await;
    i.expect("JOIN #tags").await;
    for target in ["#tags", "jay"] {
        i.send(&format!("@+typing=active TAGMSG {target}")).await;
        j.expect(&format!("TAGMSG {target}")).await;
        i.send(&format!("@+draft/persist;+x=a\\sb TAGMSG {target}"))
            .await;
        let live = j.expect(&format!("TAGMSG {target}")).await;
        assert!(live.contains("+x=a\\sb"), "{live}");
        let live_tags = live.strip_prefix('@').and_then(|l| l.split_once(' '));
        let live_id =
            live_tags.and_then(|(t, _)| t.split(';').find_map(|t| t.strip_prefix("msgid=")));
        assert!(live_id.is_some(), "{live}");
        let shown = if target == "jay" { "jay" } else { "#tags" };
        i.send(&format!("CHATHISTORY LATEST {target} * 10")).await;
        let got = batch(&mut i, shown).await;
        let tagmsgs: Vec<&Tagged> = got.iter().filter(|t| t.line.contains(" TAGMSG ")).collect();
        assert_eq!(tagmsgs.len(), 1, "only the kept one: {got:?}");
        assert_eq!(tagmsgs[0].tags.get("+x").map(String::as_str), Some("a\\sb"));
        assert!(tagmsgs[0].tags.contains_key("+draft/persist"));
        assert_eq!(tagmsgs[0].tags.get("msgid").map(String::as_str), live_id);
        let other = if target == "jay" { "ivy" } else { "#tags" };
        j.send(&format!("CHATHISTORY LATEST {other} * 10")).await;
        let got = batch(&mut j, other).await;
        assert!(got.iter().all(|t| !t.line.contains(" TAGMSG ")), "{got:?}");
    }
    srv.shutdown().await;
}

/// The answer to `CHATHISTORY` (read off the chat lock) comes before what
/// answers the lines after it: a `PING` sent with it is answered last.
#[tokio::test]
async fn chathistory_answers_come_in_the_order_of_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(on_db(&dir.path().join("natter.db"))).await;
    let irc = srv.irc_addr.unwrap();
    let caps = "batch draft/chathistory server-time message-tags";
    let mut i = irc_with_caps(irc, "ivy", caps).await;
    i.join("#order").await;
    i.send("PRIVMSG #order :something to read").await;
    for n in 0..30 {
        let target = ["#order", "jay"][n % 2];
        let asks = format!("CHATHISTORY LATEST {target} * 10\r\nPING :p{n}\r\n");
        let window = "timestamp=2000-01-01T00:00:00.000Z timestamp=2200-01-01T00:00:00.000Z";
        let asks = match n % 3 {
            1 => format!("CHATHISTORY TARGETS {window} 10\r\n{asks}"),
            _ => asks,
        };
        i.c.send_raw(asks.as_bytes()).await;
        let mut open = 0;
        let mut batches = 0;
        loop {
            let l = i.line().await.expect("a line");
            if l.contains(" BATCH +") {
                open += 1;
            } else if l.contains(" BATCH -") {
                open -= 1;
                batches += 1;
            } else if l.contains("PONG") {
                assert_eq!(open, 0, "PONG inside a batch: {l}");
                assert_eq!(
                    batches,
                    1 + usize::from(n % 3 == 1),
                    "round {n}: PONG first"
                );
                break;
            }
        }
    }
    srv.shutdown().await;
}
