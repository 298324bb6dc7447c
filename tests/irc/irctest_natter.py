"""irctest controller for natter (a Rust chat server with an IRC side).

Install: copy this file to irctest/controllers/natter.py, then run
    pytest --controller irctest.controllers.natter -m '...' irctest/server_tests/

The natter binary is taken from $NATTER_BIN (default: `natter` on $PATH);
$IRCTEST_NATTER_ARGS adds flags (for diagnostics).
irctest's operator (`OPER operuser operpassword`) is given as an `opers`
block, its server description ("test server") as `--server-info`, the name
it expects for the services' server ("My.Little.Services") as
`--services-name`.
A fresh natter process is started for every test, listening for IRC on the
port irctest picked (bound to 127.0.0.1), with its main port on another free
port.
natter's services (accounts, SASL PLAIN and SCRAM-SHA-256, NickServ) are
built in, so `run_services` starts nothing extra: accounts are kept in memory
(`--db off`) and irctest's short passwords are allowed
(`--password-min-chars 1`); `registerUser` registers through
`PRIVMSG NickServ :REGISTER` (or, for a password too long for a 512-byte
IRC line, with natter's JSON protocol on the main port). natter has no websockets and no server
linking, and TLS is not wired up here, so tests needing those are reported
as not implemented (skipped).
"""

import json
import os
import shlex
import shutil
import socket
from typing import Optional, Set, Type

from irctest import cases
from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.irc_utils.junkdrawer import find_hostname_and_port
from irctest.runner import NotImplementedByController
from irctest.specifications import Capabilities


class NatterController(BaseServerController, DirectoryBasedController):
    software_name = "natter"
    extban_mute_char = "m"
    supported_sasl_mechanisms: Set[str] = {"PLAIN", "SCRAM-SHA-256"}
    supports_sts = False
    # Capabilities natter advertises in CAP LS (docs/PROTOCOL.md). Declaring them
    # makes a NAK of any of these a test failure rather than a skip.
    capabilities = frozenset(
        {
            Capabilities.AWAY_NOTIFY,
            Capabilities.ECHO_MESSAGE,
            Capabilities.MESSAGE_TAGS,
            Capabilities.MULTI_PREFIX,
            Capabilities.SERVER_TIME,
            Capabilities.EXTENDED_MONITOR,
            Capabilities.SETNAME,
            Capabilities.BATCH,
            Capabilities.LABELED_RESPONSE,
            Capabilities.READ_MARKER,
            Capabilities.ACCOUNT_NOTIFY,
            Capabilities.ACCOUNT_TAG,
            Capabilities.EXTENDED_JOIN,
        }
    )

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: Optional[str],
        ssl: bool,
        run_services: bool,
        faketime: Optional[str],
        websocket_hostname: Optional[str],
        websocket_port: Optional[int],
    ) -> None:
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        if ssl:
            raise NotImplementedByController("TLS")
        assert self.proc is None
        self.port = port
        self.hostname = hostname
        (_, self.main_port) = find_hostname_and_port()
        self.create_config()

        binary = os.environ.get("NATTER_BIN", "natter")

        if faketime and shutil.which("faketime"):
            faketime_cmd = ["faketime", "-f", faketime]
            self.faketime_enabled = True
        else:
            faketime_cmd = []

        args = [
            *faketime_cmd,
            binary,
            "serve",
            "--listen",
            "127.0.0.1:{}".format(self.main_port),
            "--irc-listen",
            "127.0.0.1:{}".format(port),
            "--server-name",
            "My.Little.Server",
            "--server-info",
            "test server",
            # the pseudo-server natter's built-in services are shown on
            # (LINKS, WHOIS NickServ), named as irctest expects
            "--services-name",
            "My.Little.Services",
            "--max-per-ip",
            "0",
            "--flood-rate",
            "0",
            "--ping-interval",
            "120s",
            "--shutdown-grace",
            "100ms",
            # accounts in memory; irctest registers passwords like "sesame"
            "--db",
            "off",
            "--password-min-chars",
            "1",
        ]
        if password:
            args += ["--irc-password", password]
        # irctest's operator: OPER operuser operpassword (hash from
        # `natter hash-password`)
        args += [
            "--opers",
            "operuser *@* $argon2id$v=19$m=19456,t=2,p=1$NuG4mdBemIiTkWAKhpFdSg"
            "$FICn45un++oiN2grwqs65yyA8KQh9sWpw1axl9Z9NYQ",
        ]
        # extra flags for diagnostic runs, e.g. IRCTEST_NATTER_ARGS='--default-room='
        args += shlex.split(os.environ.get("IRCTEST_NATTER_ARGS", ""))

        env = dict(os.environ)
        env["NO_COLOR"] = "1"
        # keep natter from picking up a config file of the host
        env.pop("NATTER_CONFIG", None)
        self.proc = self.execute(args, cwd=self.directory, env=env)

    def wait_for_services(self) -> None:
        # Nothing to wait for: the services are part of natter itself.
        pass

    def registerUser(
        self,
        case: cases.BaseServerTestCase,  # type: ignore
        username: str,
        password: Optional[str] = None,
    ) -> None:
        """Register an account the way an IRC user does: connect as
        `username`, `PRIVMSG NickServ :REGISTER password`, wait for 900."""
        if not case.run_services:
            raise ValueError(
                "Attempted to register a nick, but `run_services` it not True."
            )
        assert password
        line = "PRIVMSG NickServ :REGISTER " + password
        if len(line.encode()) > 510:
            self._register_json(username, password)
            return
        client = case.addClient(show_io=False)
        case.sendLine(client, "NICK " + username)
        case.sendLine(client, "USER r e g :user")
        while case.getRegistrationMessage(client).command != "001":
            pass
        case.getMessages(client)
        case.sendLine(client, line)
        # success is 900 (RPL_LOGGEDIN); a refusal is a NOTICE from NickServ
        msg = case.getMessage(client)
        assert msg.command == "900", "NickServ REGISTER failed: {}".format(msg)
        case.sendLine(client, "QUIT")
        case.assertDisconnected(client)

    def _register_json(self, username: str, password: str) -> None:
        """Register with natter's JSON lines protocol (docs/PROTOCOL.md):
        `login`, then `register`, until `logged_in`."""
        self.wait_for_port()
        with socket.create_connection(("127.0.0.1", self.main_port), timeout=10) as s:
            f = s.makefile("rwb")
            for cmd in (
                {"cmd": "login", "nick": username},
                {"cmd": "register", "password": password},
            ):
                f.write(json.dumps(cmd).encode() + b"\n")
            f.flush()
            while True:
                raw = f.readline()
                assert raw, "natter closed the JSON connection while registering"
                if not raw.startswith(b"{"):
                    continue
                ev = json.loads(raw)
                assert ev.get("type") != "error", "register failed: {}".format(ev)
                if ev.get("type") == "logged_in":
                    break
            f.write(b'{"cmd":"quit"}\n')
            f.flush()


def get_irctest_controller_class() -> Type[NatterController]:
    return NatterController
