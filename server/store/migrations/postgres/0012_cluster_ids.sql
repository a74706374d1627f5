-- Cluster mode, phase 2 (ARCHITECTURE.md, "Cluster (in progress)"): ids a
-- node hands out itself — room ids and notification ids — come in blocks
-- from here, so two nodes never hand out the same id. A single node never
-- reads or writes this table: it continues from the highest id stored.
--
-- `next` is the first id of the next block of `kind` ('rooms',
-- 'notifications'). Taking a block is one upsert that also raises `next`
-- to above every id stored (a single-node run in between may have stored
-- higher ids), under the row's lock: two nodes taking blocks at once get
-- disjoint ones.
CREATE TABLE cluster_id_blocks (
    kind text PRIMARY KEY,
    next bigint NOT NULL CHECK (next > 0)
);
