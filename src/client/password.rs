//! Asking for a password on the terminal (`/dev/tty`, so a piped stdin is
//! left alone) without echoing it. Echo is turned off *before* the prompt
//! is shown, so nothing typed after the prompt appears can be echoed (a
//! crate that prints the prompt first and then turns echo off leaves a
//! window in which it can: the TUI test typing right after the prompt saw
//! the password on the screen).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, RawFd};

/// Shows `prompt` on the terminal and reads one line, not echoed; the
/// line ending is removed. The terminal's settings are restored after.
pub fn ask(prompt: &str) -> std::io::Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let quiet = Quiet::on(tty.as_raw_fd())?;
    (&tty).write_all(prompt.as_bytes())?;
    (&tty).flush()?;
    let mut line = String::new();
    BufReader::new(&tty).read_line(&mut line)?;
    drop(quiet);
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "end of input at the password prompt",
        ));
    }
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
}

/// A terminal with echo off (the newline still echoed) until dropped.
struct Quiet {
    fd: RawFd,
    saved: libc::termios,
}

impl Quiet {
    fn on(fd: RawFd) -> std::io::Result<Quiet> {
        // SAFETY: an all-zero termios is a valid value for tcgetattr to overwrite.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open for the duration; `saved` is a valid termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: as above; `quiet` is a termios from tcgetattr, changed in flags only.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Quiet { fd, saved })
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `on` on the same open fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}
