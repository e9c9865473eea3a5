-- Version 2: a day's secondary indexes are built once the day is over.
--
-- The day being written keeps only its primary key (an append): inserting
-- into four more B-trees keyed all over the place cost six times as much
-- per event. The archive role builds each finished day's indexes on its
-- partition (server/src/archive/indexing.rs, docs/archive.md "Indexes"),
-- including the days already archived, on its first round after this.
DROP INDEX flow_events_sym_ts;
DROP INDEX flow_events_occ_ts;
DROP INDEX flow_events_premium;
