//! A file descriptor owned by the library that becomes readable once set
//! and stays readable (level-triggered) until it is cleared or closed: an
//! eventfd on Linux, a pipe elsewhere. Only `clear` reads it; setting it
//! twice is harmless.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub(crate) struct EventFd {
    read: OwnedFd,
    /// The pipe's write end (None for an eventfd, written through `read`).
    write: Option<OwnedFd>,
}

impl EventFd {
    /// A new descriptor, not readable yet, close-on-exec and non-blocking.
    #[cfg(target_os = "linux")]
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: a plain system call; the result is checked.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor owned by nobody else.
        let read = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(EventFd { read, write: None })
    }

    /// A new descriptor, not readable yet, close-on-exec and non-blocking.
    #[cfg(not(target_os = "linux"))]
    pub fn new() -> io::Result<EventFd> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds has room for two descriptors; the result is checked.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: two new descriptors owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            // SAFETY: live descriptors; plain fcntl calls.
            unsafe {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
                let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        Ok(EventFd {
            read,
            write: Some(write),
        })
    }

    pub fn raw(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Makes it readable, for good.
    pub fn set(&self) {
        let target = self.write.as_ref().unwrap_or(&self.read);
        let one: u64 = 1;
        // SAFETY: a live descriptor and 8 bytes to write (an eventfd takes
        // a u64; a pipe takes any bytes). A full pipe or counter already
        // makes it readable, so the outcome needs no check.
        unsafe { libc::write(target.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Makes it unreadable again: for an owner whose watchers must stop
    /// hearing of it at once, while another holder may keep it open a
    /// moment longer.
    pub fn clear(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: a live, non-blocking descriptor and a buffer of 64 bytes
        // (an eventfd reads its u64 counter in 8 and resets it; a pipe is
        // drained until it would block).
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 }
    }

    #[test]
    fn it_becomes_readable_once_set_and_stays_so() {
        let fd = EventFd::new().unwrap();
        assert!(!readable(fd.raw()));
        fd.set();
        assert!(readable(fd.raw()));
        fd.set();
        assert!(readable(fd.raw()));
        fd.clear();
        assert!(!readable(fd.raw()));
        fd.clear();
        assert!(!readable(fd.raw()));
    }
}
