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

-- Append-only: each row's hash covers its fields and the previous row's hash.
CREATE TABLE access.audit_log (
    seq                bigint PRIMARY KEY,
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
    prev_hash          text NOT NULL,
    hash               text NOT NULL
);

CREATE INDEX audit_log_resident_idx ON access.audit_log (resident_pseudonym, occurred_at) WHERE resident_pseudonym IS NOT NULL;
CREATE INDEX audit_log_actor_idx ON access.audit_log (actor, occurred_at);

-- The chain head: appenders take this row's lock with UPDATE … RETURNING, which orders them.
CREATE TABLE access.audit_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO access.audit_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

CREATE FUNCTION access.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access.audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON access.audit_log
    FOR EACH ROW EXECUTE FUNCTION access.refuse_audit_change();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON access.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION access.refuse_audit_change();
