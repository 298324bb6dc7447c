use super::*;
use crate::proto::{
    BanInfo, MemberInfo, ModeChange, Name, Refusal, RoomSummary, TopicState, WhoisInfo,
};

fn cmd(line: &str) -> Command {
    match parse(line) {
        Input::Command(c) => c,
        other => panic!("{line}: {other:?}"),
    }
}

fn error(line: &str) -> (ErrorCode, String) {
    match parse(line) {
        Input::Error(c, m) => (c, m),
        other => panic!("{line}: expected error, got {other:?}"),
    }
}

fn code(line: &str) -> ErrorCode {
    error(line).0
}

#[test]
fn seed_commands() {
    assert_eq!(
        cmd(r#"{"cmd":"login","nick":"alice"}"#),
        Command::Register {
            nick: "alice".into()
        }
    );
    assert_eq!(
        cmd(r#"{"cmd":"chat","nick":"alice","msg":"hi"}"#),
        Command::Say {
            room: None,
            text: "hi".into(),
            action: false
        }
    );
    assert_eq!(
        cmd(r#"{"cmd":"chat","msg":"hi"}"#),
        Command::Say {
            room: None,
            text: "hi".into(),
            action: false
        }
    );
    assert_eq!(cmd(r#"{"cmd":"quit"}"#), Command::Quit { reason: None });
    assert_eq!(cmd(r#"{"cmd":"exit"}"#), Command::Quit { reason: None });
    assert_eq!(parse(r#"{"cmd":"keep"}"#), Input::Keep);
    assert_eq!(parse(r#"{"cmd":"pong"}"#), Input::Keep);
    assert_eq!(parse(r#"{"cmd":"help"}"#), Input::Help);
}

#[test]
fn every_command_and_its_fields() {
    let say = |room: Option<&str>, text: &str, action| Command::Say {
        room: room.map(Into::into),
        text: text.into(),
        action,
    };
    let cases = [
        (
            r#"{"cmd":"chat","msg":"hi","room":"rust","action":true}"#,
            say(Some("rust"), "hi", true),
        ),
        (
            r#"{"cmd":"chat","msg":"x","room":null}"#,
            say(None, "x", false),
        ),
        (r#"{"cmd":"me","msg":"waves"}"#, say(None, "waves", true)),
        (
            r#"{"cmd":"me","msg":"waves","room":"r"}"#,
            say(Some("r"), "waves", true),
        ),
        // Controls are taken out of what people say.
        (
            r#"{"cmd":"chat","msg":"a\u0007b\u001b[31mc"}"#,
            say(None, "abc", false),
        ),
        (
            r#"{"cmd":"msg","to":"bob","msg":"x"}"#,
            Command::Private {
                to: "bob".into(),
                text: "x".into(),
                action: false,
            },
        ),
        (
            r#"{"cmd":"private","to":"bob","msg":"x","action":true}"#,
            Command::Private {
                to: "bob".into(),
                text: "x".into(),
                action: true,
            },
        ),
        (
            r#"{"cmd":"join","room":"rust"}"#,
            Command::Join {
                room: "rust".into(),
                switch: true,
            },
        ),
        (
            r#"{"cmd":"join","room":"rust","key":"k"}"#,
            Command::JoinWithKey {
                room: "rust".into(),
                key: Some("k".into()),
                switch: true,
            },
        ),
        (
            r#"{"cmd":"part","room":"r","reason":"bye\u0000"}"#,
            Command::Part {
                room: Some("r".into()),
                reason: Some("bye".into()),
            },
        ),
        (
            r#"{"cmd":"part","reason":null}"#,
            Command::Part {
                room: None,
                reason: None,
            },
        ),
        (r#"{"cmd":"who"}"#, Command::Who { room: None }),
        (
            r#"{"cmd":"who","room":"r"}"#,
            Command::Who {
                room: Some("r".into()),
            },
        ),
        (
            r#"{"cmd":"rooms","x":{"deep":[1]}}"#,
            Command::Rooms { after: None },
        ),
        (
            r#"{"cmd":"nick","nick":"n"}"#,
            Command::Nick { new: "n".into() },
        ),
        (
            r#"{"cmd":"exit","reason":"bye"}"#,
            Command::Quit {
                reason: Some("bye".into()),
            },
        ),
        // A repeated field: the last one counts, as it always did.
        (
            r#"{"cmd":"chat","msg":"a","msg":"b"}"#,
            say(None, "b", false),
        ),
        (
            r#"{"cmd":"chat","cmd":"me","msg":"b"}"#,
            say(None, "b", true),
        ),
        (r#"  {"msg":"x","cmd":"chat"}  "#, say(None, "x", false)),
    ];
    for (line, want) in cases {
        assert_eq!(cmd(line), want, "{line}");
    }
}

#[test]
fn bad_input_gets_codes() {
    assert_eq!(code("{not json"), ErrorCode::Malformed);
    assert_eq!(code("[1,2]"), ErrorCode::Malformed);
    assert_eq!(code(r#"["keep"]"#), ErrorCode::Malformed);
    assert_eq!(code(r#"{"nick":"x"}"#), ErrorCode::BadArguments);
    assert_eq!(code(r#"{"cmd":5}"#), ErrorCode::BadArguments);
    assert_eq!(code(r#"{"cmd":"dance"}"#), ErrorCode::UnknownCommand);
    assert_eq!(
        code(r#"{"cmd":"login","nick":42}"#),
        ErrorCode::BadArguments
    );
    assert_eq!(code(r#"{"cmd":"chat"}"#), ErrorCode::BadArguments);
}

#[test]
fn bad_input_gets_messages_that_say_what_is_wrong() {
    let cases = [
        ("", "empty line: expected a JSON object"),
        (
            "{not json",
            "malformed JSON: key must be a string at line 1 column 2",
        ),
        (
            r#"{"cmd":"chat","msg":"x"} trailing"#,
            "malformed JSON: trailing characters at line 1 column 26",
        ),
        ("\"str\"", "expected a JSON object"),
        (r#"{"nick":"x"}"#, "missing \"cmd\""),
        (r#"{"cmd":null}"#, "\"cmd\" must be a string"),
        (r#"{"cmd":["chat"]}"#, "\"cmd\" must be a string"),
        (r#"{"cmd":"dance"}"#, "unknown cmd \"dance\""),
        (r#"{"cmd":"Chat","msg":"x"}"#, "unknown cmd \"Chat\""),
        (r#"{"cmd":"login"}"#, "bad arguments: missing field `nick`"),
        (
            r#"{"cmd":"msg","to":"bob"}"#,
            "bad arguments: missing field `msg`",
        ),
        (
            r#"{"cmd":"login","nick":42}"#,
            "bad arguments: invalid type: integer `42`, expected a string",
        ),
        (
            r#"{"cmd":"chat","msg":"hi","room":7}"#,
            "bad arguments: invalid type: integer `7`, expected a string",
        ),
        (
            r#"{"cmd":"chat","msg":null}"#,
            "bad arguments: invalid type: null, expected a string",
        ),
        (
            r#"{"cmd":"chat","msg":"hi","action":"yes"}"#,
            "bad arguments: invalid type: string \"yes\", expected a boolean",
        ),
        (
            r#"{"cmd":"quit","reason":5}"#,
            "bad arguments: invalid type: integer `5`, expected a string",
        ),
        (
            r#"{"cmd":"login","nick":"x","nick":5}"#,
            "bad arguments: invalid type: integer `5`, expected a string",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(error(line).1, want, "{line}");
    }
}

#[test]
fn renders_objects_with_type_and_ts() {
    let ev = Event::new(EventBody::Message {
        id: MsgId(7),
        seq: 3,
        room: "lobby".into(),
        from: "a".into(),
        text: "x\"y".into(),
        action: false,
    });
    let mut out = Vec::new();
    render(&ev, &mut out);
    let m = wire::parse_event(std::str::from_utf8(&out).unwrap()).unwrap();
    let id = MsgId(7).to_string();
    assert!(
        matches!(m.event, wire::Event::Message { id: i, seq: 3, text, .. } if text == "x\"y" && i == id)
    );
    assert!(m.ts > 0);
    assert!(out.ends_with(b"\r\n"));
}

fn n(s: &str) -> Name {
    s.into()
}

fn member(nick: &str, op: bool, voice: bool, away: bool) -> MemberInfo {
    MemberInfo {
        nick: n(nick),
        user: n("~u"),
        host: n("h.ip"),
        realname: n("Real \"Name\""),
        away,
        oper: false,
        bot: false,
        op,
        voice,
        account: None,
    }
}

/// Every event as JSON clients get it, to the byte: the wire format as
/// docs/PROTOCOL.md gives it (type first, then the fields in the order of
/// its tables, then ts).
#[test]
fn every_event_renders_as_documented() {
    let topic = TopicState {
        text: "t".into(),
        set_by: n("op"),
        set_at_ms: 1700,
    };
    let whois = WhoisInfo {
        user: n("~b"),
        host: n("h"),
        realname: n("Bob"),
        rooms: vec![(n("lobby"), true, false), (n("rust"), false, true)],
        away: Some("gone".into()),
        idle_secs: 5,
        signon_ms: 1000,
        account: Some(n("bob")),
        oper: false,
        bot: false,
        secure: false,
    };
    let mode = |mode, arg: Option<&str>| ModeChange {
        add: true,
        mode,
        arg: arg.map(Into::into),
    };
    let cases = [
        (
            EventBody::Welcome {
                server: n("natter"),
                online: 3,
            },
            r#"{"type":"welcome","server":"natter","online":3}"#,
        ),
        (
            EventBody::Registered {
                nick: n("alice"),
                online: 4,
            },
            r#"{"type":"registered","nick":"alice","online":4}"#,
        ),
        (
            EventBody::Joined {
                room: n("lobby"),
                nick: n("alice"),
                members: 2,
            },
            r#"{"type":"joined","room":"lobby","nick":"alice","members":2}"#,
        ),
        (
            EventBody::Parted {
                room: n("lobby"),
                nick: n("alice"),
                members: 1,
                reason: None,
            },
            r#"{"type":"left","room":"lobby","nick":"alice","members":1,"reason":null}"#,
        ),
        (
            EventBody::Quit {
                nick: n("bob"),
                reason: "quit: x".into(),
            },
            r#"{"type":"quit","nick":"bob","reason":"quit: x"}"#,
        ),
        (
            EventBody::Message {
                id: MsgId(12),
                seq: 4,
                room: n("lobby"),
                from: n("alice"),
                text: "hi \"there\" 😀 \\".into(),
                action: false,
            },
            r#"{"type":"message","id":"00000000-0000-0000-0000-00000000000c","seq":4,"room":"lobby","from":"alice","text":"hi \"there\" 😀 \\","action":false}"#,
        ),
        (
            EventBody::Private {
                id: MsgId(14),
                from: n("a"),
                to: n("b"),
                text: "psst".into(),
                action: true,
            },
            r#"{"type":"private","id":"00000000-0000-0000-0000-00000000000e","from":"a","to":"b","text":"psst","action":true}"#,
        ),
        (
            EventBody::NickChanged {
                old: n("bob"),
                new: n("robert"),
            },
            r#"{"type":"nick","old":"bob","new":"robert"}"#,
        ),
        (
            EventBody::Members {
                room: n("lobby"),
                visibility: Default::default(),
                members: crate::proto::member_list(vec![
                    member("a", true, false, false),
                    member("b", false, true, true),
                    member("c", true, true, false),
                ]),
            },
            r#"{"type":"presence","room":"lobby","nicks":["a","b","c"],"ops":["a","c"],"voiced":["b","c"],"total":3}"#,
        ),
        (
            EventBody::RoomList {
                rooms: vec![(n("lobby"), 2), (n("rust"), 1)],
                next: None,
                total: 2,
            },
            r#"{"type":"rooms","rooms":[{"room":"lobby","members":2},{"room":"rust","members":1}],"total":2,"next":null}"#,
        ),
        (
            EventBody::RoomDetails {
                rooms: vec![
                    RoomSummary {
                        name: n("lobby"),
                        members: 2,
                        topic: None,
                    },
                    RoomSummary {
                        name: n("rust"),
                        members: 1,
                        topic: Some("crabs".into()),
                    },
                ],
            },
            r#"{"type":"rooms","rooms":[{"room":"lobby","members":2,"topic":null},{"room":"rust","members":1,"topic":"crabs"}]}"#,
        ),
        (
            EventBody::Info {
                text: "Goodbye!".into(),
            },
            r#"{"type":"info","text":"Goodbye!"}"#,
        ),
        (
            EventBody::error(ErrorCode::BadArguments, "bad arguments: x"),
            r#"{"type":"error","code":"bad_arguments","message":"bad arguments: x"}"#,
        ),
        (
            EventBody::Refused(Refusal::new(ErrorCode::BadKey).room("#rust")),
            r##"{"type":"error","code":"bad_key","message":"#rust needs a key (+k)","room":"rust"}"##,
        ),
        (
            EventBody::Whois {
                nick: n("ghost"),
                info: None,
            },
            r#"{"type":"error","code":"no_such_nick","message":"nobody is called ghost","nick":"ghost"}"#,
        ),
        (
            EventBody::Ping { token: 99 },
            r#"{"type":"ping","token":99}"#,
        ),
        (
            EventBody::Shutdown {
                reason: "maintenance".into(),
            },
            r#"{"type":"shutdown","reason":"maintenance"}"#,
        ),
        (
            EventBody::Notice {
                id: MsgId(5),
                from: n("ircguy"),
                room: Some(n("lobby")),
                to: None,
                text: "note".into(),
            },
            r#"{"type":"notice","id":"00000000-0000-0000-0000-000000000005","from":"ircguy","room":"lobby","to":null,"text":"note"}"#,
        ),
        (
            EventBody::TopicChanged {
                id: MsgId(6),
                room: n("lobby"),
                nick: n("op"),
                topic: None,
            },
            r#"{"type":"topic","room":"lobby","topic":null,"by":"op","changed":true}"#,
        ),
        (
            EventBody::TopicInfo {
                room: n("lobby"),
                topic: Some(topic),
            },
            r#"{"type":"topic","room":"lobby","topic":"t","by":"op","set_at":1700,"changed":false}"#,
        ),
        (
            EventBody::TopicInfo {
                room: n("lobby"),
                topic: None,
            },
            r#"{"type":"topic","room":"lobby","topic":null,"changed":false}"#,
        ),
        (
            EventBody::Kicked {
                room: n("lobby"),
                nick: n("op"),
                target: n("bob"),
                reason: Some("spam".into()),
                members: 3,
            },
            r#"{"type":"kicked","room":"lobby","by":"op","nick":"bob","reason":"spam","members":3}"#,
        ),
        (
            EventBody::ModeChanged {
                room: n("lobby"),
                nick: n("op"),
                changes: vec![mode('o', Some("bob")), mode('k', Some("*"))],
            },
            r#"{"type":"mode","room":"lobby","by":"op","changes":"+o bob +k *"}"#,
        ),
        (
            EventBody::RoomModes {
                room: n("lobby"),
                modes: vec![mode('n', None), mode('t', None)],
                created_ms: 1234,
            },
            r#"{"type":"modes","room":"lobby","modes":"+n +t","created":1234}"#,
        ),
        (
            EventBody::BanList {
                mode: 'b',
                room: n("lobby"),
                bans: vec![BanInfo {
                    mask: "x!*@*".into(),
                    set_by: n("op"),
                    set_at_ms: 77,
                }],
            },
            r#"{"type":"bans","room":"lobby","bans":[{"mask":"x!*@*","by":"op","at":77}]}"#,
        ),
        (
            EventBody::Away {
                nick: n("bob"),
                text: None,
            },
            r#"{"type":"away","nick":"bob","text":null}"#,
        ),
        (
            EventBody::AwayReply {
                nick: n("bob"),
                text: "lunch".into(),
            },
            r#"{"type":"away","nick":"bob","text":"lunch"}"#,
        ),
        (
            EventBody::AwayStatus { away: true },
            r#"{"type":"away_status","away":true}"#,
        ),
        (
            EventBody::Invited {
                room: n("lobby"),
                nick: n("op"),
                target: n("bob"),
            },
            r#"{"type":"invited","room":"lobby","by":"op","nick":"bob"}"#,
        ),
        (
            EventBody::WhoReply {
                mask: n("b*"),
                room: None,
                members: vec![member("bob", false, false, true)],
            },
            r#"{"type":"who","mask":"b*","room":null,"members":[{"nick":"bob","user":"~u","host":"h.ip","realname":"Real \"Name\"","away":true,"op":false,"voice":false}]}"#,
        ),
        (
            EventBody::Whois {
                nick: n("bob"),
                info: Some(Box::new(whois)),
            },
            r#"{"type":"whois","nick":"bob","user":"~b","host":"h","realname":"Bob","rooms":["lobby","rust"],"away":"gone","idle":5,"signon":1000,"account":"bob"}"#,
        ),
        (
            EventBody::Lusers {
                users: 5,
                invisible: 0,
                opers: 0,
                unregistered: 1,
                rooms: 2,
                max_users: 5,
            },
            r#"{"type":"stats","users":5,"unregistered":1,"rooms":2}"#,
        ),
        (
            EventBody::UserModes {
                nick: n("bob"),
                modes: "+i".into(),
                changed: true,
            },
            r#"{"type":"user_modes","nick":"bob","modes":"+i"}"#,
        ),
    ];
    for (body, want) in cases {
        let mut ev = Event::new(body);
        ev.at_ms = 1764000000000;
        let mut out = Vec::new();
        render(&ev, &mut out);
        let line = String::from_utf8(out).unwrap();
        let want = format!(
            "{},\"ts\":1764000000000}}\r\n",
            want.strip_suffix('}').unwrap()
        );
        assert_eq!(line, want);
        // Clients read it back with the same types, and nothing is lost.
        let read = wire::parse_event(&line).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), line.trim_end());
    }
}

#[test]
fn help_lists_every_command() {
    let mut out = Vec::new();
    render(&Event::new(EventBody::Help), &mut out);
    let line = wire::parse_event(std::str::from_utf8(&out).unwrap()).unwrap();
    let wire::Event::Help { commands } = line.event else {
        panic!("{line:?}")
    };
    let names: Vec<_> = commands.iter().map(|c| &*c.cmd).collect();
    let want: Vec<_> = wire::COMMANDS.iter().map(|(c, _)| *c).collect();
    assert_eq!(names, want);
    assert_eq!(
        commands[0].usage,
        r#"{"cmd":"login","nick":N[,"password":P]}"#
    );
}
