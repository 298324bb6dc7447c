//! Long answers written a page at a time: the room list (IRC `LIST`, with
//! its ELIST filters), the members of a room (`NAMES`, text and JSON
//! `who`) and `WHO #room`. The server asks the chat for one page at a time
//! as the client reads (`server::pager`), and each protocol renders pages
//! with [`Protocol::render_page`](super::session::Protocol::render_page):
//! the first page carries the header, the last the footer.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{EventBody, MemberInfo, RoomSummary, Visibility};

/// Which rooms a room listing shows: IRC `LIST` arguments, protocol-neutral.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomFilter {
    /// Only these rooms (folded keys, no `#`); empty: any.
    pub names: BTreeSet<String>,
    /// Rooms whose name matches one of these wildcard masks (folded, no
    /// `#`); empty: any.
    pub masks: Vec<String>,
    /// Rooms whose name matches none of these.
    pub not_masks: Vec<String>,
    /// Rooms with more members than this.
    pub more_than: Option<usize>,
    /// Rooms with fewer members than this.
    pub fewer_than: Option<usize>,
    /// Rooms created more (`older`) or fewer (`newer`) minutes ago.
    pub created_older_than: Option<u64>,
    pub created_newer_than: Option<u64>,
    /// Rooms whose topic was set more or fewer minutes ago (rooms with no
    /// topic pass neither).
    pub topic_older_than: Option<u64>,
    pub topic_newer_than: Option<u64>,
}

impl RoomFilter {
    /// Reads `LIST` terms: `#room` (exact), masks with `*`/`?`, `!mask`
    /// (not matching), `>n` and `<n` (member counts), `C>m`/`C<m` (created
    /// more/fewer than m minutes ago), `T>m`/`T<m` (topic set more/fewer
    /// than m minutes ago): ISUPPORT `ELIST=CMNTU`.
    pub fn from_terms<S: AsRef<str>>(terms: &[S]) -> RoomFilter {
        let mut f = RoomFilter::default();
        let clean = |t: &str| t.strip_prefix('#').unwrap_or(t).to_lowercase();
        for term in terms.iter().map(AsRef::as_ref).filter(|t| !t.is_empty()) {
            let minutes = |t: &str| t.get(2..).and_then(|n| n.parse::<u64>().ok());
            match term.as_bytes() {
                [b'C' | b'c', b'>', ..] => f.created_older_than = minutes(term),
                [b'C' | b'c', b'<', ..] => f.created_newer_than = minutes(term),
                [b'T' | b't', b'>', ..] => f.topic_older_than = minutes(term),
                [b'T' | b't', b'<', ..] => f.topic_newer_than = minutes(term),
                _ => {}
            }
            if matches!(
                term.as_bytes(),
                [b'C' | b'c' | b'T' | b't', b'<' | b'>', ..]
            ) {
                continue;
            }
            if let Some(n) = term.strip_prefix('>') {
                f.more_than = n.parse().ok().or(f.more_than);
            } else if let Some(n) = term.strip_prefix('<') {
                f.fewer_than = n.parse().ok().or(f.fewer_than);
            } else if let Some(m) = term.strip_prefix('!') {
                f.not_masks.push(clean(m));
            } else if term.contains(['*', '?']) {
                f.masks.push(clean(term));
            } else {
                f.names.insert(clean(term));
            }
        }
        f
    }

    /// Whether a room with `members` members passes the member counts.
    pub fn counts(&self, members: usize) -> bool {
        self.more_than.is_none_or(|n| members > n) && self.fewer_than.is_none_or(|n| members < n)
    }

    /// Whether a room created `created_ms` ago whose topic was set
    /// `topic_ms` ago (`None`: no topic) passes the time terms.
    pub fn ages(&self, created_ms: u64, topic_ms: Option<u64>) -> bool {
        let min = |m: u64| m.saturating_mul(60_000);
        self.created_older_than.is_none_or(|m| created_ms > min(m))
            && self.created_newer_than.is_none_or(|m| created_ms < min(m))
            && self
                .topic_older_than
                .is_none_or(|m| topic_ms.is_some_and(|t| t > min(m)))
            && self
                .topic_newer_than
                .is_none_or(|m| topic_ms.is_some_and(|t| t < min(m)))
    }
}

