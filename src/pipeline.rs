//! parse → attribute → classify → count, shared by the `classify` command and
//! the daemon.
