-- API clients, authentication throttling and the hash-chained audit trail.
CREATE SCHEMA access;

CREATE TABLE access.clients (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$'),
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('his', 'clinician', 'patient', 'analyst', 'admin')),
    facility_code text REFERENCES registry.facilities (code),
    resident_id   text,
    scopes        text[] NOT NULL,
    -- sha256$salt$hash of a 256-bit random secret; the secret itself is never stored.
    secret_hash   text NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    CHECK (role <> 'his' OR facility_code IS NOT NULL),
    CHECK (role <> 'patient' OR resident_id IS NOT NULL)
);

-- Failed authentications per key ("client:<id>", "address:<ip>"), with the lock they earn.
CREATE TABLE access.auth_throttle (
    key               text PRIMARY KEY,
    failures          integer NOT NULL,
    window_started_at timestamptz NOT NULL,
    locked_until      timestamptz
);

-- Append-only and hash-chained. Writers insert rows inside their own transactions without any
-- shared lock (id order is insertion order, not commit order); the sealer then chains committed
-- rows in batches, giving each its chain_seq, the previous row's hash and its own hash. A row can
-- be changed exactly once, from unsealed to sealed, and never deleted.
CREATE TABLE access.audit_log (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at        timestamptz NOT NULL,
    actor              text NOT NULL,
    role               text,
    facility           text,
    action             text NOT NULL,
    resource           text NOT NULL,
    resident_pseudonym text,
    purpose            text NOT NULL,
    outcome            text NOT NULL CHECK (outcome IN ('success', 'denied', 'error')),
    request_id         text,
    client_address     text,
    detail             text,
    chain_seq          bigint UNIQUE,
    prev_hash          text,
    hash               text,
    CHECK ((chain_seq IS NULL) = (hash IS NULL) AND (hash IS NULL) = (prev_hash IS NULL))
);

CREATE INDEX audit_log_unsealed_idx ON access.audit_log (id) WHERE chain_seq IS NULL;
CREATE INDEX audit_log_resident_idx ON access.audit_log (resident_pseudonym, occurred_at) WHERE resident_pseudonym IS NOT NULL;
CREATE INDEX audit_log_actor_idx ON access.audit_log (actor, occurred_at);

-- The chain head: the sealer locks this row, so two sealers never fork the chain.
CREATE TABLE access.audit_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO access.audit_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

CREATE FUNCTION access.guard_audit_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL
        AND (OLD.id, OLD.occurred_at, OLD.actor, OLD.role, OLD.facility, OLD.action, OLD.resource,
             OLD.resident_pseudonym, OLD.purpose, OLD.outcome, OLD.request_id, OLD.client_address, OLD.detail)
            IS NOT DISTINCT FROM
            (NEW.id, NEW.occurred_at, NEW.actor, NEW.role, NEW.facility, NEW.action, NEW.resource,
             NEW.resident_pseudonym, NEW.purpose, NEW.outcome, NEW.request_id, NEW.client_address, NEW.detail)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'access.audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON access.audit_log
    FOR EACH ROW EXECUTE FUNCTION access.guard_audit_log();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON access.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION access.guard_audit_log();