/// The members a names page lists: records, or shared records (a join's
/// names list, [`super::MemberList`]).
#[derive(Debug, Clone, Copy)]
pub enum MembersRef<'a> {
    Plain(&'a [MemberInfo]),
    Shared(&'a [Arc<MemberInfo>]),
}

impl<'a> MembersRef<'a> {
    pub fn len(self) -> usize {
        match self {
            MembersRef::Plain(m) => m.len(),
            MembersRef::Shared(m) => m.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The records in order.
    pub fn iter(self) -> MembersIter<'a> {
        match self {
            MembersRef::Plain(m) => MembersIter::Plain(m.iter()),
            MembersRef::Shared(m) => MembersIter::Shared(m.iter()),
        }
    }
}

impl<'a> From<&'a [MemberInfo]> for MembersRef<'a> {
    fn from(m: &'a [MemberInfo]) -> Self {
        MembersRef::Plain(m)
    }
}

impl<'a> From<&'a Vec<MemberInfo>> for MembersRef<'a> {
    fn from(m: &'a Vec<MemberInfo>) -> Self {
        MembersRef::Plain(m)
    }
}

/// [`MembersRef::iter`].
#[derive(Debug, Clone)]
pub enum MembersIter<'a> {
    Plain(std::slice::Iter<'a, MemberInfo>),
    Shared(std::slice::Iter<'a, Arc<MemberInfo>>),
}

impl<'a> Iterator for MembersIter<'a> {
    type Item = &'a MemberInfo;

    #[inline]
    fn next(&mut self) -> Option<&'a MemberInfo> {
        match self {
            MembersIter::Plain(i) => i.next(),
            MembersIter::Shared(i) => i.next().map(|m| &**m),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            MembersIter::Plain(i) => i.size_hint(),
            MembersIter::Shared(i) => i.size_hint(),
        }
    }
}

impl ExactSizeIterator for MembersIter<'_> {}

/// One page of a long answer.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The first page: write the header (if the protocol has one).
    pub first: bool,
    /// The last page: write the footer.
    pub last: bool,
    pub body: PageBody<'a>,
}

/// What a page holds.
#[derive(Debug, Clone, Copy)]
pub enum PageBody<'a> {
    /// Part of the room list, in name order.
    Rooms(&'a [RoomSummary]),
    /// Members of `room` (`total` in all), sorted by nick within the page.
    /// IRC's `NAMES #a,#b` lists several rooms in one listing: `asked` is
    /// what its closing line names then (the rooms as asked; `None`: the
    /// room). `room` is empty on a page that lists no room (none of those
    /// asked can be shown).
    Names {
        room: &'a str,
        visibility: Visibility,
        total: usize,
        members: MembersRef<'a>,
        asked: Option<&'a str>,
    },
    /// `WHO` of a room or mask: members with details.
    Who {
        mask: &'a str,
        room: Option<&'a str>,
        total: usize,
        members: &'a [MemberInfo],
    },
}

impl<'a> Page<'a> {
    /// A whole answer in one page.
    pub fn whole(body: PageBody<'a>) -> Page<'a> {
        Page {
            first: true,
            last: true,
            body,
        }
    }

    /// The listing an event holds whole (members on joining a room, and
    /// the answers the chat gives directly), as one page.
    pub fn of(ev: &'a EventBody) -> Option<Page<'a>> {
        let body = match ev {
            EventBody::Members {
                room,
                visibility,
                members,
            } => PageBody::Names {
                room,
                visibility: *visibility,
                total: members.len(),
                members: MembersRef::Shared(members),
                asked: None,
            },
            EventBody::WhoReply {
                mask,
                room,
                members,
            } => PageBody::Who {
                mask,
                room: room.as_deref(),
                total: members.len(),
                members,
            },
            EventBody::RoomDetails { rooms } => PageBody::Rooms(rooms),
            _ => return None,
        };
        Some(Page::whole(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elist_terms() {
        let f = RoomFilter::from_terms(&["#Rust", "*go*", "!#b*", ">3", "<100", "C>5", "t<2", ""]);
        assert_eq!(f.names.iter().collect::<Vec<_>>(), ["rust"]);
        assert_eq!(
            (f.created_older_than, f.topic_newer_than),
            (Some(5), Some(2))
        );
        assert!(f.ages(6 * 60_000, Some(60_000)));
        assert!(!f.ages(4 * 60_000, Some(60_000)), "created too recently");
        assert!(!f.ages(6 * 60_000, None), "no topic");
        assert_eq!(f.masks, ["*go*"]);
        assert_eq!(f.not_masks, ["b*"]);
        assert!(f.counts(4) && f.counts(99));
        assert!(!f.counts(3) && !f.counts(100));
        assert_eq!(RoomFilter::from_terms::<&str>(&[]), RoomFilter::default());
    }
}
