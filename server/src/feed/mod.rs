//! Market feeds (in progress).
