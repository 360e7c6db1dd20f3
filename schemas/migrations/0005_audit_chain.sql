-- The audit chain moves out of access.audit_log into a table of its own.
--
-- Sealing used to UPDATE each audit row to fill in chain_seq, prev_hash and hash. The update
-- changes an indexed column, so PostgreSQL could never make it a HOT update: every audited read
-- cost two heap tuples and two entries in every index of the largest table, and left one dead
-- tuple behind for autovacuum, whose index passes over a table of hundreds of millions of rows
-- are exactly the background I/O that puts a tail on card verification. Now an audit row is
-- written once and never touched again (the guard refuses every UPDATE and DELETE); the chain
-- is appended to access.audit_chain in id order by the sealer, and rows wait for it in
-- access.audit_unsealed, a small queue whose pages empty and are reused.

CREATE TABLE access.audit_chain (
    seq       bigint PRIMARY KEY,
    -- No foreign key: a reference check per sealed row buys nothing against an owner who can drop
    -- it; `audit verify` names a chain position whose audit row has gone.
    audit_id  bigint NOT NULL UNIQUE,
    prev_hash text NOT NULL,
    hash      text NOT NULL
);

CREATE TABLE access.audit_unsealed (
    id bigint PRIMARY KEY
);

INSERT INTO access.audit_chain (seq, audit_id, prev_hash, hash)
SELECT chain_seq, id, prev_hash, hash FROM access.audit_log WHERE chain_seq IS NOT NULL;
INSERT INTO access.audit_unsealed (id) SELECT id FROM access.audit_log WHERE chain_seq IS NULL;

-- Every writer's row joins the queue in the writer's own statement and transaction, whatever
-- path wrote it: a statement-level trigger, one call per INSERT however many rows it adds.
CREATE FUNCTION access.queue_audit_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO access.audit_unsealed (id) SELECT id FROM new_rows;
    RETURN NULL;
END;
$$;

CREATE TRIGGER audit_log_queue
    AFTER INSERT ON access.audit_log
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION access.queue_audit_rows();

CREATE OR REPLACE FUNCTION access.guard_audit_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP INDEX access.audit_log_unsealed_idx;
ALTER TABLE access.audit_log DROP COLUMN chain_seq, DROP COLUMN prev_hash, DROP COLUMN hash;

CREATE TRIGGER audit_chain_append_only
    BEFORE UPDATE OR DELETE ON access.audit_chain
    FOR EACH ROW EXECUTE FUNCTION access.guard_audit_log();

CREATE TRIGGER audit_chain_no_truncate
    BEFORE TRUNCATE ON access.audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION access.guard_audit_log();
