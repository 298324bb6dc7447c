//! Numbers as ASCII digits written into the caller's buffer, without the
//! formatting machinery: for text written on every join, connection or
//! message (addresses, counts, ids, cloaks, the bench's payload headers).

/// `n` in decimal, as `Display` writes it: the tail of `buf` that holds it.
pub(crate) fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let (mut n, mut at) = (n, buf.len());
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// The low `dst.len()` hex digits of `v` (lowercase, zero-padded), as
/// `{:0N$x}` writes them when `v` fits.
pub(crate) fn hex(dst: &mut [u8], mut v: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in dst.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_read_as_format_writes_them() {
        for n in [0, 1, 9, 10, 99, 255, 65_535, 1 << 40, u64::MAX] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string().as_bytes());
            let mut h = [0u8; 16];
            hex(&mut h, u128::from(n));
            assert_eq!(h, format!("{n:016x}").as_bytes());
        }
        let mut h = [0u8; 32];
        hex(&mut h, u128::MAX - 1);
        assert_eq!(h, format!("{:032x}", u128::MAX - 1).as_bytes());
    }
}
