-- Version 1: the flow event archive, one partition per New York trading day.
--
-- Every field of a flow event is a column (docs/schema.md names them).
-- Prices, premium and the ratios are double precision: they are f64 in the
-- event, and a double holds each one bit for bit, so what is archived reads
-- back equal to what the stream carried (numeric would be exact only for
-- the decimal rendering, and slower to sum). Counts are bigint (u64 in the
-- event; any real count fits). The cursor is two bigints, and
-- (day, cursor_ms, cursor_seq) is the primary key: an event written twice
-- (a replay after a crash) is found and skipped.
CREATE TABLE flow_events (
    day         date             NOT NULL,
    cursor_ms   bigint           NOT NULL,
    cursor_seq  bigint           NOT NULL,
    ts          timestamptz      NOT NULL,
    sym         text             NOT NULL,
    occ         text             NOT NULL,
    expiry      date             NOT NULL,
    strike      double precision NOT NULL,
    "right"     text             NOT NULL,
    side        text             NOT NULL,
    size        bigint           NOT NULL,
    price       double precision NOT NULL,
    premium     double precision NOT NULL,
    kind        text             NOT NULL,
    legs        integer          NOT NULL,
    exchanges   smallint[]       NOT NULL,
    spot        double precision,
    otm         double precision,
    dte         integer          NOT NULL,
    oi          bigint,
    vol         bigint           NOT NULL,
    iv          double precision,
    bid         double precision,
    ask         double precision,
    tags        text[]           NOT NULL,
    sentiment   text             NOT NULL,
    score       smallint         NOT NULL,
    -- Fields of a newer event schema that this version has no column for
    -- (NULL when there are none): kept until a migration gives them one.
    extra       jsonb,
    PRIMARY KEY (day, cursor_ms, cursor_seq)
) PARTITION BY RANGE (day);

CREATE INDEX flow_events_sym_ts ON flow_events (sym, ts);
CREATE INDEX flow_events_occ_ts ON flow_events (occ, ts);
CREATE INDEX flow_events_premium ON flow_events (premium DESC);

-- How far each flow stream (by bus namespace) is archived: written in the
-- transaction that writes the events, so it never runs ahead of them.
CREATE TABLE archive_progress (
    stream      text        PRIMARY KEY,
    cursor_ms   bigint      NOT NULL,
    cursor_seq  bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
