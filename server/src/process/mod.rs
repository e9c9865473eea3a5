//! Flow detection (in progress).
