//! Hub unit tests for room status and rules: operators, modes, bans,
//! keys, limits, invites, kicks, topics, away, and the detailed queries.

use super::tests::{error_code, World};
use super::*;
use crate::proto::{MemberInfo, ModeChange};

fn join(w: &mut World, id: ConnId, room: &str, key: Option<&str>) {
    w.handle(
        id,
        Command::JoinWithKey {
            room: room.into(),
            key: key.map(String::from),
            switch: false,
        },
    );
}

fn mode(w: &mut World, id: ConnId, room: &str, changes: &[(bool, char, Option<&str>)]) {
    let changes = changes
        .iter()
        .map(|(add, mode, arg)| ModeChange {
            add: *add,
            mode: *mode,
            arg: arg.map(Arc::from),
        })
        .collect();
    w.handle(
        id,
        Command::RoomMode {
            room: room.into(),
            changes,
        },
    );
}

/// alice creates #r (operator), bob joins it; both queues emptied.
fn two_in_room() -> (World, ConnId, ConnId) {
    let mut w = World::new();
    let a = w.user("alice");
    let b = w.user("bob");
    join(&mut w, a, "#r", None);
    join(&mut w, b, "#r", None);
    w.take(a);
    w.take(b);
    (w, a, b)
}

#[test]
fn irc_join_keeps_other_rooms_and_first_is_op() {
    let (mut w, a, b) = two_in_room();
    w.say(a, "still in lobby?");
    // alice's current room is #r now; she is still in lobby too
    w.handle(
        a,
        Command::Say {
            room: Some("lobby".into()),
            text: "hi lobby".into(),
            action: false,
        },
    );
    assert!(w
        .take(b)
        .iter()
        .any(|e| matches!(e, EventBody::Message { room, .. } if &**room == "lobby")));
    w.handle(
        b,
        Command::Who {
            room: Some("#r".into()),
        },
    );
    match &w.take(b)[..] {
        [EventBody::Members { members, .. }] => {
            assert_eq!(
                members.iter().map(|m| (&*m.nick, m.op)).collect::<Vec<_>>(),
                [("alice", true), ("bob", false)]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn key_limit_ban_and_invite_only_refuse_everyone() {
    let (mut w, a, b) = two_in_room();
    let c = w.user("carol");
    mode(&mut w, a, "#r", &[(true, 'k', Some("sesame"))]);
    assert!(w
        .take(b)
        .iter()
        .any(|e| matches!(e, EventBody::ModeChanged { .. })));
    // carol is a text user: /join r
    w.handle(
        c,
        Command::Join {
            room: "r".into(),
            switch: true,
        },
    );
    let got = w.take(c);
    assert_eq!(error_code(&got), Some(ErrorCode::BadKey));
    assert!(
        !got.iter().any(|e| matches!(e, EventBody::Parted { .. })),
        "a refused text user stays where they were"
    );
    join(&mut w, c, "#r", Some("sesame"));
    assert!(matches!(w.take(c)[0], EventBody::Joined { .. }));
    w.handle(
        c,
        Command::Part {
            room: Some("#r".into()),
            reason: None,
        },
    );
    mode(
        &mut w,
        a,
        "#r",
        &[(false, 'k', None), (true, 'l', Some("2"))],
    );
    w.take(c);
    join(&mut w, c, "#r", None);
    assert_eq!(error_code(&w.take(c)), Some(ErrorCode::RoomFull));
    mode(&mut w, a, "#r", &[(false, 'l', None), (true, 'i', None)]);
    join(&mut w, c, "#r", None);
    assert_eq!(error_code(&w.take(c)), Some(ErrorCode::InviteOnly));
    // bob is no operator: he may not invite into a +i room
    w.handle(
        b,
        Command::Invite {
            nick: "carol".into(),
            room: "#r".into(),
        },
    );
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::ChanOpNeeded));
    w.handle(
        a,
        Command::Invite {
            nick: "carol".into(),
            room: "#r".into(),
        },
    );
    assert!(matches!(&w.take(c)[..], [EventBody::Invited { target, .. }] if &**target == "carol"));
    join(&mut w, c, "#r", None);
    assert!(matches!(w.take(c)[0], EventBody::Joined { .. }));
    w.handle(
        a,
        Command::Invite {
            nick: "carol".into(),
            room: "#r".into(),
        },
    );
    assert_eq!(error_code(&w.take(a)), Some(ErrorCode::UserInRoom));
    // a ban by nick: carol is kicked out and cannot come back, invited or not
    mode(&mut w, a, "#r", &[(true, 'b', Some("carol"))]);
    w.handle(
        a,
        Command::Kick {
            room: "#r".into(),
            nick: "carol".into(),
            reason: Some("bye".into()),
        },
    );
    assert!(w.take(b).iter().any(|e| matches!(e,
        EventBody::Kicked { target, reason: Some(r), members: 2, .. } if &**target == "carol" && &**r == "bye")));
    w.take(c);
    w.handle(
        a,
        Command::Invite {
            nick: "carol".into(),
            room: "#r".into(),
        },
    );
    join(&mut w, c, "#r", None);
    assert_eq!(error_code(&w.take(c)), Some(ErrorCode::Banned));
    mode(&mut w, a, "#r", &[(true, 'b', None)]);
    assert!(
        matches!(&w.take(a)[..], [.., EventBody::BanList { bans, .. }] if bans.len() == 1 && &*bans[0].mask == "carol!*@*")
    );
}

#[test]
fn operators_only_and_moderation() {
    let (mut w, a, b) = two_in_room();
    mode(&mut w, b, "#r", &[(true, 'm', None)]);
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::ChanOpNeeded));
    w.handle(
        b,
        Command::Kick {
            room: "#r".into(),
            nick: "alice".into(),
            reason: None,
        },
    );
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::ChanOpNeeded));
    w.handle(
        b,
        Command::Topic {
            room: "#r".into(),
            text: Some("mine".into()),
        },
    );
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::ChanOpNeeded), "+t");
    mode(&mut w, a, "#r", &[(true, 'm', None)]);
    w.take(b);
    w.handle(
        b,
        Command::Say {
            room: Some("#r".into()),
            text: "hello".into(),
            action: false,
        },
    );
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::CannotSend));
    mode(&mut w, a, "#r", &[(true, 'v', Some("BOB"))]);
    assert!(
        w.take(b)
            .iter()
            .any(|e| matches!(e, EventBody::ModeChanged { changes, .. }
            if changes[0].arg.as_deref() == Some("bob"))),
        "the nick is shown as its owner spells it"
    );
    w.handle(
        b,
        Command::Say {
            room: Some("#r".into()),
            text: "hello".into(),
            action: false,
        },
    );
    assert!(matches!(&w.take(b)[..], [EventBody::Message { .. }]));
    mode(
        &mut w,
        a,
        "#r",
        &[(true, 'x', None), (true, 'o', Some("nobody"))],
    );
    let got = w.take(a);
    assert!(got.iter().any(|e| matches!(
        e,
        EventBody::Refused(Refusal {
            code: ErrorCode::UnknownMode,
            ..
        })
    )));
    assert!(got.iter().any(|e| matches!(
        e,
        EventBody::Refused(Refusal {
            code: ErrorCode::NoSuchNick,
            ..
        })
    )));
    mode(&mut w, a, "#r", &[]);
    assert!(
        matches!(&w.take(a)[..], [EventBody::RoomModes { modes, .. }]
        if modes.iter().map(|m| m.mode).collect::<String>() == "mnt")
    );
}

