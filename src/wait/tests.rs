//! The wait's unit tests.
