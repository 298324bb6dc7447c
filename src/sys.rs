//! What the process asks of the operating system for itself: the limit on
//! open files (every connection is one), raised by the server at start and
//! by the bench.

use std::io;

/// What happened to RLIMIT_NOFILE.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Nofile {
    /// Soft limit now in force.
    pub soft: u64,
    /// Hard limit now in force.
    pub hard: u64,
    /// Soft limit before.
    pub was_soft: u64,
}

/// Raises the open-file soft limit to what `want` needs: up to the hard
/// limit, and past it when the process may (root). Never lowers it.
pub fn raise_nofile(want: u64) -> io::Result<Nofile> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let was_soft = lim.rlim_cur;
    if lim.rlim_max < want {
        let more = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        // SAFETY: setrlimit only reads the struct. Fails without privilege;
        // then the hard limit stays and we fall back to it below.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &more) } == 0 {
            lim = more;
        }
    }
    if lim.rlim_cur < lim.rlim_max {
        let up = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above; raising the soft limit up to the hard one is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &up) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim = up;
    }
    Ok(Nofile {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
        was_soft,
    })
}
