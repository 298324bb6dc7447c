//! Hub unit tests: no sockets. The real [`Core`] (state, delivery,
//! slow-consumer reaping) with a router whose queues are vectors.

use std::collections::HashMap;
use std::sync::Mutex;

use super::handle::Core;
use super::*;
use crate::cluster::Standalone;
use crate::proto::MsgId;
use crate::store::MemoryStore;

/// A connection's cap and what was queued for it.
type Sink = (usize, Vec<Arc<Event>>);

/// Capped vectors, one per connection.
#[derive(Default)]
pub(super) struct Sinks {
    queues: Mutex<HashMap<u64, Sink>>,
    next_cap: usize,
}

impl Sinks {
    /// The queues, with the router to oneself.
    fn queues(&mut self) -> &mut HashMap<u64, Sink> {
        self.queues.get_mut().unwrap()
    }
}

impl Router for Sinks {
    type Tally = ();
    fn push(&self, _: &mut (), to: ConnId, ev: &Arc<Event>, _share: usize) -> bool {
        let mut queues = self.queues.lock().unwrap();
        let Some((cap, q)) = queues.get_mut(&to.local) else {
            return true;
        };
        if q.len() >= *cap {
            return false;
        }
        q.push(ev.clone());
        true
    }
    /// Kept, so tests can read what a closed connection was sent last.
    fn detach(&mut self, _conn: ConnId) {}
}

/// A connection through `chat` that takes the router's slot `slot`
/// gives it, registered as `nick`.
pub(super) fn registered<R: Router>(
    chat: &ChatHandle<R>,
    nick: &str,
    slot: impl FnOnce(&mut R) -> u64,
) -> ConnId {
    let id = chat.connect("h".into(), slot);
    let nick = nick.to_string();
    assert_eq!(
        chat.execute(id, Command::Register { nick }),
        Outcome::Continue
    );
    id
}

pub(super) fn config() -> HubConfig {
    HubConfig {
        server_name: "natter".into(),
        default_room: "lobby".into(),
        max_nick_chars: 30,
        max_room_chars: 50,
        large_room: 1000,
        names_cache: 8,
        max_rooms_per_user: 100,
        topic_len: 390,
        reason_len: 255,
        away_len: 200,
        key_len: 32,
        ban_mask_len: 100,
        max_bans: 100,
        max_rooms: 10_000,
        rooms_per_minute: 0,
        max_invites: 100,
        page_size: 100,
        node: 0,
        echo: false,
        whowas_entries: 100,
        monitor_limit: 10,
        oper_die: false,
        opers: vec!["root".into()],
        rejoin_on_login: true,
    }
}

pub(super) struct World {
    pub core: Core<Sinks>,
    next: u64,
}

impl World {
    pub fn new() -> World {
        World::with(config())
    }
    pub fn with(config: HubConfig) -> World {
        let store = Arc::new(MemoryStore::new(100, 100));
        World {
            core: Core::new(config, Sinks::default(), store, Arc::new(Standalone)),
            next: 0,
        }
    }
    pub fn hub(&mut self) -> &mut ChatState {
        &mut self.core.state
    }
    pub fn connect_cap(&mut self, cap: usize) -> ConnId {
        self.connect_from("natter", cap)
    }
    pub fn connect_from(&mut self, host: &str, cap: usize) -> ConnId {
        self.next += 1;
        let local = self.next;
        self.core.router.next_cap = cap;
        self.core.connect(host.into(), |r| {
            let cap = r.next_cap;
            r.queues().insert(local, (cap, Vec::new()));
            local
        })
    }
    pub fn handle(&mut self, id: ConnId, cmd: Command) -> Outcome {
        self.core.execute(id, cmd)
    }
    pub fn disconnect(&mut self, id: ConnId, reason: &str) {
        self.core.disconnect(id, reason)
    }
    pub fn remote(&mut self, fact: Fact) {
        self.core.apply_remote(&fact)
    }
    pub fn user(&mut self, nick: &str) -> ConnId {
        let id = self.connect_cap(1000);
        self.handle(id, Command::Register { nick: nick.into() });
        self.take(id);
        id
    }
    /// The events queued for `id` since the last take.
    pub fn take_events(&mut self, id: ConnId) -> Vec<Arc<Event>> {
        match self.core.router.queues().get_mut(&id.local) {
            Some((_, q)) => std::mem::take(q),
            None => Vec::new(),
        }
    }
    pub fn take(&mut self, id: ConnId) -> Vec<EventBody> {
        let q = self.take_events(id);
        q.into_iter().map(|e| e.body.clone()).collect()
    }
    pub fn say(&mut self, id: ConnId, text: &str) {
        self.handle(
            id,
            Command::Say {
                room: None,
                text: text.into(),
                action: false,
            },
        );
    }
}

