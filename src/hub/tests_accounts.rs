//! Accounts in the pure state: no sockets, no passwords (the server checks
//! those and sends `Authenticated`).

use super::tests::{error_code, World};
use super::*;
use crate::proto::{AccountEvent, ModeChange};

fn login(w: &mut World, id: ConnId, account: &str, created: bool) {
    let account = account.into();
    w.handle(id, Command::Authenticated { account, created });
}

fn registry(accounts: &[&str]) -> Registry {
    Registry {
        accounts: accounts.iter().map(|a| a.to_string()).collect(),
        rooms: Vec::new(),
        markers: Vec::new(),
        remembered: Vec::new(),
    }
}

#[test]
fn registered_nicks_are_refused_without_a_grace_period() {
    let mut w = World::new();
    w.hub().load_registry(registry(&["Alice"]), 0);
    let b = w.connect_cap(100);
    w.take(b);
    w.handle(
        b,
        Command::Register {
            nick: "alice".into(),
        },
    );
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::NickRegistered));
    login(&mut w, b, "Alice", false);
    w.handle(
        b,
        Command::Register {
            nick: "alice".into(),
        },
    );
    let got = w.take(b);
    assert!(matches!(
        &got[0],
        EventBody::Account(AccountEvent::LoggedIn { nick: None, .. })
    ));
    assert!(matches!(&got[1], EventBody::Registered { nick, .. } if &**nick == "alice"));
    // Someone else cannot /nick to it either.
    let c = w.user("carol");
    w.handle(
        c,
        Command::Nick {
            new: "ALICE".into(),
        },
    );
    assert_eq!(error_code(&w.take(c)), Some(ErrorCode::NickRegistered));
}

#[test]
fn grace_then_guest_and_the_owner_takes_the_nick_back() {
    let mut w = World::new();
    w.hub().load_registry(registry(&["alice"]), 30);
    let squatter = w.user("alice");
    assert_eq!(w.hub().unprotected_nick(squatter).as_deref(), Some("alice"));
    // Another connection logs in to alice and registers with it.
    let owner = w.connect_cap(100);
    login(&mut w, owner, "alice", false);
    w.handle(
        owner,
        Command::Register {
            nick: "alice".into(),
        },
    );
    assert_eq!(w.hub().nick_of(owner).map(|n| &**n), Some("alice"));
    let renamed = w.hub().nick_of(squatter).cloned().unwrap();
    assert!(renamed.starts_with("Guest"), "{renamed}");
    assert!(w
        .take(squatter)
        .iter()
        .any(|e| matches!(e, EventBody::Account(AccountEvent::Renamed { .. }))));
    // A grace period that ran out on a nick no longer held does nothing.
    w.handle(
        squatter,
        Command::NickGrace {
            nick: "alice".into(),
        },
    );
    assert_eq!(w.hub().nick_of(squatter), Some(&renamed));
    w.handle(
        owner,
        Command::NickGrace {
            nick: "alice".into(),
        },
    );
    assert_eq!(w.hub().nick_of(owner).map(|n| &**n), Some("alice"));
}

#[test]
fn registered_rooms_keep_their_state_and_founder() {
    let mut w = World::new();
    let a = w.user("alice");
    login(&mut w, a, "alice", true);
    w.handle(a, Command::RegisterRoom { room: None });
    let fx_rooms: Vec<_> = w.take(a);
    assert!(fx_rooms.iter().any(|e| matches!(
        e,
        EventBody::Account(AccountEvent::RoomRegistered { room, .. }) if &**room == "lobby"
    )));
    w.handle(
        a,
        Command::Topic {
            room: "lobby".into(),
            text: Some("hello".into()),
        },
    );
    // Everyone leaves: the room keeps its topic; the founder is op again,
    // a newcomer is not.
    w.handle(
        a,
        Command::Part {
            room: None,
            reason: None,
        },
    );
    let b = w.connect_cap(100);
    w.handle(b, Command::Register { nick: "bob".into() });
    let got = w.take(b);
    assert!(got
        .iter()
        .any(|e| matches!(e, EventBody::TopicInfo { topic: Some(t), .. } if &*t.text == "hello")));
    w.handle(
        a,
        Command::Join {
            room: "lobby".into(),
            switch: true,
        },
    );
    match w
        .take(a)
        .iter()
        .find(|e| matches!(e, EventBody::Members { .. }))
    {
        Some(EventBody::Members { members, .. }) => {
            for m in members.iter() {
                assert_eq!(m.op, &*m.nick == "alice", "{m:?}");
            }
        }
        other => panic!("{other:?}"),
    }
    // Only logged-in operators register rooms.
    w.handle(
        b,
        Command::RegisterRoom {
            room: Some("lobby".into()),
        },
    );
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::NotLoggedIn));
}

