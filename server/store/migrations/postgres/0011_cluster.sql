-- Cluster mode (ARCHITECTURE.md, "Cluster (in progress)"): rooms are
-- grouped into a fixed number of partitions (room id modulo the count), and
-- each partition is owned by one node at a time under a lease. Every time
-- decision below is taken by this database's clock (now(),
-- clock_timestamp()), never a node's, and every change of owner is one
-- conditional UPDATE: two nodes can never both hold a partition.
--
-- A single node (no --cluster-nats) never reads or writes these tables.

-- The partition count, fixed per deployment: the first node to start
-- stores it; a node configured with another count refuses to start.
CREATE TABLE cluster_settings (
    one smallint PRIMARY KEY CHECK (one = 1),
    partitions integer NOT NULL CHECK (partitions > 0)
);

-- Each process that joins gets a fresh incarnation number: leases are held
-- by an incarnation, so a node restarted under the same name never
-- mistakes its predecessor's leases for its own.
CREATE SEQUENCE cluster_incarnations;

-- The nodes, with a heartbeat: those whose expires_at is in the future are
-- live, and the balance aims at ceil(partitions / live) per node.
CREATE TABLE cluster_nodes (
    node_id text PRIMARY KEY,
    incarnation bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

-- One row per partition. `epoch` is the fencing token: it rises by one on
-- every acquisition, so a new owner always holds a higher epoch than any
-- earlier one. A lease is held while expires_at is in the future; a
-- released lease has expires_at set to the time of release (free at once).
CREATE TABLE partition_leases (
    part integer PRIMARY KEY CHECK (part >= 0),
    owner bigint,
    owner_node text,
    epoch bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);

-- The fence of a batch (postgres/batch.rs): the writing incarnation must
-- hold every listed partition at the listed epoch, unexpired, now. The
-- rows are locked FOR SHARE until the batch's transaction ends, so a
-- takeover (an UPDATE of the row) waits for the batch to commit or abort
-- and then sees its writes; a takeover that came first makes the check
-- fail. SQLSTATE CF001 is how the store tells a fenced batch from any
-- other failure.
CREATE FUNCTION confab_check_fence(p_owner bigint, p_parts integer[], p_epochs bigint[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    held integer;
BEGIN
    SELECT count(*) INTO held FROM (
        SELECT 1 FROM partition_leases l
        JOIN unnest(p_parts, p_epochs) AS f(part, epoch) ON l.part = f.part
        WHERE l.owner = p_owner AND l.epoch = f.epoch AND l.expires_at > clock_timestamp()
        FOR SHARE OF l) x;
    IF held <> coalesce(cardinality(p_parts), 0) THEN
        RAISE EXCEPTION 'fenced: the writer does not hold the lease of every partition of the batch at its epoch'
            USING ERRCODE = 'CF001';
    END IF;
END $$;