pub(super) fn error_code(events: &[EventBody]) -> Option<ErrorCode> {
    events.iter().find_map(|e| match e {
        EventBody::Refused(r) => Some(r.code),
        _ => None,
    })
}

#[test]
fn welcome_counts_people_online() {
    let mut w = World::new();
    let a = w.connect_cap(10);
    assert!(matches!(
        w.take(a)[..],
        [EventBody::Welcome { online: 0, .. }]
    ));
    w.handle(
        a,
        Command::Register {
            nick: "alice".into(),
        },
    );
    let b = w.connect_cap(10);
    assert!(matches!(
        w.take(b)[..],
        [EventBody::Welcome { online: 1, .. }]
    ));
}

#[test]
fn register_joins_default_room_and_announces() {
    let mut w = World::new();
    let a = w.user("alice");
    let b = w.connect_cap(100);
    w.take(b);
    w.handle(b, Command::Register { nick: "bob".into() });
    let got = w.take(b);
    assert!(matches!(&got[0], EventBody::Registered { nick, online: 2 } if &**nick == "bob"));
    assert!(matches!(&got[1], EventBody::Joined { nick, members: 2, .. } if &**nick == "bob"));
    match &got[2] {
        EventBody::Members { room, members, .. } => {
            assert_eq!(&**room, "lobby");
            assert_eq!(
                members.iter().map(|n| &*n.nick).collect::<Vec<_>>(),
                ["alice", "bob"]
            );
            assert!(members[0].op, "the first in a room is its operator");
            assert!(!members[1].op);
        }
        other => panic!("expected names, got {other:?}"),
    }
    assert!(matches!(&w.take(a)[..], [EventBody::Joined { nick, .. }] if &**nick == "bob"));
}

/// `аlice` (Cyrillic а), fullwidth `Ａｌｉｃｅ` and `𝓪𝓵𝓲𝓬𝓮` cannot sit next to
/// `alice`, on registering or renaming, whatever the protocol (they all
/// come here); the reason says whom they look like.
#[test]
fn lookalike_nicks_are_refused_with_the_reason() {
    let mut w = World::new();
    let alice = w.user("alice");
    let twins = [
        "\u{430}lice",
        "\u{FF21}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}",
        "\u{1D4EA}\u{1D4F5}\u{1D4F2}\u{1D4EC}\u{1D4EE}",
    ];
    for twin in twins {
        let b = w.connect_cap(100);
        w.take(b);
        w.handle(b, Command::Register { nick: twin.into() });
        let refusal = w.take(b).into_iter().find_map(|e| match e {
            EventBody::Refused(r) => Some(r),
            _ => None,
        });
        let refusal = refusal.unwrap_or_else(|| panic!("{twin} was accepted"));
        assert_eq!(refusal.code, ErrorCode::NickInUse, "{twin}");
        assert_eq!(
            refusal.describe(),
            format!("the nickname {twin} is taken: it looks like alice, who is online")
        );
    }
    let carol = w.user("carol");
    w.handle(
        carol,
        Command::Nick {
            new: twins[0].into(),
        },
    );
    assert_eq!(error_code(&w.take(carol)), Some(ErrorCode::NickInUse));
    // alice may change to her own lookalike; then the old one is free.
    w.handle(
        alice,
        Command::Nick {
            new: "ALICE".into(),
        },
    );
    assert_eq!(error_code(&w.take(alice)), None);
    w.handle(
        alice,
        Command::Nick {
            new: "alicia".into(),
        },
    );
    assert_eq!(error_code(&w.take(alice)), None);
    w.handle(
        carol,
        Command::Nick {
            new: twins[0].into(),
        },
    );
    assert_eq!(error_code(&w.take(carol)), None);
    // And gone people free theirs.
    w.disconnect(carol, "bye");
    let d = w.user(twins[1]);
    assert_eq!(
        w.core.state.nick_of(d).map(|n| n.to_string()),
        Some(twins[1].to_string())
    );
}

#[test]
fn duplicate_nick_is_case_insensitive_and_retry_works() {
    let mut w = World::new();
    w.user("Alice");
    let b = w.connect_cap(100);
    w.take(b);
    w.handle(
        b,
        Command::Register {
            nick: "alice".into(),
        },
    );
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::NickInUse));
    w.handle(
        b,
        Command::Register {
            nick: "bad nick".into(),
        },
    );
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::NickInvalid));
    w.handle(
        b,
        Command::Register {
            nick: "小明".into(),
        },
    );
    assert!(matches!(&w.take(b)[0], EventBody::Registered { .. }));
    assert_eq!(w.hub().online(), 2);
}

