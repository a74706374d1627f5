-- Confab Postgres schema, version 3: trigram indexes for the room search.
--
-- The search is an infix match (name_folded/topic_folded LIKE '%q%'),
-- which no B-tree can serve: without these indexes every search reads the
-- whole rooms table (3-16 ms at 20 000 rooms, growing linearly). pg_trgm's
-- GIN indexes answer a LIKE with a pattern of 3 or more characters from
-- the index (0.3 ms for a rare word at 20 000 rooms; examples/explain.rs,
-- ARCHITECTURE.md "Storage"). Shorter patterns, and the empty query, still
-- scan the table, which is also what counting every visible room needs.
--
-- pg_trgm ships with PostgreSQL's contrib modules (Debian's server
-- package, the official Docker image, the managed services) and is a
-- trusted extension since PostgreSQL 13, so the database owner may create
-- it. Where it is not available the search works unindexed and this
-- migration only says so; run the three statements below by hand once it
-- is installed.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX rooms_name_trgm ON rooms USING gin (name_folded gin_trgm_ops);
        CREATE INDEX rooms_topic_trgm ON rooms USING gin (topic_folded gin_trgm_ops);
    ELSE
        RAISE NOTICE 'pg_trgm is not available: the room search will scan the rooms table';
    END IF;
END
$$;
