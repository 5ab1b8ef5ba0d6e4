//! Attribution: which server and user an event belongs to.
