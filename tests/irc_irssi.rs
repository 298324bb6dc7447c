//! A real IRC client from Debian, irssi, in tmux against natter: it
//! registers, joins a channel where a text user is, talks with them both
//! ways, and shows WHOIS, NAMES and topics as it should. Skipped, with the
//! reason printed, only where irssi or tmux is missing (never in CI:
//! `.ci/run` installs them).

mod client_support;
mod common;

use client_support::{TempDir, Tmux};
use common::{config, find_tool, missing, start};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn irssi_registers_joins_and_talks_with_a_text_user() {
    if find_tool("irssi").is_none() {
        missing("irssi is not installed; the irssi test did not run");
        return;
    }
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let irc = srv.irc_addr.expect("IRC listener on");
    let mut bob = rt.block_on(srv.user("bob"));
    let home = TempDir::new("irssi");
    let cmd = format!(
        "irssi --home={} -n alice -c {} -p {}",
        home.path().display(),
        irc.ip(),
        irc.port()
    );
    let Some(tmux) = Tmux::start(&cmd, 120, 40) else {
        return;
    };
    tmux.wait_screen("the welcome", |s| {
        s.contains("Welcome to the natter IRC Network alice")
    });

    // JOIN: irssi shows the join and the names, bob among them as operator.
    tmux.type_text("/join #lobby");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("the join and names", |s| {
        s.contains("has joined #lobby") && s.contains("@bob")
    });
    rt.block_on(bob.expect("alice joined #lobby"));

    // Talk both ways.
    rt.block_on(bob.send("hi irssi"));
    tmux.wait_screen("bob's line", |s| s.contains("bob> hi irssi"));
    tmux.type_text("hello bob");
    tmux.keys(&["Enter"]);
    rt.block_on(bob.expect("alice: hello bob"));

    // WHOIS shows the text user's real name (in irssi's status window).
    tmux.type_text("/whois bob");
    tmux.keys(&["Enter"]);
    tmux.type_text("/window 1");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("the whois", |s| s.contains("natter text user"));
    tmux.type_text("/window 2");
    tmux.keys(&["Enter"]);

    // A channel of its own: alice is its operator and sets the topic,
    // which the text user then sees on joining.
    tmux.type_text("/join #irssi");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("the second join", |s| s.contains("has joined #irssi"));
    tmux.type_text("/topic Irssi was here");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("the topic change", |s| s.contains("Irssi was here"));
    rt.block_on(bob.send("/join irssi"));
    rt.block_on(bob.expect("Topic of #irssi: Irssi was here (set by alice)"));

    tmux.type_text("/quit bye");
    tmux.keys(&["Enter"]);
    rt.block_on(bob.expect("alice quit"));
    rt.block_on(srv.shutdown());
}
