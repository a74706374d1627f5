-- Direct rooms (OPEN_DIRECT, SPEC.md §5.3.7): a direct room is a private
-- room of exactly two users, marked with the pair, the lower user id
-- first. At most one direct room per pair: the unique index is the store's
-- guard behind the server's own pair map (both sides opening at once still
-- make one room). NULL for every other room; the index is partial, so it
-- holds the direct rooms only. The room search (LIST_ROOMS) skips rooms
-- with a pair. WriteOp::SetDirect sets the pair after the batch function
-- (src/postgres/batch.rs), in the batch's transaction.
ALTER TABLE rooms
    ADD COLUMN direct_low  bigint REFERENCES users(id),
    ADD COLUMN direct_high bigint REFERENCES users(id),
    ADD CONSTRAINT rooms_direct_pair_ordered
        CHECK ((direct_low IS NULL AND direct_high IS NULL) OR direct_high > direct_low);
CREATE UNIQUE INDEX rooms_direct_pair ON rooms (direct_low, direct_high)
    WHERE direct_low IS NOT NULL;
