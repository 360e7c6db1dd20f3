-- Online consultations: a resident's request joins a department's queue, a clinician on duty
-- claims it, accepts, transfers or completes it; the message thread; duty rosters; the events the
-- live streams (SSE) read; the outbox for escalations. Departments and clinicians are
-- scheduling.departments and scheduling.providers (0010).

-- Who is on duty where and when. A clinician with no shift covering now cannot claim.
CREATE TABLE consultation.duty_shifts (
    id uuid PRIMARY KEY,
    provider_id uuid NOT NULL REFERENCES scheduling.providers (id),
    department_id uuid NOT NULL REFERENCES scheduling.departments (id),
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    CHECK (ends_at - starts_at <= interval '24 hours')
);
CREATE INDEX duty_shifts_provider_idx ON consultation.duty_shifts (provider_id, ends_at);
CREATE INDEX duty_shifts_department_idx ON consultation.duty_shifts (department_id, ends_at);

CREATE TABLE consultation.consultations (
    id uuid PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    requested_by text NOT NULL,
    -- The department whose queue holds it now; a transfer changes it.
    department_id uuid NOT NULL REFERENCES scheduling.departments (id),
    -- Claimable only by this clinician until the request is escalated; NULL: any clinician.
    preferred_provider_id uuid REFERENCES scheduling.providers (id),
    complaint text NOT NULL CHECK (length(complaint) BETWEEN 1 AND 4000),
    urgency text NOT NULL CHECK (urgency IN ('routine', 'urgent')),
    -- Queue order: priority first (urgent 2, routine 0, +1 once escalated), then queued_at.
    priority smallint NOT NULL CHECK (priority BETWEEN 0 AND 3),
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'claimed', 'in-progress', 'completed', 'cancelled')),
    -- When the resident asked; a transfer keeps it, so a transferred request does not lose its place.
    queued_at timestamptz NOT NULL DEFAULT now(),
    -- The clinician holding it (claimed, in progress, completed).
    provider_id uuid REFERENCES scheduling.providers (id),
    claimed_at timestamptz,
    accepted_at timestamptz,
    completed_at timestamptz,
    cancelled_at timestamptz,
    escalated boolean NOT NULL DEFAULT false,
    escalated_at timestamptz,
    transfers integer NOT NULL DEFAULT 0,
    summary text CHECK (length(summary) <= 4000),
    advice text CHECK (length(advice) <= 4000),
    encounter_id uuid REFERENCES records.encounters (id),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('claimed', 'in-progress', 'completed')) = (provider_id IS NOT NULL)),
    CHECK ((status = 'completed') = (encounter_id IS NOT NULL))
);
-- The claim's probe: the head of a department's queue.
CREATE INDEX consultations_queue_idx ON consultation.consultations (department_id, priority DESC, queued_at, id) WHERE status = 'queued';
CREATE INDEX consultations_escalation_idx ON consultation.consultations (queued_at) WHERE status = 'queued' AND NOT escalated;
CREATE INDEX consultations_resident_idx ON consultation.consultations (resident_id, queued_at DESC);
CREATE INDEX consultations_provider_idx ON consultation.consultations (provider_id, status) WHERE provider_id IS NOT NULL;
-- The recent handling time behind the estimated wait.
CREATE INDEX consultations_completed_idx ON consultation.consultations (department_id, completed_at) WHERE status = 'completed';

CREATE TABLE consultation.messages (
    id uuid PRIMARY KEY,
    consultation_id uuid NOT NULL REFERENCES consultation.consultations (id),
    sender_role text NOT NULL CHECK (sender_role IN ('resident', 'clinician')),
    sender_client text NOT NULL,
    body text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    -- References to documents kept elsewhere: [{"reference", "contentType", "title"}].
    attachments jsonb NOT NULL DEFAULT '[]',
    sent_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX messages_thread_idx ON consultation.messages (consultation_id, sent_at, id);

-- Every state change and message, written by triggers in the changing transaction, for the live
-- streams (SSE event ids are these ids) and as the consultation's history. Payloads carry ids
-- and states, never the complaint or a message's text.
CREATE TABLE consultation.events (
    id bigserial PRIMARY KEY,
    consultation_id uuid NOT NULL REFERENCES consultation.consultations (id),
    resident_id uuid NOT NULL,
    department_id uuid NOT NULL,
    -- The department a transfer came from, so its desk sees the request leave.
    from_department_id uuid,
    kind text NOT NULL CHECK (kind IN ('created', 'claimed', 'accepted', 'transferred', 'completed', 'cancelled', 'escalated', 'message')),
    status text NOT NULL,
    provider_id uuid,
    message_id uuid,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_consultation_idx ON consultation.events (consultation_id, id);
CREATE INDEX events_department_idx ON consultation.events (department_id, id);
CREATE INDEX events_from_department_idx ON consultation.events (from_department_id, id) WHERE from_department_id IS NOT NULL;
-- Exactly-once claims are checked from here: one 'claimed' event per claim.
CREATE INDEX events_claims_idx ON consultation.events (consultation_id) WHERE kind = 'claimed';

-- The notification contract, as chronic_care.outbox: a delivery worker reads undelivered rows in
-- id order and marks them. Payloads carry ids, never the complaint.
CREATE TABLE consultation.outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL CHECK (topic IN ('consultation.escalated')),
    department_id uuid NOT NULL REFERENCES scheduling.departments (id),
    facility text NOT NULL REFERENCES registry.facilities (code),
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX outbox_pending_idx ON consultation.outbox (id) WHERE delivered_at IS NULL;

-- One event per change, whichever statement made it, in the same transaction; pg_notify (sent at
-- commit, dropped on rollback) wakes the streams of every instance, not only the writer's.
CREATE FUNCTION consultation.record_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event_kind text;
    event_id bigint;
BEGIN
    IF TG_TABLE_NAME = 'messages' THEN
        INSERT INTO consultation.events (consultation_id, resident_id, department_id, kind, status, provider_id, message_id)
        SELECT c.id, c.resident_id, c.department_id, 'message', c.status, c.provider_id, NEW.id
          FROM consultation.consultations c WHERE c.id = NEW.consultation_id
        RETURNING id INTO event_id;
    ELSE
        IF TG_OP = 'INSERT' THEN
            event_kind := 'created';
        ELSIF NEW.department_id <> OLD.department_id THEN
            event_kind := 'transferred';
        ELSIF NEW.status <> OLD.status THEN
            event_kind := CASE NEW.status WHEN 'in-progress' THEN 'accepted' ELSE NEW.status END;
        ELSIF NEW.escalated AND NOT OLD.escalated THEN
            event_kind := 'escalated';
        ELSE
            RETURN NULL;
        END IF;
        INSERT INTO consultation.events (consultation_id, resident_id, department_id, from_department_id, kind, status, provider_id)
        VALUES (NEW.id, NEW.resident_id, NEW.department_id,
                CASE WHEN TG_OP = 'UPDATE' AND NEW.department_id <> OLD.department_id THEN OLD.department_id END,
                event_kind, NEW.status, coalesce(NEW.provider_id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.provider_id END))
        RETURNING id INTO event_id;
    END IF;
    PERFORM pg_notify('consultation_events', event_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER consultations_event AFTER INSERT OR UPDATE ON consultation.consultations
    FOR EACH ROW EXECUTE FUNCTION consultation.record_event();
CREATE TRIGGER messages_event AFTER INSERT ON consultation.messages
    FOR EACH ROW EXECUTE FUNCTION consultation.record_event();
