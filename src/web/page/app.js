// natter's web chat: speaks natter's JSON lines over /ws (docs/PROTOCOL.md),
// one JSON object per WebSocket message. No libraries; text is only ever
// put in the page with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_LINES = 1000; // scrollback kept in the page

const state = {
  ws: null,
  nick: null,      // the nickname we asked for or have
  registered: false,
  room: null,      // the current room
  members: new Set(),
  backoff: 0,      // reconnect attempts so far
  timer: null,
  leaving: false,  // the user quit: do not reconnect
  history: [],     // lines sent, for arrow-up recall
  recall: 0,
};

// What the page is doing, in one line (for tests and bug reports).
function pageState() {
  return JSON.stringify({ ws: state.ws && state.ws.readyState, nick: state.nick,
    registered: state.registered, room: state.room, backoff: state.backoff });
}

function wsUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}

function send(obj) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(obj));
    return true;
  }
  status("Not connected; your line was not sent.");
  return false;
}

function status(text) { $("status").textContent = text || ""; }

function time(ts) {
  const d = ts ? new Date(ts) : new Date();
  const t = document.createElement("time");
  t.dateTime = d.toISOString();
  t.textContent = d.toTimeString().slice(0, 5);
  return t;
}

// Appends one line to the log: parts are strings or [className, text].
function show(kind, parts, ts) {
  const log = $("log");
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const p = document.createElement("p");
  p.className = kind;
  p.append(time(ts));
  for (const part of parts) {
    if (typeof part === "string") p.append(part);
    else {
      const s = document.createElement("span");
      s.className = part[0];
      s.textContent = part[1];
      p.append(s);
    }
  }
  log.append(p);
  while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
  if (atEnd) log.scrollTop = log.scrollHeight;
}

const info = (text, ts) => show("info", ["*** " + text], ts);

function renderMembers() {
  const ul = $("members");
  ul.replaceChildren();
  const nicks = [...state.members].sort((a, b) => a.localeCompare(b));
  for (const n of nicks) {
    const li = document.createElement("li");
    li.textContent = n;
    ul.append(li);
  }
  $("people-title").textContent = "Who is here (" + nicks.length + ")";
  $("people-toggle").textContent = "People (" + nicks.length + ")";
}

function setRoom(room) {
  state.room = room;
  $("room-name").textContent = room ? "#" + room : "natter";
  document.title = room ? "#" + room + " · natter" : "natter";
  if (!room) { $("topic").textContent = ""; state.members.clear(); renderMembers(); }
}

function message(ev) {
  const mine = ev.from === state.nick;
  const where = ev.room && ev.room !== state.room ? "[#" + ev.room + "] " : "";
  if (ev.action) show("message action" + (mine ? " mine" : ""), [where + "* ", ["from", ev.from], " " + ev.text], ev.ts);
  else show("message" + (mine ? " mine" : ""), [where, ["from", ev.from], ": " + ev.text], ev.ts);
}

