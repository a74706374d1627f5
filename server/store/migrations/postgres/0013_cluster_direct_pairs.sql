-- Cluster mode (ARCHITECTURE.md, "Cluster"): which room is each pair's
-- direct room (OPEN_DIRECT, SPEC.md §5.3.7), decided before the room
-- exists. A node takes a fresh room id in a partition it serves and claims
-- the pair with it; the primary key lets exactly one claim per pair win,
-- and every other node (its own fresh id left unused) gets the winner's
-- room and sends the OPEN_DIRECT to that room's owner, which creates the
-- room if it does not hold it yet. A pair whose direct room already exists
-- (created by a single node, or before this table) is claimed with that
-- room. A single node never reads or writes this table: its pair map and
-- the unique index `rooms_direct_pair` are enough on one node.
CREATE TABLE cluster_direct_pairs (
    low  bigint NOT NULL,
    high bigint NOT NULL,
    room bigint NOT NULL,
    PRIMARY KEY (low, high),
    CHECK (high > low)
);
