-- Confab Postgres schema, version 14: events COPY'd straight into `events`.
--
-- In COPY mode a batch's events are streamed with `COPY events … FROM STDIN
-- (FORMAT binary)` straight into the table, in the batch's transaction
-- (src/postgres/batch.rs): no staging table, no `INSERT … SELECT`, no
-- speculative insertion — the same work as a raw COPY into the keyed table.
-- COPY knows no `ON CONFLICT`, so a batch whose events already exist (a
-- replay from the spool, a retry after a lost commit acknowledgement) or
-- that names one (room_id, seq) twice fails on events_pkey; the store then
-- rolls it back and applies it again through the staging table, whose
-- insert keeps the first of each key (0002).
--
-- What confab_apply_batch does for the events it inserts itself is left to
-- confab_copied_events, called after it in the same statement (so after
-- the batch's CreateRooms): each room's last_seq raised to the highest seq
-- the batch wrote for it, and an error if a room does not exist (the
-- foreign key events.room_id would have caught it, per row). The client
-- sends one element per room of the batch (distinct rooms, each with its
-- highest seq), not one per event, and the existence check runs only when
-- the update raised fewer rooms than it was given — in steady traffic every
-- room of the batch is raised, and the check costs nothing.
CREATE FUNCTION confab_copied_events(
    ev_room    bigint[],
    ev_max_seq bigint[]
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    raised  integer;
    missing bigint;
BEGIN
    IF cardinality(ev_room) = 0 THEN
        RETURN;
    END IF;
    UPDATE rooms r SET last_seq = m.max_seq
    FROM unnest(ev_room, ev_max_seq) AS m(room_id, max_seq)
    WHERE r.id = m.room_id AND r.last_seq < m.max_seq;
    GET DIAGNOSTICS raised = ROW_COUNT;
    IF raised < cardinality(ev_room) THEN
        SELECT x INTO missing
        FROM unnest(ev_room) AS x
        WHERE NOT EXISTS (SELECT 1 FROM rooms r WHERE r.id = x)
        LIMIT 1;
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'foreign_key_violation',
                MESSAGE = format('event for room %s, which does not exist', missing);
        END IF;
    END IF;
END;
$$;