#[test]
fn a_guest_is_its_session_in_private_history() {
    let mut w = World::new();
    w.hub().load_registry(registry(&["Alice"]), 0);
    let a = w.user("alice");
    login(&mut w, a, "Alice", false);
    let g = w.user("gus");
    let key = w
        .hub()
        .private_log_with(a, "gus")
        .expect("a guest has a log");
    assert_eq!(w.hub().private_log_with(g, "ALICE"), Some(key.clone()));
    let token = w.hub().history_identity(g).expect("registered");
    assert!(token.starts_with('!') && key.contains(&token), "{key}");
    assert_eq!(w.hub().session_nick(&token).as_deref(), Some("gus"));
    // Gone, and someone else takes the nick: another log, the old one unreached.
    w.disconnect(g, "bye");
    assert_eq!(w.hub().session_nick(&token), None);
    let g2 = w.user("gus");
    let key2 = w.hub().private_log_with(a, "gus").expect("a log");
    assert_ne!(key2, key, "{key2}");
    assert_ne!(w.hub().history_identity(g2), Some(token));
    // A forged token names nobody.
    assert_eq!(w.hub().session_nick("!0.1.nothing"), None);
}

/// A connection that asks for it (`Profile::rejoin`), logged in and
/// registered as `nick`.
fn rejoiner(w: &mut World, nick: &str, account: &str, rejoin: bool) -> ConnId {
    let id = w.connect_cap(1000);
    let profile = crate::proto::Profile {
        user: "~u".into(),
        realname: "R".into(),
        auto_join: false,
        rejoin,
    };
    w.handle(id, Command::Identify(profile));
    login(w, id, account, false);
    w.handle(id, Command::Register { nick: nick.into() });
    w.handle(id, Command::Rejoin);
    id
}

fn rooms(w: &mut World, id: ConnId) -> Vec<String> {
    w.hub().rooms_of(id).into_iter().map(|(k, _)| k).collect()
}

#[test]
fn loaded_rooms_are_rejoined_with_their_key_and_refused_ones_forgotten() {
    let mut w = World::new();
    let kept = |room: &str, key: Option<&str>| RememberedRoom {
        account: "alice".into(),
        room: room.into(),
        name: room.to_uppercase(),
        key: key.map(String::from),
    };
    let mut reg = registry(&["alice"]);
    reg.remembered = vec![kept("a", Some("k1")), kept("b", None)];
    w.hub().load_registry(reg, 30);
    // b has a key now that alice does not know; a has the one she used.
    let bob = w.user("bob");
    for (room, key) in [("a", "k1"), ("b", "k2")] {
        w.handle(
            bob,
            Command::Join {
                room: room.into(),
                switch: false,
            },
        );
        let change = ModeChange {
            add: true,
            mode: 'k',
            arg: Some(key.into()),
        };
        w.handle(
            bob,
            Command::RoomMode {
                room: room.into(),
                changes: vec![change],
            },
        );
    }
    // A session that does not ask for it (text, JSON) is put nowhere.
    let t = rejoiner(&mut w, "alice_t", "alice", false);
    assert!(rooms(&mut w, t).is_empty());
    let a = rejoiner(&mut w, "alice", "alice", true);
    assert_eq!(rooms(&mut w, a), ["a"]);
    let got = w.take(a);
    assert_eq!(error_code(&got), Some(ErrorCode::BadKey), "{got:?}");
    // b was forgotten: the next session is not refused again.
    let again = rejoiner(&mut w, "alice2", "alice", true);
    assert_eq!(rooms(&mut w, again), ["a"]);
    assert_eq!(error_code(&w.take(again)), None);
}
