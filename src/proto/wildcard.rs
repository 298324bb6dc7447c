//! Wildcard matching (`*`: any run, `?`: any one character) as IRC masks
//! use it, ignoring case as nicks do: room bans and `WHO` in the hub, oper
//! host masks in protocol sessions.

/// Whether `subject` matches the wildcard `mask` (`*`: any run, `?`: any one
/// character), ignoring case as nicks do.
pub fn matches(mask: &str, subject: &str) -> bool {
    let m: Vec<char> = mask.to_lowercase().chars().collect();
    let s: Vec<char> = subject.to_lowercase().chars().collect();
    let (mut mi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if mi < m.len() && (m[mi] == '?' || m[mi] == s[si]) {
            mi += 1;
            si += 1;
        } else if mi < m.len() && m[mi] == '*' {
            star = Some((mi, si));
            mi += 1;
        } else if let Some((smi, ssi)) = star {
            mi = smi + 1;
            si = ssi + 1;
            star = Some((smi, ssi + 1));
        } else {
            return false;
        }
    }
    while mi < m.len() && m[mi] == '*' {
        mi += 1;
    }
    mi == m.len()
}
