//! What a ticket asks of its queue ([`Mode`]) and the kind of queue that
//! makes ([`Kind`]): the plain lock, a semaphore, a read-write lock.

use crate::error::{Error, Result};

/// The kind of a resource's queue, fixed when the queue is made: every
/// ticket of the queue asks for the same kind (else
/// [`ErrorKind::WrongKind`](crate::ErrorKind::WrongKind)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// turn 1.0's queue: one holder at a time.
    Plain,
    /// A FIFO semaphore: holders whose weights add up to at most `permits`.
    Semaphore {
        /// The sum of the holders' weights is at most this.
        permits: u32,
    },
    /// A read-write lock: shared holders together, an exclusive one alone.
    ReadWrite,
}

/// What one ticket asks of its queue. Admission is in draw order whatever
/// the mode: a ticket that cannot be admitted yet holds back every later
/// one (no barging; writers are never starved, readers never barge).
///
/// ```
/// use turn::{Acquire, Mode};
///
/// // One of at most 4 jobs on this machine.
/// let job = Acquire::label("job").mode(Mode::Semaphore { permits: 4, weight: 1 });
/// // A reader: holds beside other readers, never beside a writer.
/// let reader = Acquire::label("report").mode(Mode::ReadWrite { exclusive: false });
/// assert_eq!(job.mode.kind(), turn::Kind::Semaphore { permits: 4 });
/// assert_eq!(reader.mode.kind(), turn::Kind::ReadWrite);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// The plain lock: one holder at a time, turn 1.0's queue.
    #[default]
    Plain,
    /// `weight` permits of a FIFO semaphore of `permits` (1 <= weight <=
    /// permits). Every acquire of one resource names the same `permits`.
    Semaphore {
        /// The permits of the semaphore.
        permits: u32,
        /// The permits this holder takes.
        weight: u32,
    },
    /// A read-write lock: `exclusive` holds alone (a writer); shared
    /// (`exclusive == false`) holds beside other shared holders (readers).
    ReadWrite {
        /// Alone (a writer), or beside other shared holders (a reader).
        exclusive: bool,
    },
}

impl Mode {
    /// The kind of queue this mode takes part in.
    pub fn kind(self) -> Kind {
        match self {
            Mode::Plain => Kind::Plain,
            Mode::Semaphore { permits, .. } => Kind::Semaphore { permits },
            Mode::ReadWrite { .. } => Kind::ReadWrite,
        }
    }

    /// `InvalidArgument` for permits 0, or a weight of 0 or over the
    /// permits.
    pub(crate) fn validate(self) -> Result<()> {
        if let Mode::Semaphore { permits, weight } = self {
            if permits == 0 {
                return Err(Error::invalid("a semaphore needs at least 1 permit"));
            }
            if weight == 0 || weight > permits {
                return Err(Error::invalid(format!(
                    "a semaphore's weight must be from 1 to its permits ({permits}), not {weight}"
                )));
            }
        }
        Ok(())
    }
}
