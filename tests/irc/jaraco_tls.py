#!/usr/bin/env python3
"""Drives natter over TLS with a real IRC client library: jaraco/irc
(PyPI `irc`) with Python's own `ssl` module.

Usage: jaraco_tls.py IRC_TLS_ADDR CA_FILE

A text user called `textbob` must already be in #lobby (tests/tls.rs
plays his side). This script registers `pytls` over TLS, checking the
certificate against CA_FILE for the name `localhost`; joins #lobby; sees textbob in the
#lobby NAMES and says hello; waits for his answer; asks WHOIS about itself
and expects 671 (secure connection); quits.

Prints one line per step and `OK` at the end; exits 0 on success, 1 on
failure, 3 if the `irc` package is missing.
"""

import ssl
import sys
import time

try:
    import irc.client
    import irc.connection
except ImportError:
    print("SKIP: the python package 'irc' is not installed here", file=sys.stderr)
    sys.exit(3)

TIMEOUT = 20.0


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    context = ssl.create_default_context(cafile=sys.argv[2])
    wrapper = lambda sock: context.wrap_socket(sock, server_hostname="localhost")
    factory = irc.connection.Factory(wrapper=wrapper)
    reactor = irc.client.Reactor()
    seen = set()
    errors = []

    def step(name):
        if name not in seen:
            seen.add(name)
            print("step:", name, flush=True)

    def on_welcome(conn, event):
        step("welcome over TLS")
        conn.join("#lobby")  # IRC users are not put in a room by themselves

    def on_namreply(conn, event):
        channel, names = event.arguments[1], event.arguments[2].split()
        if channel == "#lobby" and "textbob" in [n.lstrip("@+") for n in names]:
            step("textbob in #lobby names")
            conn.privmsg("#lobby", "hello over tls")

    def on_pubmsg(conn, event):
        if event.source.nick == "textbob" and event.arguments[0] == "hello back":
            step("text user's answer arrived")
            conn.whois(["pytls"])

    def on_raw(conn, event):
        parts = event.arguments[0].split(" ")
        if len(parts) > 3 and parts[1] == "671" and parts[3] == "pytls":
            step("671 secure")

    for kind, handler in [
        ("welcome", on_welcome),
        ("namreply", on_namreply),
        ("pubmsg", on_pubmsg),
        ("all_raw_messages", on_raw),
    ]:
        reactor.add_global_handler(kind, handler)

    conn = reactor.server()
    try:
        conn.connect(host, int(port), "pytls", username="pyt", ircname="Py TLS",
                     connect_factory=factory)
    except irc.client.ServerConnectionError as e:
        print("FAIL: cannot connect over TLS: %s" % e, flush=True)
        return 1
    wanted = {"welcome over TLS", "textbob in #lobby names",
              "text user's answer arrived", "671 secure"}
    deadline = time.monotonic() + TIMEOUT
    while not wanted <= seen and time.monotonic() < deadline:
        reactor.process_once(0.1)
    if conn.is_connected():
        conn.quit("done")
    until = time.monotonic() + 3
    while conn.is_connected() and time.monotonic() < until:
        reactor.process_once(0.1)
    missing = sorted(wanted - seen)
    if errors or missing:
        print("FAIL: errors=%r missing=%r" % (errors, missing), flush=True)
        return 1
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
