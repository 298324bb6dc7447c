#!/usr/bin/env python3
"""Reads natter's room history with a real IRC client library that
natter's authors did not write: jaraco/irc (PyPI package `irc`).

Usage: jaraco_chathistory.py IRC_ADDR

Room #pyhist must already hold the lines `p 1` … `p 5` (the Rust test
tests/irc_jaraco.rs says them). This script registers `pyhist`, asks for
`batch draft/chathistory server-time message-tags`, joins #pyhist (no
replay: it fetches history itself), then:

* CHATHISTORY LATEST #pyhist * 3: a `chathistory` batch with p 3..p 5,
  each PRIVMSG tagged with the batch, a msgid and a time;
* CHATHISTORY BEFORE #pyhist msgid=<p 3's id> 10: p 1, p 2.

Prints one line per step and `OK` at the end; exits 0 on success, 1 on
failure, 3 if the `irc` package is missing.
"""

import sys
import time

try:
    import irc.client
except ImportError:
    print("SKIP: the python package 'irc' is not installed here", file=sys.stderr)
    sys.exit(3)

TIMEOUT = 20.0
CAPS = "batch draft/chathistory server-time message-tags"


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    reactor = irc.client.Reactor()
    state = {"batch": None, "lines": [], "replies": [], "errors": [], "done": False}

    def step(name):
        print("step:", name, flush=True)

    def tags_of(event):
        return {t["key"]: t["value"] for t in (event.tags or [])}

    def on_welcome(conn, event):
        step("welcome")
        conn.send_raw("CAP REQ :" + CAPS)

    def on_cap(conn, event):
        if event.arguments and event.arguments[0] == "ACK":
            step("caps acknowledged: " + event.arguments[-1].strip())
            conn.join("#pyhist")
        elif event.arguments and event.arguments[0] == "NAK":
            state["errors"].append("caps refused: %r" % event.arguments)

    def on_join(conn, event):
        if event.source.nick == "pyhist" and event.target.lower() == "#pyhist":
            step("joined #pyhist")
            conn.send_raw("CHATHISTORY LATEST #pyhist * 3")

    def on_batch(conn, event):
        ref = event.target or ""
        if ref.startswith("+"):
            if list(event.arguments) != ["chathistory", "#pyhist"]:
                state["errors"].append("batch %r %r" % (ref, event.arguments))
            state["batch"], state["lines"] = ref[1:], []
        elif ref.startswith("-") and ref[1:] == state["batch"]:
            state["batch"] = None
            state["replies"].append(state["lines"])
            answered(conn)

    def on_pubmsg(conn, event):
        tags = tags_of(event)
        if state["batch"] is None:
            state["errors"].append("a line outside any batch: %r" % event.arguments)
            return
        if tags.get("batch") != state["batch"]:
            state["errors"].append("line not tagged with its batch: %r" % tags)
        for key in ("msgid", "time"):
            if not tags.get(key):
                state["errors"].append("line without %s: %r" % (key, tags))
        state["lines"].append((event.arguments[0], tags.get("msgid")))

    def answered(conn):
        replies = state["replies"]
        texts = [t for t, _ in replies[-1]]
        if len(replies) == 1:
            if texts != ["p 3", "p 4", "p 5"]:
                state["errors"].append("LATEST gave %r" % texts)
                state["done"] = True
                return
            step("LATEST * 3: " + ", ".join(texts))
            first_id = replies[-1][0][1]
            conn.send_raw("CHATHISTORY BEFORE #pyhist msgid=%s 10" % first_id)
        else:
            if texts != ["p 1", "p 2"]:
                state["errors"].append("BEFORE gave %r" % texts)
            else:
                step("BEFORE msgid: " + ", ".join(texts))
            state["done"] = True
            conn.quit("done")

    def on_fail(conn, event):
        state["errors"].append("FAIL %r %r" % (event.target, event.arguments))
        state["done"] = True

    conn = reactor.server().connect(host, int(port), "pyhist")
    for name, fn in [
        ("welcome", on_welcome),
        ("cap", on_cap),
        ("join", on_join),
        ("batch", on_batch),
        ("pubmsg", on_pubmsg),
        ("fail", on_fail),
    ]:
        reactor.add_global_handler(name, fn)

    deadline = time.time() + TIMEOUT
    while not state["done"] and time.time() < deadline:
        reactor.process_once(0.2)
    if not state["done"]:
        state["errors"].append("timed out")
    for e in state["errors"]:
        print("error:", e, flush=True)
    if state["errors"]:
        return 1
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