#[test]
fn messages_reach_room_and_echo_to_sender() {
    let mut w = World::new();
    let a = w.user("alice");
    let b = w.user("bob");
    w.take(a);
    w.say(a, "hello");
    for id in [a, b] {
        assert!(matches!(&w.take(id)[..],
            [EventBody::Message { from, text, .. }] if &**from == "alice" && &**text == "hello"));
    }
    w.say(a, "   ");
    assert_eq!(error_code(&w.take(a)), Some(ErrorCode::EmptyMessage));
}

#[test]
fn private_messages_go_to_both_ends_only() {
    let mut w = World::new();
    let a = w.user("alice");
    let b = w.user("bob");
    let c = w.user("carol");
    for id in [a, b] {
        w.take(id);
    }
    w.handle(
        a,
        Command::Private {
            to: "BOB".into(),
            text: "psst".into(),
            action: false,
        },
    );
    assert!(matches!(&w.take(a)[..], [EventBody::Private { .. }]));
    assert!(matches!(&w.take(b)[..], [EventBody::Private { to, .. }] if &**to == "bob"));
    assert!(w.take(c).is_empty());
    w.handle(
        a,
        Command::Private {
            to: "nobody".into(),
            text: "x".into(),
            action: false,
        },
    );
    assert_eq!(error_code(&w.take(a)), Some(ErrorCode::NoSuchNick));
}

#[test]
fn rooms_switch_and_isolate() {
    let mut w = World::new();
    let a = w.user("alice");
    let b = w.user("bob");
    w.take(a);
    w.handle(
        b,
        Command::Join {
            room: "#rust".into(),
            switch: true,
        },
    );
    assert!(
        matches!(&w.take(a)[..], [EventBody::Parted { nick, members: 1, .. }] if &**nick == "bob")
    );
    w.take(b);
    w.say(a, "lobby only");
    assert!(w.take(b).is_empty());
    assert_eq!(w.take(a).len(), 1, "sender sees its own line");
    w.say(b, "rust only");
    assert!(w.take(a).is_empty());
    assert_eq!(w.take(b).len(), 1);
    w.handle(a, Command::Rooms { after: None });
    assert!(matches!(&w.take(a)[..], [EventBody::RoomList { rooms, .. }] if rooms.len() == 2));
    w.handle(
        b,
        Command::Part {
            room: None,
            reason: None,
        },
    );
    w.take(b);
    w.say(b, "nowhere");
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::NotInRoom));
    w.handle(a, Command::Rooms { after: None });
    assert!(
        matches!(&w.take(a)[..], [EventBody::RoomList { rooms, .. }] if rooms.len() == 1),
        "empty room freed"
    );
    w.handle(
        a,
        Command::Join {
            room: "bad room!".into(),
            switch: true,
        },
    );
    assert_eq!(error_code(&w.take(a)), Some(ErrorCode::RoomInvalid));
}

#[test]
fn nick_change_is_announced_and_frees_old_nick() {
    let mut w = World::new();
    let a = w.user("alice");
    let b = w.user("bob");
    w.take(a);
    w.handle(
        b,
        Command::Nick {
            new: "ALICE".into(),
        },
    );
    assert_eq!(error_code(&w.take(b)), Some(ErrorCode::NickInUse));
    w.handle(
        b,
        Command::Nick {
            new: "robert".into(),
        },
    );
    assert!(
        matches!(&w.take(a)[..], [EventBody::NickChanged { old, new }] if &**old == "bob" && &**new == "robert")
    );
    let c = w.connect_cap(10);
    w.handle(c, Command::Register { nick: "bob".into() });
    assert!(matches!(&w.take(c)[1], EventBody::Registered { .. }));
}

#[test]
fn quit_and_disconnect_free_state_and_tell_room() {
    let mut w = World::new();
    let a = w.user("alice");
    let b = w.user("bob");
    w.take(a);
    assert_eq!(
        w.handle(
            b,
            Command::Quit {
                reason: Some("bye".into())
            }
        ),
        Outcome::Close
    );
    assert!(
        matches!(&w.take(a)[..], [EventBody::Quit { nick, reason }] if &**nick == "bob" && reason.contains("bye"))
    );
    assert_eq!(w.hub().online(), 1);
    w.disconnect(a, "connection closed");
    assert_eq!(w.hub().online(), 0);
    assert_eq!(w.hub().connections(), 0);
    assert!(w.hub().rooms.is_empty());
    assert!(w.hub().nicks.is_empty());
}

