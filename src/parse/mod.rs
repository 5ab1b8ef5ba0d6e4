//! Parsing: one raw message to a typed event, format detected per event.