#[test]
fn topic_is_shown_on_join_and_query() {
    let (mut w, a, b) = two_in_room();
    w.handle(
        a,
        Command::Topic {
            room: "#r".into(),
            text: Some("Rust talk".into()),
        },
    );
    assert!(
        matches!(&w.take(b)[..], [EventBody::TopicChanged { topic: Some(t), .. }] if &**t == "Rust talk")
    );
    let c = w.user("carol");
    join(&mut w, c, "#r", None);
    let got = w.take(c);
    assert!(
        matches!(&got[1], EventBody::TopicInfo { topic: Some(t), .. } if &*t.text == "Rust talk" && &*t.set_by == "alice")
    );
    assert!(matches!(&got[2], EventBody::Members { .. }));
    w.handle(
        c,
        Command::Topic {
            room: "#nowhere".into(),
            text: None,
        },
    );
    assert_eq!(error_code(&w.take(c)), Some(ErrorCode::NoSuchRoom));
}

#[test]
fn away_notifies_room_and_answers_private_messages() {
    let (mut w, a, b) = two_in_room();
    w.handle(
        b,
        Command::Away {
            text: Some("lunch".into()),
        },
    );
    assert!(matches!(
        &w.take(b)[..],
        [EventBody::AwayStatus { away: true }]
    ));
    assert!(matches!(&w.take(a)[..], [EventBody::Away { text: Some(t), .. }] if &**t == "lunch"));
    w.handle(
        a,
        Command::Private {
            to: "bob".into(),
            text: "hi".into(),
            action: false,
        },
    );
    assert!(matches!(
        &w.take(a)[..],
        [EventBody::Private { .. }, EventBody::AwayReply { .. }]
    ));
    w.take(b);
    w.handle(b, Command::Whois { nick: "BOB".into() });
    match &w.take(b)[..] {
        [EventBody::Whois {
            nick,
            info: Some(i),
        }] => {
            assert_eq!(&**nick, "bob");
            assert_eq!(i.away.as_deref(), Some("lunch"));
            assert_eq!(i.rooms.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    w.handle(b, Command::Away { text: None });
    assert!(matches!(
        &w.take(a)[..],
        [EventBody::Away { text: None, .. }]
    ));
    assert!(matches!(
        &w.take(b)[..],
        [EventBody::AwayStatus { away: false }]
    ));
    w.handle(b, Command::Whois { nick: "zed".into() });
    assert!(matches!(
        &w.take(b)[..],
        [EventBody::Whois { info: None, .. }]
    ));
}

#[test]
fn who_list_lusers_and_notices() {
    let (mut w, a, b) = two_in_room();
    w.handle(
        a,
        Command::WhoDetail {
            target: Target::Room("r".into()),
        },
    );
    assert!(
        matches!(&w.take(a)[..], [EventBody::WhoReply { members, room: Some(_), .. }] if members.len() == 2)
    );
    w.handle(
        a,
        Command::WhoDetail {
            target: Target::Person("b*".into()),
        },
    );
    assert!(
        matches!(&w.take(a)[..], [EventBody::WhoReply { members, .. }] if members.len() == 1 && &*members[0].nick == "bob")
    );
    w.handle(a, Command::List { rooms: None });
    assert!(matches!(&w.take(a)[..], [EventBody::RoomDetails { rooms }] if rooms.len() == 2));
    w.handle(a, Command::Lusers);
    assert!(matches!(
        &w.take(a)[..],
        [EventBody::Lusers {
            users: 2,
            rooms: 2,
            ..
        }]
    ));
    w.handle(
        a,
        Command::Notice {
            target: Target::Room("r".into()),
            text: "note".into(),
        },
    );
    assert!(matches!(
        &w.take(b)[..],
        [EventBody::Notice { room: Some(_), .. }]
    ));
    w.handle(
        a,
        Command::Notice {
            target: Target::Person("nobody".into()),
            text: "x".into(),
        },
    );
    assert!(
        w.take(a)
            .iter()
            .all(|e| !matches!(e, EventBody::Refused(_))),
        "notices are never answered with errors"
    );
}

#[test]
fn room_limit_per_user_and_nick_problems() {
    let mut w = World::new();
    w.hub().config.max_rooms_per_user = 2;
    let a = w.user("alice"); // lobby
    join(&mut w, a, "#one", None);
    join(&mut w, a, "#two", None);
    assert_eq!(error_code(&w.take(a)), Some(ErrorCode::TooManyRooms));
    let b = w.connect_cap(100);
    assert!(matches!(
        w.hub().nick_problem(b, "ALICE"),
        Some(Refusal {
            code: ErrorCode::NickInUse,
            ..
        })
    ));
    assert!(matches!(
        w.hub().nick_problem(b, "9x"),
        Some(Refusal {
            code: ErrorCode::NickInvalid,
            ..
        })
    ));
    assert!(w.hub().nick_problem(b, "bob").is_none());
    assert!(
        w.hub().nick_problem(a, "Alice").is_none(),
        "your own nick is no problem"
    );
}

#[test]
fn sources_carry_user_and_host() {
    let mut w = World::new();
    let a = w.connect_from("abc.ip", 100);
    let profile = Profile {
        user: "~al".into(),
        realname: "Alice".into(),
        auto_join: false,
        rejoin: false,
    };
    w.handle(a, Command::Identify(profile));
    w.handle(
        a,
        Command::Register {
            nick: "alice".into(),
        },
    );
    let got = w.take(a);
    assert!(
        got.iter().all(|e| !matches!(e, EventBody::Joined { .. })),
        "no auto join"
    );
    join(&mut w, a, "#r", None);
    let ev = w.take_events(a)[0].clone();
    assert_eq!(ev.source.as_deref(), Some("alice!~al@abc.ip"));
}

/// The names list a join shows is in folded-nick order however people
/// came, went and renamed themselves before it (the order is kept from
/// join to join: `Room::names_order`), with each member's status.
#[test]
fn names_lists_stay_sorted_through_joins_parts_and_renames() {
    let mut w = World::new();
    let nicks = ["Mia", "bob", "Zed", "alice", "carl", "Bea", "dan", "Eve"];
    let ids: Vec<ConnId> = nicks.iter().map(|n| w.user(n)).collect();
    let names_seen_by = |w: &mut World, id: ConnId| -> Vec<(String, bool)> {
        let got = w.take(id);
        let names = got.iter().rev().find_map(|e| match e {
            EventBody::Members { room, members, .. } if &**room == "r" => Some(members),
            _ => None,
        });
        let Some(members) = names else {
            panic!("no names list for #r in {got:?}");
        };
        members.iter().map(|m| (m.nick.to_string(), m.op)).collect()
    };
    for (i, &id) in ids.iter().enumerate() {
        join(&mut w, id, "#r", None);
        match i {
            3 => {
                w.handle(
                    ids[1],
                    Command::Nick {
                        new: "Xavier".into(),
                    },
                );
            }
            5 => {
                let room = Some("#r".into());
                w.handle(ids[0], Command::Part { room, reason: None });
            }
            6 => {
                w.handle(
                    ids[3],
                    Command::Nick {
                        new: "ALICE".into(),
                    },
                );
            }
            _ => {}
        }
        let seen = names_seen_by(&mut w, id);
        let mut sorted = seen.clone();
        sorted.sort_by_key(|(n, _)| n.to_lowercase());
        assert_eq!(seen, sorted, "after join {i}");
    }
    let last = w.user("frank");
    join(&mut w, last, "#r", None);
    let seen = names_seen_by(&mut w, last);
    let nicks: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        nicks,
        ["ALICE", "Bea", "carl", "dan", "Eve", "frank", "Xavier", "Zed"]
    );
    // Mia, the first in and the room's operator, left.
    assert!(seen.iter().all(|(_, op)| !op), "{seen:?}");
}

/// The names list a join shows is kept between joins (`Room::names_cards`)
/// and shared, yet it shows what changed since: an away message, a real
/// name, a status given by mode, a member gone. Each join's list is what
/// a list made from scratch (`members_of`) says.
#[test]
fn kept_names_lists_show_what_changed_since() {
    let mut w = World::new();
    let (a, b, c) = (w.user("alice"), w.user("bob"), w.user("carl"));
    for id in [a, b, c] {
        join(&mut w, id, "#r", None);
    }
    let list_seen_by = |w: &mut World, id: ConnId| -> Vec<MemberInfo> {
        let got = w.take(id);
        let list = got.iter().rev().find_map(|e| match e {
            EventBody::Members { room, members, .. } if &**room == "r" => Some(members.clone()),
            _ => None,
        });
        let Some(list) = list else {
            panic!("no names list for #r in {got:?}");
        };
        list.iter().map(|m| (**m).clone()).collect()
    };
    let changes: [&dyn Fn(&mut World); 4] = [
        &|w| {
            w.handle(
                b,
                Command::Away {
                    text: Some("lunch".into()),
                },
            );
        },
        &|w| {
            w.handle(
                c,
                Command::SetName {
                    realname: "Carl C".into(),
                },
            );
        },
        &|w| mode(w, a, "#r", &[(true, 'v', Some("carl"))]),
        &|w| {
            let room = Some("#r".into());
            w.handle(b, Command::Part { room, reason: None });
        },
    ];
    for (i, change) in changes.iter().enumerate() {
        change(&mut w);
        let newcomer = w.user(&format!("new{i}"));
        join(&mut w, newcomer, "#r", None);
        let seen = list_seen_by(&mut w, newcomer);
        assert_eq!(seen, w.hub().members_of("r"), "after change {i}");
        assert!(
            w.hub().rooms.get("r").is_some_and(|r| r.keeps_cards()),
            "the list is kept"
        );
        match i {
            0 => assert!(seen.iter().any(|m| &*m.nick == "bob" && m.away)),
            1 => assert!(seen.iter().any(|m| &*m.realname == "Carl C")),
            2 => assert!(seen.iter().any(|m| &*m.nick == "carl" && m.voice)),
            _ => assert!(seen.iter().all(|m| &*m.nick != "bob")),
        }
    }
}

/// At most `names_cache` rooms keep their names list: the one joined
/// longest ago gives it up; with 0, none keeps one.
#[test]
fn only_the_rooms_joined_last_keep_their_names_list() {
    for cache in [0, 1] {
        let mut w = World::with(HubConfig {
            names_cache: cache,
            ..super::tests::config()
        });
        let (a, b) = (w.user("alice"), w.user("bob"));
        join(&mut w, a, "#one", None);
        join(&mut w, b, "#one", None);
        let kept =
            |w: &mut World, key: &str| w.hub().rooms.get(key).is_some_and(|r| r.keeps_cards());
        assert_eq!(kept(&mut w, "one"), cache > 0);
        join(&mut w, a, "#two", None);
        assert_eq!(kept(&mut w, "two"), cache > 0);
        assert!(!kept(&mut w, "one"), "names_cache {cache}");
    }
}
