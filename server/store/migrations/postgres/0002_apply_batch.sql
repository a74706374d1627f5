-- Confab Postgres schema, version 2: the batch function.
--
-- confab_apply_batch applies one batch of WriteOps (src/lib.rs) in a single
-- statement, hence a single round trip and, in autocommit, a single
-- transaction. The batch arrives as columns (arrays), one group per kind of
-- operation (src/postgres/batch.rs builds them):
--
-- * state ops (rooms, memberships, bans, invitations, join requests, room
--   log), applied one by one in batch order: later ops may undo earlier
--   ones (join then leave), so their order is part of their meaning;
-- * events, appended in bulk after the state ops, from the arrays or, when
--   events_staged is true, from the session's temporary table
--   confab_events_staging filled by COPY (src/postgres/copy.rs);
-- * notifications and audit entries, inserted in bulk.
--
-- Moving events, notifications and audit entries after the state ops
-- changes no outcome: they are append-only, nothing in the batch reads
-- them, and they depend on the state ops only through their room existing,
-- which a CreateRoom earlier in the batch guarantees. Within each group the
-- batch order is kept (WITH ORDINALITY … ORDER BY), so the first of two
-- events with the same (room_id, seq) wins and audit ids follow batch order.
--
-- State op kinds (op_kind), with the columns each one reads:
--   1 CreateRoom     room, user = owner, code = visibility, at = created_at,
--                    name, topic, name_folded, topic_folded
--   2 AddMember      room, user, code = role, at = joined_at
--   3 RemoveMember   room, user
--   4 SetRole        room, user, code = role
--   5 UpdateRoom     room, name, topic, name_folded, topic_folded
--   6 SetOwner       room, user = owner
--   7 TerminateRoom  room, at
--   8 Ban            room, user, by, at
--   9 Unban          room, user
--  10 PutInvite      room, user, by, at
--  11 DeleteInvite   room, user
--  12 PutJoinRequest room, user, at
--  13 DeleteJoinRequest room, user
--  14 LogJoin        room, user, at
--  15 LogLeave       room, user, at, code = reason
-- op_pos is each op's index in the whole batch, for error messages.
CREATE FUNCTION confab_apply_batch(
    op_kind         smallint[],
    op_pos          integer[],
    op_room         bigint[],
    op_user         bigint[],
    op_by           bigint[],
    op_at           bigint[],
    op_code         smallint[],
    op_name         text[],
    op_topic        text[],
    op_name_folded  text[],
    op_topic_folded text[],
    ev_room         bigint[],
    ev_seq          bigint[],
    ev_at           bigint[],
    ev_actor        bigint[],
    ev_actor_name   text[],
    ev_kind         smallint[],
    ev_body         bytea[],
    events_staged   boolean,
    nt_id           bigint[],
    nt_user         bigint[],
    nt_kind         smallint[],
    nt_room         bigint[],
    nt_room_name    text[],
    nt_actor        bigint[],
    nt_actor_name   text[],
    nt_at           bigint[],
    nt_read         boolean[],
    au_at           bigint[],
    au_actor        bigint[],
    au_action       text[],
    au_room         bigint[],
    au_target       bigint[],
    au_detail       text[]
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    i   integer := 1;
    n   integer := cardinality(op_kind);
    missing bigint;
BEGIN
    IF n > 0 THEN
        -- One block (one subtransaction per batch, not per op) so that a
        -- failing op is reported with its position in the batch.
        BEGIN
            WHILE i <= n LOOP
                CASE op_kind[i]
                WHEN 1 THEN
                    INSERT INTO rooms (id, name, topic, name_folded, topic_folded, visibility,
                                       owner_id, created_at)
                    VALUES (op_room[i], op_name[i], op_topic[i], op_name_folded[i],
                            op_topic_folded[i], op_code[i], op_user[i], op_at[i])
                    -- Room ids are never reused: a conflict is a replay of
                    -- this op (spool, crash), whose later changes follow it.
                    ON CONFLICT (id) DO NOTHING;
                WHEN 2 THEN
                    INSERT INTO memberships (room_id, user_id, role, joined_at)
                    VALUES (op_room[i], op_user[i], op_code[i], op_at[i])
                    ON CONFLICT (room_id, user_id)
                    DO UPDATE SET role = excluded.role, joined_at = excluded.joined_at;
                WHEN 3 THEN
                    DELETE FROM memberships WHERE room_id = op_room[i] AND user_id = op_user[i];
                WHEN 4 THEN
                    UPDATE memberships SET role = op_code[i]
                    WHERE room_id = op_room[i] AND user_id = op_user[i];
                WHEN 5 THEN
                    UPDATE rooms SET name = op_name[i], topic = op_topic[i],
                                     name_folded = op_name_folded[i],
                                     topic_folded = op_topic_folded[i]
                    WHERE id = op_room[i];
                WHEN 6 THEN
                    UPDATE rooms SET owner_id = op_user[i] WHERE id = op_room[i];
                WHEN 7 THEN
                    -- coalesce: a replayed termination keeps the first time.
                    -- Bans stay: a banned user must not see the room again.
                    UPDATE rooms SET terminated_at = coalesce(terminated_at, op_at[i])
                    WHERE id = op_room[i];
                    DELETE FROM memberships WHERE room_id = op_room[i];
                    DELETE FROM invites WHERE room_id = op_room[i];
                    DELETE FROM join_requests WHERE room_id = op_room[i];
                WHEN 8 THEN
                    INSERT INTO bans (room_id, user_id, by_id, at)
                    VALUES (op_room[i], op_user[i], op_by[i], op_at[i])
                    ON CONFLICT (room_id, user_id)
                    DO UPDATE SET by_id = excluded.by_id, at = excluded.at;
                WHEN 9 THEN
                    DELETE FROM bans WHERE room_id = op_room[i] AND user_id = op_user[i];
                WHEN 10 THEN
                    INSERT INTO invites (room_id, user_id, by_id, at)
                    VALUES (op_room[i], op_user[i], op_by[i], op_at[i])
                    ON CONFLICT (room_id, user_id)
                    DO UPDATE SET by_id = excluded.by_id, at = excluded.at;
                WHEN 11 THEN
                    DELETE FROM invites WHERE room_id = op_room[i] AND user_id = op_user[i];
                WHEN 12 THEN
                    INSERT INTO join_requests (room_id, user_id, at)
                    VALUES (op_room[i], op_user[i], op_at[i])
                    ON CONFLICT (room_id, user_id) DO UPDATE SET at = excluded.at;
                WHEN 13 THEN
                    DELETE FROM join_requests WHERE room_id = op_room[i] AND user_id = op_user[i];
                WHEN 14 THEN
                    INSERT INTO room_log (user_id, room_id, first_joined_at, last_joined_at,
                                          left_at, reason)
                    VALUES (op_user[i], op_room[i], op_at[i], op_at[i], NULL, 0)
                    ON CONFLICT (user_id, room_id)
                    DO UPDATE SET last_joined_at = excluded.last_joined_at,
                                  left_at = NULL, reason = 0;
                WHEN 15 THEN
                    -- An update only: an association never logged as a
                    -- join has nothing to end.
                    UPDATE room_log SET left_at = op_at[i], reason = op_code[i]
                    WHERE user_id = op_user[i] AND room_id = op_room[i];
                ELSE
                    RAISE EXCEPTION 'unknown state op kind %', op_kind[i];
                END CASE;
                i := i + 1;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION USING
                ERRCODE = SQLSTATE,
                MESSAGE = format('op %s: %s', op_pos[i], SQLERRM);
        END;
    END IF;

    IF events_staged THEN
        INSERT INTO events (room_id, seq, at, actor_id, actor_name, kind, body)
        SELECT s.room_id, s.seq, s.at, s.actor_id, s.actor_name, s.kind, s.body
        FROM confab_events_staging s
        ORDER BY s.ord
        ON CONFLICT (room_id, seq) DO NOTHING;

        UPDATE rooms r SET last_seq = m.max_seq
        FROM (SELECT s.room_id, max(s.seq) AS max_seq
              FROM confab_events_staging s GROUP BY s.room_id) m
        WHERE r.id = m.room_id AND r.last_seq < m.max_seq;

        SELECT s.room_id INTO missing
        FROM (SELECT DISTINCT room_id FROM confab_events_staging) s
        WHERE NOT EXISTS (SELECT 1 FROM rooms r WHERE r.id = s.room_id)
        LIMIT 1;
    ELSIF cardinality(ev_room) > 0 THEN
        INSERT INTO events (room_id, seq, at, actor_id, actor_name, kind, body)
        SELECT e.room_id, e.seq, e.at, e.actor_id, e.actor_name, e.kind, e.body
        FROM unnest(ev_room, ev_seq, ev_at, ev_actor, ev_actor_name, ev_kind, ev_body)
             WITH ORDINALITY AS e(room_id, seq, at, actor_id, actor_name, kind, body, ord)
        ORDER BY e.ord
        ON CONFLICT (room_id, seq) DO NOTHING;

        -- Raised, never lowered: a replayed older event leaves it alone.
        UPDATE rooms r SET last_seq = m.max_seq
        FROM (SELECT e.room_id, max(e.seq) AS max_seq
              FROM unnest(ev_room, ev_seq) AS e(room_id, seq) GROUP BY e.room_id) m
        WHERE r.id = m.room_id AND r.last_seq < m.max_seq;

        SELECT e.room_id INTO missing
        FROM (SELECT DISTINCT x AS room_id FROM unnest(ev_room) AS x) e
        WHERE NOT EXISTS (SELECT 1 FROM rooms r WHERE r.id = e.room_id)
        LIMIT 1;
    END IF;
    -- The foreign key events.room_id would have caught this, per row.
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'foreign_key_violation',
            MESSAGE = format('event for room %s, which does not exist', missing);
    END IF;

    IF cardinality(nt_id) > 0 THEN
        -- Idempotent by id; the first write (its read flag included) wins.
        INSERT INTO notifications (id, user_id, kind, room_id, room_name, actor_id,
                                   actor_name, at, read)
        SELECT t.id, t.user_id, t.kind, t.room_id, t.room_name, t.actor_id,
               t.actor_name, t.at, t.read
        FROM unnest(nt_id, nt_user, nt_kind, nt_room, nt_room_name, nt_actor,
                    nt_actor_name, nt_at, nt_read)
             WITH ORDINALITY AS t(id, user_id, kind, room_id, room_name, actor_id,
                                  actor_name, at, read, ord)
        ORDER BY t.ord
        ON CONFLICT (id) DO NOTHING;
    END IF;

    IF cardinality(au_at) > 0 THEN
        INSERT INTO audit (at, actor_id, action, room_id, target_id, detail)
        SELECT t.at, t.actor_id, t.action, t.room_id, t.target_id, t.detail
        FROM unnest(au_at, au_actor, au_action, au_room, au_target, au_detail)
             WITH ORDINALITY AS t(at, actor_id, action, room_id, target_id, detail, ord)
        ORDER BY t.ord;
    END IF;
END;
$$;
