//! IRCv3 `labeled-response`: a client tags a command with `@label=…` and
//! gets every line answering it tagged with the same label — one line
//! tagged, several in a `BATCH +id labeled-response`, none as an `ACK`.
//!
//! The session brackets the command's answers with markers in the
//! connection's queue ([`Mark`](crate::proto::session::Mark)); what is
//! written between them (its own replies and the hub's events for this
//! connection) is held here and let out labeled at the closing marker.
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

/// The held lines (complete, CRLF-ended) answering the command labeled
/// `label`, written labeled: tagged if one, batched if several, `ACK` if
/// none. `batch_id` names the batch.
pub fn release(label: &str, held: &[u8], server: &str, batch_id: u64, out: &mut Vec<u8>) {
    let mut escaped = String::new();
    escape_tag(label, &mut escaped);
    let label_tag = format!("label={escaped}");
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
        assert_eq!(label_of("PING t"), None);
    }
}