function handle(ev) {
  switch (ev.type) {
    case "welcome":
      if (state.nick && !state.registered) send({ cmd: "login", nick: state.nick });
      break;
    case "registered":
      state.registered = true;
      state.nick = ev.nick;
      state.backoff = 0;
      $("login-view").hidden = true;
      $("chat-view").hidden = false;
      status("");
      info("You are " + ev.nick + "; " + ev.online + " online. Type /help for commands.", ev.ts);
      if (state.rejoin && state.rejoin !== state.room) send({ cmd: "join", room: state.rejoin });
      $("say-text").focus();
      break;
    case "joined":
      if (ev.nick === state.nick) { setRoom(ev.room); state.members.clear(); }
      if (ev.room === state.room) { state.members.add(ev.nick); renderMembers(); }
      info(ev.nick + " joined #" + ev.room, ev.ts);
      break;
    case "left":
      if (ev.room === state.room) {
        state.members.delete(ev.nick); renderMembers();
        if (ev.nick === state.nick) setRoom(null);
      }
      info(ev.nick + " left #" + ev.room + (ev.reason ? " (" + ev.reason + ")" : ""), ev.ts);
      break;
    case "quit":
      state.members.delete(ev.nick); renderMembers();
      info(ev.nick + " quit (" + ev.reason + ")", ev.ts);
      break;
    case "kicked":
      if (ev.room === state.room) { state.members.delete(ev.nick); renderMembers(); }
      info(ev.by + " kicked " + ev.nick + " from #" + ev.room + (ev.reason ? " (" + ev.reason + ")" : ""), ev.ts);
      if (ev.nick === state.nick && ev.room === state.room) setRoom(null);
      break;
    case "nick":
      if (state.members.delete(ev.old)) { state.members.add(ev.new); renderMembers(); }
      if (ev.old === state.nick) state.nick = ev.new;
      info(ev.old + " is now known as " + ev.new, ev.ts);
      break;
    case "presence":
      if (ev.room === state.room) {
        if (!ev.continued) state.members.clear();
        for (const n of ev.nicks) state.members.add(n);
        renderMembers();
      }
      if (!ev.continued) info("In #" + ev.room + " (" + (ev.total ?? ev.nicks.length) + "): " + ev.nicks.join(", ") + (ev.more ? ", …" : ""), ev.ts);
      break;
    case "message": message(ev); break;
    case "private": {
      const other = ev.from === state.nick ? "→ " + ev.to : "";
      show("private", [["from", ev.from], other ? " " + other : "", (ev.action ? " * " : ": ") + ev.text], ev.ts);
      break;
    }
    case "notice":
      show("notice", ["-", ["from", ev.from], "- " + ev.text], ev.ts);
      break;
    case "history":
      if (ev.messages.length) info((ev.replay ? "Recent lines in #" : "History of #") + ev.room + ":", ev.ts);
      for (const m of ev.messages) {
        if (m.type === "notice") show("notice", ["-", ["from", m.from], "- " + m.text], m.ts);
        else message(m);
      }
      if (ev.more && !ev.replay) info("(older lines: /history with a bigger number)");
      break;
    case "topic":
      if (ev.room === state.room) $("topic").textContent = ev.topic || "";
      if (ev.changed) info(ev.by + " set the topic of #" + ev.room + " to: " + (ev.topic || "(none)"), ev.ts);
      else if (ev.topic) info("Topic of #" + ev.room + ": " + ev.topic, ev.ts);
      break;
    case "mode": info(ev.by + " sets mode " + ev.changes + " on #" + ev.room, ev.ts); break;
    case "modes": info("#" + ev.room + " modes: " + ev.modes, ev.ts); break;
    case "bans":
      info("Bans in #" + ev.room + ": " + (ev.bans.map((b) => b.mask).join(", ") || "none"), ev.ts);
      break;
    case "away":
      info(ev.text === null ? ev.nick + " is back" : ev.nick + " is away: " + ev.text, ev.ts);
      break;
    case "away_status": info(ev.away ? "You are marked away." : "You are back.", ev.ts); break;
    case "invited": info(ev.by + " invited " + ev.nick + " to #" + ev.room, ev.ts); break;
    case "whois":
      info(ev.nick + " (" + ev.user + "@" + ev.host + "): " + ev.realname + "; in " +
        (ev.rooms.join(", ") || "no rooms") + (ev.away ? "; away: " + ev.away : "") + "; idle " + ev.idle + "s", ev.ts);
      break;
    case "rooms":
      info("Rooms (" + ev.total + "): " + ev.rooms.map((r) => "#" + r.room + " (" + r.members + ")" +
        (r.topic ? " " + r.topic : "")).join(", ") + (ev.next ? " … more: /rooms " + ev.next : ""), ev.ts);
      break;
    case "help": showHelp(); break;
    case "info": info(ev.text, ev.ts); break;
    case "logged_in": info("You are logged in as " + ev.account + ".", ev.ts); break;
    case "nick_protected": info(ev.nick + " belongs to an account: /login " + ev.nick + " PASSWORD within " + ev.grace + "s", ev.ts); break;
    case "renamed": info("You were renamed from " + ev.old + " to " + ev.new, ev.ts); break;
    case "room_registered": info("#" + ev.room + " is registered to " + ev.founder, ev.ts); break;
    case "error":
      if (!state.registered) {
        // Back to picking a nickname (also after a reconnect found it taken).
        $("chat-view").hidden = true;
        $("login-view").hidden = false;
        $("login-error").textContent = ev.message;
        state.nick = null;
        $("nick").focus();
      } else show("error", ["! " + ev.message], ev.ts);
      break;
    case "ping": send({ cmd: "keep" }); break;
    case "shutdown": info("The server is stopping: " + ev.reason, ev.ts); break;
    default: break; // newer servers may send more
  }
}

