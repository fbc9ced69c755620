//! A fake environment for the wait's unit tests.
