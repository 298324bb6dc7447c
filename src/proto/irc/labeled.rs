//! IRCv3 `labeled-response`: a client tags a command with `@label=…` and
//! gets every line answering it tagged with the same label — one line
//! tagged, several in a `BATCH +id labeled-response`, none as an `ACK`.
//!
//! The session brackets the command's answers with markers in the
//! connection's queue ([`Mark`](crate::proto::session::Mark)); what is
//! written between them (its own replies, the hub's events for this
//! connection and the pages of a long listing) goes through [`Labeled`]:
//! the first line is held, and a second one opens the batch, after which
//! lines are written as they come (a long listing is never held whole).
//! Events from other people that happen to land between the markers are
//! counted in (natter does not tell them apart); history asked for with
//! `CHATHISTORY` arrives after its marker and is not labeled.

use super::render::escape_tag;

/// Longest label accepted (longer ones are ignored, as if not labeled).
pub const MAX_LABEL: usize = 64;

/// The label of a raw line (`@label=x;… VERB …`), if it has one.
pub fn label_of(line: &str) -> Option<String> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix("label="))
        .filter(|l| !l.is_empty() && l.len() <= MAX_LABEL)
        .map(super::parse::unescape_tag)
}

/// Adds `tag` to a line's tags (a line without tags gets some).
fn tag_line(line: &[u8], tag: &str, out: &mut Vec<u8>) {
    match line.strip_prefix(b"@") {
        Some(rest) => {
            out.push(b'@');
            out.extend_from_slice(tag.as_bytes());
            out.push(b';');
            out.extend_from_slice(rest);
        }
        None => {
            out.push(b'@');
            out.extend_from_slice(tag.as_bytes());
            out.push(b' ');
            out.extend_from_slice(line);
        }
    }
}

/// The answers to one labeled command, as they are written.
#[derive(Debug)]
pub struct Labeled {
    label: String,
    /// The first line, until a second one shows a batch is needed.
    held: Vec<u8>,
    /// The batch id, once the batch is open.
    batch: Option<String>,
}

impl Labeled {
    pub fn new(label: String) -> Labeled {
        Labeled {
            label,
            held: Vec::new(),
            batch: None,
        }
    }

    /// Writes `bytes` (complete lines) as answers to the labeled command.
    pub fn write(&mut self, bytes: &[u8], server: &str, batch_id: u64, out: &mut Vec<u8>) {
        if let Some(id) = &self.batch {
            return tag_lines(bytes, &format!("batch={id}"), out);
        }
        self.held.extend_from_slice(bytes);
        if self.held.split_inclusive(|b| *b == b'\n').count() < 2 {
            return;
        }
        let id = format!("L{batch_id}");
        let start = format!(":{server} BATCH +{id} labeled-response\r\n");
        tag_line(start.as_bytes(), &label_tag(&self.label), out);
        tag_lines(&std::mem::take(&mut self.held), &format!("batch={id}"), out);
        self.batch = Some(id);
    }

    /// The command's answers are all written: closes the batch, or writes
    /// the one line labeled, or an `ACK`.
    pub fn finish(self, server: &str, out: &mut Vec<u8>) {
        match self.batch {
            Some(id) => out.extend_from_slice(format!(":{server} BATCH -{id}\r\n").as_bytes()),
            None => release(&self.label, &self.held, server, 0, out),
        }
    }
}

fn label_tag(label: &str) -> String {
    let mut escaped = String::new();
    escape_tag(label, &mut escaped);
    format!("label={escaped}")
}

/// Adds `tag` to each line of `bytes`.
fn tag_lines(bytes: &[u8], tag: &str, out: &mut Vec<u8>) {
    for l in bytes
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        tag_line(l, tag, out);
    }
}

/// The held lines (complete, CRLF-ended) answering the command labeled
/// `label`, written labeled: tagged if one, batched if several, `ACK` if
/// none. `batch_id` names the batch.
pub fn release(label: &str, held: &[u8], server: &str, batch_id: u64, out: &mut Vec<u8>) {
    let label_tag = label_tag(label);
    let lines: Vec<&[u8]> = held
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    match lines.len() {
        0 => tag_line(format!(":{server} ACK\r\n").as_bytes(), &label_tag, out),
        1 => tag_line(lines[0], &label_tag, out),
        _ => {
            let id = format!("L{batch_id}");
            let start = format!(":{server} BATCH +{id} labeled-response\r\n");
            tag_line(start.as_bytes(), &label_tag, out);
            let batch_tag = format!("batch={id}");
            for l in lines {
                tag_line(l, &batch_tag, out);
            }
            out.extend_from_slice(format!(":{server} BATCH -{id}\r\n").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released(held: &str) -> String {
        let mut out = Vec::new();
        release("x;y", held.as_bytes(), "srv", 7, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn none_one_or_several_lines() {
        assert_eq!(released(""), "@label=x\\:y :srv ACK\r\n");
        assert_eq!(
            released("@time=t :a PRIVMSG b :hi\r\n"),
            "@label=x\\:y;time=t :a PRIVMSG b :hi\r\n"
        );
        assert_eq!(
            released(":srv 311 a b\r\n:srv 318 a b\r\n"),
            "@label=x\\:y :srv BATCH +L7 labeled-response\r\n\
             @batch=L7 :srv 311 a b\r\n@batch=L7 :srv 318 a b\r\n:srv BATCH -L7\r\n"
        );
        assert_eq!(label_of("@label=abc;+x=y PING t").as_deref(), Some("abc"));
    }

    #[test]
    fn streamed_once_a_batch_is_needed() {
        let run = |parts: &[&str]| {
            let mut l = Labeled::new("x".into());
            let mut out = Vec::new();
            for p in parts {
                l.write(p.as_bytes(), "srv", 3, &mut out);
            }
            let before_end = out.len();
            l.finish("srv", &mut out);
            (String::from_utf8(out).unwrap(), before_end)
        };
        assert_eq!(run(&[]).0, "@label=x :srv ACK\r\n");
        assert_eq!(
            run(&[":srv 322 a\r\n"]),
            ("@label=x :srv 322 a\r\n".into(), 0)
        );
        let (all, before_end) = run(&[":srv 321 a\r\n", ":srv 322 a\r\n", ":srv 323 a\r\n"]);
        assert_eq!(
            all,
            "@label=x :srv BATCH +L3 labeled-response\r\n@batch=L3 :srv 321 a\r\n\
             @batch=L3 :srv 322 a\r\n@batch=L3 :srv 323 a\r\n:srv BATCH -L3\r\n"
        );
        assert!(before_end > 0, "written before the end, not held");
        assert_eq!(label_of("PING t"), None);
    }
}
