//! The filter language (in progress).
