//! The kinds of handles, and the ways a value is not a live handle of the
//! kind asked for.

/// What a table holds; each kind has its own tag in its handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Locker = 1,
    Lock = 2,
    Cancel = 3,
    Status = 4,
    Options = 5,
    Pending = 6,
}

impl Kind {
    pub(super) fn from_tag(tag: u64) -> Option<Kind> {
        match tag {
            1 => Some(Kind::Locker),
            2 => Some(Kind::Lock),
            3 => Some(Kind::Cancel),
            4 => Some(Kind::Status),
            5 => Some(Kind::Options),
            6 => Some(Kind::Pending),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Locker => "turn_locker",
            Kind::Lock => "turn_lock",
            Kind::Cancel => "turn_cancel",
            Kind::Status => "turn_status",
            Kind::Options => "turn_options",
            Kind::Pending => "turn_pending",
        }
    }

    /// Whether a forked child keeps using the parent's objects of this kind:
    /// plain data, tied to no connection nor thread.
    pub(super) fn carried_into_children(self) -> bool {
        matches!(self, Kind::Status | Kind::Options)
    }
}

/// Why a value is not a live handle of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Misuse {
    /// Not made by this process or its ancestors (made up, damaged, or
    /// from too far back).
    NotAHandle,
    /// A real handle of another kind.
    OtherKind(Kind),
    /// A real handle made before the latest fork(), of a kind a child does
    /// not carry on (or could not: see `Generation::carried`).
    Forked,
}
