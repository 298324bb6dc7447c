//! Long listings written as the client reads them: IRC `LIST` (with ELIST
//! filters), `NAMES`, text and JSON `who`, and `WHO #room`. The command is
//! checked when it arrives (a refusal is answered in order at once), then
//! the connection asks for one page at a time, each a short visit to the
//! chat under its lock, whenever its send queue is below half the sendq.
//! A client that does not read holds its place in the listing (a cursor),
//! never the listing itself. While a listing is being written, the client's
//! further lines wait (so answers keep their order), and a marker its
//! session queues meanwhile (the end of a labeled command's answers) waits
//! behind the listing. What a client may not see is left out page by page:
//! secret rooms from outsiders (LIST, NAMES, WHO), never filtered from a
//! list built whole.

use std::collections::VecDeque;

use super::Chat;
use crate::proto::listing::{MembersRef, Page, PageBody, RoomFilter};
use crate::proto::session::{Mark, Protocol};
use crate::proto::{Command, ConnId, Name, Refusal, Target, Visibility};

/// Most rooms one `NAMES #a,#b,…` lists (one IRC line bounds it anyway).
const MAX_NAMES_ROOMS: usize = 64;

/// One listing being written and where it is.
enum Listing {
    Rooms {
        filter: RoomFilter,
        after: Option<Name>,
    },
    Names {
        key: Name,
        after: Option<ConnId>,
    },
    /// IRC `NAMES #a,#b`: each room `id` may see, in turn, then one end
    /// line naming them as asked (`end`).
    NamesOf {
        rooms: VecDeque<String>,
        current: Option<(Name, Option<ConnId>)>,
        end: Name,
    },
    /// `key: None`: no such room (just the end line).
    Who {
        mask: Name,
        key: Option<Name>,
        after: Option<ConnId>,
    },
}

/// What waits: a listing (and whether its first page is out), or a
/// session's marker queued while a listing was in progress.
enum Pending {
    Listing(Listing, bool),
    Mark(Mark),
}

/// The connection's listings in progress, oldest first.
#[derive(Default)]
pub(crate) struct Pager {
    /// Boxed while a listing is in progress, `None` otherwise: an idle
    /// connection carries one pointer, not an empty queue's header.
    #[allow(clippy::box_collection)] // on purpose: one pointer inline
    waiting: Option<Box<VecDeque<Pending>>>,
}

impl Pager {
    pub fn is_empty(&self) -> bool {
        self.waiting.as_ref().is_none_or(|w| w.is_empty())
    }

    /// Queues a marker behind the listings in progress; `Err` gives it
    /// back when there are none (it goes to the send queue at once).
    pub fn hold_mark(&mut self, mark: Mark) -> Result<(), Mark> {
        match &mut self.waiting {
            Some(w) if !w.is_empty() => {
                w.push_back(Pending::Mark(mark));
                Ok(())
            }
            _ => Err(mark),
        }
    }

    /// The marker at the front, if the listings before it are written.
    pub fn take_mark(&mut self) -> Option<Mark> {
        match self.waiting.as_ref().and_then(|w| w.front()) {
            Some(Pending::Mark(m)) => {
                let m = *m;
                self.finish();
                Some(m)
            }
            _ => None,
        }
    }

    /// Takes `cmd` if it asks for a long listing: `Some(Ok)` once it is
    /// queued, `Some(Err)` with the refusal to answer; `None`: not a
    /// listing, the chat handles it.
    pub fn intercept(
        &mut self,
        chat: &Chat,
        id: ConnId,
        cmd: &Command,
    ) -> Option<Result<(), Refusal>> {
        let listing = match cmd {
            Command::List { rooms } => {
                chat.nick_of(id)?; // unregistered: the chat words the refusal
                let terms = rooms.as_deref().unwrap_or_default();
                Listing::Rooms {
                    filter: RoomFilter::from_terms(terms),
                    after: None,
                }
            }
            Command::Who { room } => match chat.query(|s| s.who_room(id, room.as_deref())) {
                Ok(key) => Listing::Names { key, after: None },
                Err(refusal) => return Some(Err(refusal)),
            },
            Command::Names { rooms } => {
                chat.nick_of(id)?;
                Listing::NamesOf {
                    end: rooms.join(",").into(),
                    rooms: rooms.iter().take(MAX_NAMES_ROOMS).cloned().collect(),
                    current: None,
                }
            }
            Command::WhoDetail {
                target: Target::Room(who),
            } => {
                chat.nick_of(id)?;
                Listing::Who {
                    mask: who.as_str().into(),
                    key: chat.query(|s| s.who_detail_room(id, who)),
                    after: None,
                }
            }
            _ => return None,
        };
        let waiting = self.waiting.get_or_insert_with(Default::default);
        waiting.push_back(Pending::Listing(listing, false));
        Some(Ok(()))
    }