// Slash commands as the text protocol has them, as JSON commands.
const COMMANDS = {
  help: () => (showHelp(), null),
  join: (a) => a[0] && { cmd: "join", room: a[0] }, j: (a) => COMMANDS.join(a),
  key: (a) => a[1] && { cmd: "join", room: a[0], key: a[1] },
  part: (a, rest) => ({ cmd: "part", reason: rest || undefined }), leave: (a, r) => COMMANDS.part(a, r),
  nick: (a) => a[0] && { cmd: "nick", nick: a[0] },
  me: (a, rest) => rest && { cmd: "me", msg: rest },
  msg: (a, rest) => a[1] && { cmd: "msg", to: a[0], msg: rest.slice(a[0].length).trim() },
  who: (a) => ({ cmd: "who", room: a[0] }),
  rooms: (a) => ({ cmd: "rooms", after: a[0] }),
  list: () => ({ cmd: "list" }),
  topic: (a, rest) => rest === "-delete" ? { cmd: "topic", topic: "" } : { cmd: "topic", topic: rest || undefined },
  kick: (a, rest) => a[0] && { cmd: "kick", nick: a[0], reason: rest.slice(a[0].length).trim() || undefined },
  op: (a) => a[0] && { cmd: "mode", changes: "+o " + a[0] },
  deop: (a) => a[0] && { cmd: "mode", changes: "-o " + a[0] },
  voice: (a) => a[0] && { cmd: "mode", changes: "+v " + a[0] },
  devoice: (a) => a[0] && { cmd: "mode", changes: "-v " + a[0] },
  ban: (a) => a[0] && { cmd: "mode", changes: "+b " + a[0] },
  unban: (a) => a[0] && { cmd: "mode", changes: "-b " + a[0] },
  mode: (a, rest) => ({ cmd: "mode", changes: rest || undefined }),
  invite: (a) => a[0] && { cmd: "invite", nick: a[0], room: a[1] },
  away: (a, rest) => ({ cmd: "away", text: rest || "away" }),
  back: () => ({ cmd: "away" }),
  whois: (a) => a[0] && { cmd: "whois", nick: a[0] },
  history: (a) => ({ cmd: "history", limit: a[0] ? Number(a[0]) : undefined }),
  notice: (a, rest) => a[1] && { cmd: "notice", to: a[0], msg: rest.slice(a[0].length).trim() },
  register: (a) => a[0] && { cmd: "register", password: a[0] },
  login: (a) => a[1] ? { cmd: "login", nick: a[0], password: a[1] } : a[0] && { cmd: "login", nick: state.nick, password: a[0] },
  "register-room": (a) => ({ cmd: "register_room", room: a[0] }),
  quit: (a, rest) => { state.leaving = true; return { cmd: "quit", reason: rest || undefined }; },
};
for (const [alias, name] of [["m", "msg"], ["tell", "msg"], ["w", "msg"], ["hist", "history"], ["identify", "login"], ["exit", "quit"]]) {
  COMMANDS[alias] = COMMANDS[name];
}

