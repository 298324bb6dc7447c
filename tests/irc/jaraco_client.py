#!/usr/bin/env python3
"""Drives natter with a real IRC client library that natter's authors did
not write: jaraco/irc (PyPI package `irc`).

Usage: jaraco_client.py IRC_ADDR MAIN_ADDR

A text user called `textbob` must already be in #lobby (the Rust test
tests/irc_jaraco.rs sets that up and plays textbob's side). This script:

* registers `pyalice` on the IRC port, checks the welcome and ISUPPORT and
  joins #lobby (IRC users are not put in a room by themselves);
* sees textbob in the #lobby NAMES, says hello there and waits for
  textbob's answer and his /me (a CTCP ACTION here), then sends an ACTION;
* joins #pytest (a new room: pyalice gets ops);
* connects a second client on the MAIN port as `textbob` (taken: 433),
  then retries as `pybob`;
* sends an unknown command (421) and a JOIN with no channel (461);
* quits both.

Prints one line per step and `OK` at the end; exits 0 on success, 1 on
failure, 3 if the `irc` package is missing.
"""

import sys
import time

try:
    import irc.client
except ImportError:
    print(
        "SKIP: the python package 'irc' is not installed here"
        " (.ci/run installs it into .venv-ci)",
        file=sys.stderr,
    )
    sys.exit(3)

TIMEOUT = 20.0


def split_addr(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def main():
    irc_host, irc_port = split_addr(sys.argv[1])
    main_host, main_port = split_addr(sys.argv[2])
    reactor = irc.client.Reactor()
    seen = set()
    errors = []

    def step(name):
        if name not in seen:
            seen.add(name)
            print("step:", name, flush=True)

    def on_welcome(conn, event):
        step("welcome " + conn.get_nickname())
        if conn is alice:
            # IRC users join what they ask for (no automatic #lobby)
            conn.join("#lobby")
            conn.join("#pytest")
        else:
            conn.send_raw("FROBNICATE now")
            conn.send_raw("JOIN")

    def check_features(conn):
        # ISUPPORT (005) arrives after 001: check once the room is joined.
        f = conn.features
        checks = {
            "prefix": dict(getattr(f, "prefix", {})) == {"@": "o", "+": "v"},
            "chantypes": getattr(f, "chantypes", None) == "#",
            "casemapping": getattr(f, "casemapping", None) == "ascii",
            "nicklen": getattr(f, "nicklen", None) == 30,
            "chanmodes": getattr(f, "chanmodes", None) == ["beI", "k", "l", "imnpst"],
        }
        for name, ok in checks.items():
            if not ok:
                errors.append("ISUPPORT %s parsed as %r" % (name, getattr(f, name, None)))
        step("ISUPPORT understood")

    def on_join(conn, event):
        if conn is alice and event.source.nick == "pyalice":
            step("joined " + event.target)
            if event.target == "#lobby":
                check_features(conn)

    def on_namreply(conn, event):
        # arguments: [visibility, channel, names]
        channel, names = event.arguments[1], event.arguments[2].split()
        bare = [n.lstrip("@+") for n in names]
        if conn is alice and channel == "#lobby" and "textbob" in bare:
            step("textbob in #lobby names")
            conn.privmsg("#lobby", "hello from python")
        if conn is alice and channel == "#pytest":
            if names != ["@pyalice"]:
                errors.append("#pytest names: %r" % (names,))
            step("op in new room")

    def on_pubmsg(conn, event):
        if conn is alice and event.source.nick == "textbob" and event.target == "#lobby":
            if event.arguments[0] == "hello from text":
                step("text user's line arrived")

    def on_action(conn, event):
        if conn is alice and event.source.nick == "textbob" and event.arguments[0] == "waves":
            step("text user's /me arrived as ACTION")
            conn.action("#lobby", "bows")
            # now the collision, on the main port
            try:
                second = reactor.server()
                clients.append(second)
                second.connect(main_host, main_port, "textbob", username="pyb", ircname="Py Bob")
            except irc.client.ServerConnectionError as e:
                errors.append("second connect failed: %s" % e)

    def on_nicknameinuse(conn, event):
        step("433 for textbob")
        conn.nick("pybob")

    def on_unknowncommand(conn, event):
        step("421 for FROBNICATE")

    def on_needmoreparams(conn, event):
        if event.arguments and event.arguments[0] == "JOIN":
            step("461 for JOIN")

    for kind, handler in [
        ("welcome", on_welcome),
        ("join", on_join),
        ("namreply", on_namreply),
        ("pubmsg", on_pubmsg),
        ("action", on_action),
        ("nicknameinuse", on_nicknameinuse),
        ("unknowncommand", on_unknowncommand),
        ("needmoreparams", on_needmoreparams),
    ]:
        reactor.add_global_handler(kind, handler)

    clients = []
    alice = reactor.server()
    clients.append(alice)
    alice.connect(irc_host, irc_port, "pyalice", username="pya", ircname="Py Alice")

    wanted = {
        "welcome pyalice",
        "ISUPPORT understood",
        "joined #lobby",
        "joined #pytest",
        "op in new room",
        "textbob in #lobby names",
        "text user's line arrived",
        "text user's /me arrived as ACTION",
        "433 for textbob",
        "welcome pybob",
        "421 for FROBNICATE",
        "461 for JOIN",
    }
    deadline = time.monotonic() + TIMEOUT
    while not wanted <= seen and not errors and time.monotonic() < deadline:
        reactor.process_once(0.1)
    for c in clients:
        if c.is_connected():
            c.quit("done")
    # Let the server close the connections (reading until then avoids a reset).
    until = time.monotonic() + 3
    while any(c.is_connected() for c in clients) and time.monotonic() < until:
        reactor.process_once(0.1)
    missing = sorted(wanted - seen)
    if errors or missing:
        print("FAIL: errors=%r missing=%r" % (errors, missing), flush=True)
        return 1
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