#[test]
fn commands_need_registration() {
    let mut w = World::new();
    let a = w.connect_cap(10);
    w.take(a);
    w.say(a, "hi");
    assert_eq!(error_code(&w.take(a)), Some(ErrorCode::NotRegistered));
}

#[test]
fn slow_consumer_is_removed_and_room_goes_on() {
    let mut w = World::new();
    let a = w.user("alice");
    let slow = w.connect_cap(8);
    w.handle(
        slow,
        Command::Register {
            nick: "slow".into(),
        },
    );
    w.take(a);
    for i in 0..20 {
        w.say(a, &format!("m{i}"));
    }
    let got = w.take(a);
    assert!(got.iter().any(|e| matches!(e, EventBody::Quit { nick, reason } if &**nick == "slow" && reason.contains("send queue"))));
    let texts: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            EventBody::Message { text, .. } => Some(text.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(w.hub().online(), 1);
}

#[test]
fn large_rooms_do_not_announce_every_join() {
    let mut w = World::new();
    w.hub().config.large_room = 3;
    let first = w.user("u0");
    for i in 1..10 {
        w.user(&format!("u{i}"));
    }
    // u0 saw joins of u1, u2 (room sizes 2, 3) and nothing after
    let joins = w
        .take(first)
        .iter()
        .filter(|e| matches!(e, EventBody::Joined { .. }))
        .count();
    assert_eq!(joins, 2);
    w.handle(first, Command::Who { room: None });
    assert!(
        matches!(&w.take(first)[..], [EventBody::Members { members, .. }] if members.len() == 10)
    );
}

#[test]
fn every_member_sees_the_room_in_one_order() {
    let mut w = World::new();
    let people: Vec<ConnId> = ["a", "b", "c", "d"].iter().map(|n| w.user(n)).collect();
    for &p in &people {
        w.take(p);
    }
    let mut said = 0;
    for round in 0..25 {
        for (i, &p) in people.iter().enumerate() {
            if (round + i) % 3 != 0 {
                w.say(p, &format!("{round}/{i}"));
                said += 1;
            }
        }
    }
    let order = |w: &mut World, p| -> Vec<(u64, MsgId)> {
        w.take(p)
            .into_iter()
            .filter_map(|e| match e {
                EventBody::Message { seq, id, .. } => Some((seq, id)),
                _ => None,
            })
            .collect()
    };
    let first = order(&mut w, people[0]);
    assert_eq!(first.len(), said);
    assert!(first
        .windows(2)
        .all(|p| p[0].0 + 1 == p[1].0 && p[0].1 < p[1].1));
    for &p in &people[1..] {
        assert_eq!(order(&mut w, p), first);
    }
}

/// Thousands of members overflowing at once (a store that holds events
/// back makes whole rooms fall behind together): each removal's quit
/// overflows the others again. Reaping must not recurse per removal, or
/// the server's stack overflows and the process aborts.
#[test]
fn a_cascade_of_slow_consumers_does_not_recurse() {
    const N: usize = 600;
    let cascade = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(|| {
            let mut w = World::with(HubConfig {
                large_room: 1_000_000,
                ..config()
            });
            let a = w.connect_cap(usize::MAX);
            w.handle(
                a,
                Command::Register {
                    nick: "alice".into(),
                },
            );
            let members: Vec<ConnId> = (0..N)
                .map(|i| {
                    let m = w.connect_cap(usize::MAX);
                    let nick = format!("m{i}");
                    w.handle(m, Command::Register { nick });
                    m
                })
                .collect();
            for m in &members {
                w.take(*m);
                if let Some((cap, _)) = w.core.router.queues().get_mut(&m.local) {
                    *cap = 0; // full: nobody reads
                }
            }
            w.take(a);
            w.say(a, "hello");
            assert_eq!(w.hub().online(), 1, "every slow member removed");
            let quits = w
                .take(a)
                .into_iter()
                .filter(|e| matches!(e, EventBody::Quit { .. }))
                .count();
            assert_eq!(quits, N, "alice saw each of them go, once");
        })
        .unwrap();
    cascade.join().expect("no stack overflow");
}

#[test]
fn tables_of_people_shrink_after_a_mass_departure() {
    // No default room: 2000 people in one room is a different test.
    let mut w = World::with(HubConfig {
        default_room: String::new(),
        ..config()
    });
    let idle = w.table_slots_now();
    let people: Vec<ConnId> = (0..2000).map(|i| w.user(&format!("p{i}"))).collect();
    let full = w.table_slots_now();
    assert!(full >= 4 * 2000, "conns, nicks, lookalikes: {full} slots");
    for (i, id) in people.iter().enumerate() {
        if i % 100 != 0 {
            w.disconnect(*id, "gone");
        }
    }
    assert_eq!(w.hub().online(), 20);
    let after = w.table_slots_now();
    assert!(
        after <= idle + 3 * 128,
        "20 people left hold {after} slots (idle {idle}, at 2000 people {full})"
    );
    // What is left still works: a nick of one who left is free again.
    let again = w.user("p1");
    assert_eq!(
        w.hub().nick_of(again).map(|n| n.to_string()),
        Some("p1".into())
    );
}

impl World {
    fn table_slots_now(&mut self) -> usize {
        self.hub().table_slots()
    }
}

#[test]
fn audience_sizes_count_who_an_event_reaches() {
    // The recipients of an event share what it costs itself, so the size
    // must be the number of connections it goes to.
    let mut w = World::new();
    let people: Vec<ConnId> = ["ann", "ben", "cat"].iter().map(|n| w.user(n)).collect();
    let hub = w.hub();
    let lobby: Name = "lobby".into();
    let mut reached = 0;
    hub.for_each_member(&Audience::Room(lobby.clone()), |_| reached += 1);
    assert_eq!(reached, 3);
    assert_eq!(hub.audience_size(&Audience::Room(lobby.clone())), 3);
    assert_eq!(
        hub.audience_size(&Audience::RoomExcept(lobby.clone(), people[0])),
        2
    );
    assert_eq!(hub.audience_size(&Audience::Conn(people[1])), 1);
    assert_eq!(hub.audience_size(&Audience::Everyone), 3);
    assert_eq!(hub.audience_size(&Audience::Room("nowhere".into())), 0);
    w.disconnect(people[2], "gone");
    assert_eq!(w.hub().audience_size(&Audience::Room(lobby)), 2);
}

/// Every connection has a record in the hub's table for its whole life,
/// idle or not: what few use (away, oper, MONITOR, invites, …) is behind
/// one pointer that stays null for an idle connection, and the default
/// user and real name are shared, not copied.
#[test]
fn an_idle_connection_record_stays_small() {
    let size = std::mem::size_of::<Conn>();
    eprintln!("Conn: {size} bytes, Rare: {}", std::mem::size_of::<Rare>());
    // 160 bytes (a jemalloc size class: 192 before `perf16n`), 280 before
    // `perf16h`. Grow it only knowingly: the table keeps
    // up to about twice the slots.
    assert!(
        size <= 160,
        "the hub's record of a connection is {size} bytes"
    );
    // A slot of the tables by nick (`nicks`, `lookalikes`: 40 bytes with a
    // `String` key before `perf16n`), each kept up to about twice full.
    fn slot<K, V, S>(_: &HashMap<K, V, S>) -> usize {
        std::mem::size_of::<(K, V)>()
    }
    let w = World::new();
    let slots = (slot(&w.core.state.nicks), slot(&w.core.state.lookalikes));
    assert_eq!(slots, (32, 32), "the nick tables' slots");
    let (a, b) = (Conn::new("h".into()), Conn::new("h".into()));
    assert!(a.rare.is_none(), "nothing rare until it is needed");
    assert!(Arc::ptr_eq(&a.user, &b.user) && Arc::ptr_eq(&a.realname, &b.realname));
}

/// A member's list of rooms holds what it needs, not a `Vec`'s first
/// growth of four slots (64 bytes kept by every idle member of one room:
/// `perf16n`); and the signon time WHOIS gives is the registration's,
/// now read from the id of the registration fact the record keeps.
#[test]
fn a_members_room_list_and_signon_stay_exact() {
    let mut w = World::new();
    let before = crate::proto::now_ms();
    let a = w.user("alice");
    let after = crate::proto::now_ms();
    let b = w.user("bob");
    let rooms = |w: &mut World, id: ConnId| {
        let c = &w.hub().conns[&id];
        (c.rooms.len(), c.rooms.capacity())
    };
    assert_eq!(rooms(&mut w, a), (1, 1), "in the lobby, one slot");
    for room in ["#one", "#two"] {
        let cmd = Command::Join {
            room: room.into(),
            switch: false,
        };
        w.handle(a, cmd);
    }
    assert_eq!(rooms(&mut w, a), (3, 3));
    w.take(b);
    w.handle(
        b,
        Command::Whois {
            nick: "alice".into(),
        },
    );
    match &w.take(b)[..] {
        [EventBody::Whois { info: Some(i), .. }] => assert!(
            (before..=after + 1).contains(&i.signon_ms),
            "signon {} not within {before}..={after}",
            i.signon_ms
        ),
        other => panic!("{other:?}"),
    }
}