const USAGE = [
  "/join ROOM", "/part [REASON]", "/nick NEW", "/me ACTION", "/msg NICK TEXT", "/who [ROOM]",
  "/rooms", "/list", "/topic [TEXT]", "/history [N]", "/away [TEXT]", "/back", "/whois NICK",
  "/notice NICK|#ROOM TEXT", "/kick NICK [REASON]", "/op /deop /voice /devoice NICK", "/ban /unban MASK",
  "/mode [CHANGES]", "/invite NICK [ROOM]", "/key ROOM KEY", "/register PASSWORD", "/login [NICK] PASSWORD",
  "/register-room [ROOM]", "/quit [REASON]", "//text says /text",
];
function showHelp() { info("Commands: " + USAGE.join(" · ")); }

function submitLine(line) {
  if (!line.trim()) return;
  if (line.startsWith("/") && !line.startsWith("//")) {
    const body = line.slice(1);
    const name = body.split(/\s+/, 1)[0].toLowerCase();
    const rest = body.slice(name.length).trim();
    const args = rest ? rest.split(/\s+/) : [];
    const make = COMMANDS[name];
    if (!make) return show("error", ["! unknown command /" + name + "; try /help"]);
    const cmd = make(args, rest);
    if (cmd === null) return;
    if (!cmd) return show("error", ["! usage: " + (USAGE.find((u) => u.includes("/" + name)) || "/" + name)]);
    send(cmd);
  } else {
    send({ cmd: "chat", msg: line.startsWith("//") ? line.slice(1) : line });
  }
}

function connect() {
  clearTimeout(state.timer);
  const ws = new WebSocket(wsUrl());
  state.ws = ws;
  ws.onopen = () => { status(""); };
  ws.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    handle(ev);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (state.leaving) { status("You left. Reload the page to come back."); return; }
    // Back off: 1 s, 2 s, 4 s … 30 s, with jitter so a restart is not stampeded.
    const delay = Math.min(30000, 1000 * 2 ** state.backoff) * (0.75 + Math.random() / 2);
    state.backoff += 1;
    state.rejoin = state.room;
    state.registered = false;
    const wait = "Disconnected; reconnecting in " + Math.round(delay / 1000) + " s…";
    if (!$("login-view").hidden) $("login-error").textContent = wait;
    status(wait);
    state.timer = setTimeout(connect, delay);
  };
}

function complete(input) {
  // Tab completes a nickname of the room from the word before the cursor.
  const upto = input.value.slice(0, input.selectionStart);
  const word = upto.split(/\s/).pop();
  if (!word) return false;
  const match = [...state.members].find((n) => n.toLowerCase().startsWith(word.toLowerCase()));
  if (!match) return false;
  const suffix = upto.length === word.length ? ": " : " ";
  input.value = upto.slice(0, upto.length - word.length) + match + suffix + input.value.slice(input.selectionStart);
  return true;
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const nick = $("nick").value.trim();
    if (!nick) return;
    $("login-error").textContent = "";
    state.nick = nick;
    state.leaving = false;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) send({ cmd: "login", nick });
    else if (!state.ws) { state.backoff = 0; connect(); } // the welcome sends the login
  });
  $("say-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("say-text");
    const line = input.value;
    if (!line) return;
    submitLine(line);
    state.history.push(line);
    if (state.history.length > 100) state.history.shift();
    state.recall = state.history.length;
    input.value = "";
  });
  $("say-text").addEventListener("keydown", (e) => {
    const input = e.target;
    if (e.key === "Tab" && !e.shiftKey && input.value) {
      if (complete(input)) e.preventDefault();
    } else if (e.key === "ArrowUp" && state.recall > 0) {
      state.recall -= 1; input.value = state.history[state.recall]; e.preventDefault();
    } else if (e.key === "ArrowDown" && state.recall < state.history.length) {
      state.recall += 1; input.value = state.history[state.recall] || ""; e.preventDefault();
    }
  });
  $("people-toggle").addEventListener("click", (e) => {
    const open = $("chat-view").classList.toggle("show-people");
    e.target.setAttribute("aria-expanded", String(open));
  });
});