    /// Renders the next page of the oldest listing into `out`.
    /// (A marker at the front is not a page: see [`Pager::take_mark`].)
    pub fn next_page(
        &mut self,
        chat: &Chat,
        id: ConnId,
        page_size: usize,
        proto: &mut dyn Protocol,
        out: &mut Vec<u8>,
    ) {
        let Some(Pending::Listing(listing, started)) =
            self.waiting.as_mut().and_then(|w| w.front_mut())
        else {
            return;
        };
        let first = !std::mem::replace(started, true);
        let last = match listing {
            Listing::Rooms { filter, after } => {
                let page = chat.query(|s| s.rooms_page(id, filter, after.as_deref(), page_size));
                let last = page.next.is_none();
                *after = page.next;
                let body = PageBody::Rooms(&page.rooms);
                proto.render_page(&Page { first, last, body }, out);
                last
            }
            Listing::Names { key, after } => {
                let page = chat.query(|s| s.members_page(key, *after, page_size));
                let Some(page) = page else {
                    // The room is gone: the listing ends, empty.
                    let (room, members) = (&**key, MembersRef::Plain(&[]));
                    let body = PageBody::Names {
                        room,
                        visibility: Visibility::Public,
                        total: 0,
                        members,
                        asked: None,
                    };
                    proto.render_page(
                        &Page {
                            first,
                            last: true,
                            body,
                        },
                        out,
                    );
                    return self.finish();
                };
                let last = page.next.is_none();
                *after = page.next;
                let body = PageBody::Names {
                    room: &page.room,
                    visibility: page.visibility,
                    total: page.total,
                    members: MembersRef::Plain(&page.members),
                    asked: None,
                };
                proto.render_page(&Page { first, last, body }, out);
                last
            }
            Listing::NamesOf {
                rooms,
                current,
                end,
            } => {
                // The next room `id` may see, if the last one is done.
                while current.is_none() {
                    let Some(asked) = rooms.pop_front() else {
                        break;
                    };
                    if let Ok(key) = chat.query(|s| s.who_room(id, Some(&asked))) {
                        *current = Some((key, None));
                    }
                }
                let page = current
                    .as_ref()
                    .and_then(|(k, after)| chat.query(|s| s.members_page(k, *after, page_size)));
                let more = page.as_ref().and_then(|p| p.next);
                match (&mut *current, more) {
                    (Some((_, after)), Some(next)) => *after = Some(next),
                    _ => *current = None,
                }
                let last = current.is_none() && rooms.is_empty();
                let body = PageBody::Names {
                    room: page.as_ref().map_or("", |p| &p.room),
                    visibility: page.as_ref().map_or(Visibility::Public, |p| p.visibility),
                    total: page.as_ref().map_or(0, |p| p.total),
                    members: MembersRef::Plain(page.as_ref().map_or(&[], |p| &p.members)),
                    asked: Some(end),
                };
                proto.render_page(&Page { first, last, body }, out);
                last
            }
            Listing::Who { mask, key, after } => {
                let page = key
                    .as_deref()
                    .and_then(|k| chat.query(|s| s.members_page(k, *after, page_size)));
                let last = page.as_ref().is_none_or(|p| p.next.is_none());
                *after = page.as_ref().and_then(|p| p.next);
                let body = PageBody::Who {
                    mask,
                    room: page.as_ref().map(|p| &*p.room),
                    total: page.as_ref().map_or(0, |p| p.total),
                    members: page.as_ref().map_or(&[], |p| &p.members),
                };
                proto.render_page(&Page { first, last, body }, out);
                last
            }
        };
        if last {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if let Some(w) = &mut self.waiting {
            w.pop_front();
            if w.is_empty() {
                self.waiting = None;
            }
        }
    }
}
