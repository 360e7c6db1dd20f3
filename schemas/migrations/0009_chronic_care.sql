-- Chronic-disease monitoring: programmes, enrolments, home-device readings, alerts and their
-- outbox. The programmes' rows mirror schemas/rules/programmes.json (synced at start).

-- The lead hospital of a clinic's medical consortium (医联体): where its urgent alerts escalate.
ALTER TABLE registry.facilities ADD COLUMN supervisor text REFERENCES registry.facilities (code)
    CHECK (supervisor IS NULL OR supervisor <> code);

CREATE TABLE chronic_care.programmes (
    code text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9-]{1,39}$'),
    name_zh text NOT NULL,
    name_en text NOT NULL,
    follow_up_days integer CHECK (follow_up_days > 0),
    active boolean NOT NULL DEFAULT true
);

-- ICD-10 category or subcategory prefixes that enrol a resident (I10 … I15, E11, I20 … I25).
CREATE TABLE chronic_care.programme_diagnoses (
    programme text NOT NULL REFERENCES chronic_care.programmes (code) ON DELETE CASCADE,
    prefix text NOT NULL,
    PRIMARY KEY (programme, prefix)
);

CREATE TABLE chronic_care.enrolments (
    id uuid PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    programme text NOT NULL REFERENCES chronic_care.programmes (code),
    -- The managing clinic: the community or township clinic that follows the resident up.
    facility text NOT NULL REFERENCES registry.facilities (code),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'discharged')),
    risk_level text CHECK (risk_level IN ('low', 'medium', 'high')),
    source text NOT NULL CHECK (source IN ('clinician', 'diagnosis')),
    -- The diagnosis that enrolled the resident, for an automatic enrolment.
    source_entry uuid,
    enrolled_by text NOT NULL,
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    follow_up_days integer CHECK (follow_up_days > 0),
    last_follow_up_at timestamptz,
    next_follow_up_due timestamptz,
    discharged_at timestamptz,
    discharge_reason text,
    version integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX enrolments_active_idx ON chronic_care.enrolments (resident_id, programme) WHERE status = 'active';
CREATE INDEX enrolments_facility_idx ON chronic_care.enrolments (facility, programme) WHERE status = 'active';
CREATE INDEX enrolments_due_idx ON chronic_care.enrolments (facility, next_follow_up_due) WHERE status = 'active';

CREATE TABLE chronic_care.follow_ups (
    id bigserial PRIMARY KEY,
    enrolment_id uuid NOT NULL REFERENCES chronic_care.enrolments (id),
    facility text NOT NULL REFERENCES registry.facilities (code),
    kind text NOT NULL CHECK (kind IN ('face-to-face', 'phone', 'online')),
    performed_at timestamptz NOT NULL,
    risk_level text CHECK (risk_level IN ('low', 'medium', 'high')),
    note text CHECK (length(note) <= 2000),
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX follow_ups_enrolment_idx ON chronic_care.follow_ups (enrolment_id, performed_at DESC);

CREATE TABLE chronic_care.readings (
    id uuid PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    device_id text NOT NULL CHECK (length(device_id) BETWEEN 1 AND 128),
    type text NOT NULL CHECK (type IN ('blood-pressure', 'heart-rate', 'glucose-fasting', 'glucose-random', 'temperature', 'weight', 'spo2')),
    measured_at timestamptz NOT NULL,
    -- The resident's clock when measured: it decides which day a reading belongs to.
    utc_offset_minutes smallint NOT NULL CHECK (utc_offset_minutes BETWEEN -840 AND 840),
    -- Values in the stored unit (mmHg, /min, mmol/L, Cel, kg, %); the unit sent is kept.
    systolic double precision,
    diastolic double precision,
    heart_rate double precision,
    value double precision,
    reported_unit text,
    source text NOT NULL CHECK (source IN ('api', 'record')),
    client_id text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- Readings the service evaluated as they arrived carry the time; the others (from the
    -- record) wait for the evaluator.
    evaluated_at timestamptz
);
-- A device re-syncing sends the same reading again: the same resident, time, type and device is
-- one reading. The index is also the resident's history in time order.
CREATE UNIQUE INDEX readings_key_idx ON chronic_care.readings (resident_id, measured_at, type, device_id);
CREATE INDEX readings_pending_idx ON chronic_care.readings (received_at) WHERE evaluated_at IS NULL;

CREATE TABLE chronic_care.alerts (
    id uuid PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    enrolment_id uuid REFERENCES chronic_care.enrolments (id),
    programme text NOT NULL REFERENCES chronic_care.programmes (code),
    rule_id text NOT NULL,
    rule_version integer NOT NULL,
    rule_set_version text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('low', 'moderate', 'high', 'urgent')),
    -- The managing clinic, which owns the alert.
    facility text NOT NULL REFERENCES registry.facilities (code),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'closed')),
    reading_ids uuid[] NOT NULL DEFAULT '{}',
    trigger_count integer NOT NULL DEFAULT 1,
    raised_at timestamptz NOT NULL DEFAULT now(),
    last_triggered_at timestamptz NOT NULL DEFAULT now(),
    escalated_to text REFERENCES registry.facilities (code),
    escalated_at timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    closed_at timestamptz,
    closed_by text,
    note text CHECK (length(note) <= 2000)
);
-- One alert per resident per rule until a clinician closes it; later firings join it.
CREATE UNIQUE INDEX alerts_open_idx ON chronic_care.alerts (resident_id, rule_id) WHERE status <> 'closed';
CREATE INDEX alerts_facility_idx ON chronic_care.alerts (facility, status, raised_at DESC);
CREATE INDEX alerts_escalated_idx ON chronic_care.alerts (escalated_to, status) WHERE escalated_to IS NOT NULL;
CREATE INDEX alerts_unacknowledged_idx ON chronic_care.alerts (raised_at) WHERE status = 'open' AND escalated_at IS NULL;
CREATE INDEX alerts_resident_idx ON chronic_care.alerts (resident_id, raised_at DESC);

-- The notification contract: a delivery worker reads undelivered rows in id order and marks them.
-- Payloads carry ids, rule and severity, never a name or identity number.
CREATE TABLE chronic_care.outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL CHECK (topic IN ('alert.raised', 'alert.escalated', 'enrolment.created')),
    facility text NOT NULL REFERENCES registry.facilities (code),
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX outbox_pending_idx ON chronic_care.outbox (id) WHERE delivered_at IS NULL;

-- Which clinic manages a resident newly found to qualify: the diagnosing facility if it is a
-- primary-care one, else the primary-care facility that registered the resident, else a
-- community or township clinic in the resident's division, else the diagnosing facility.
CREATE FUNCTION chronic_care.managing_facility(resident uuid, diagnosing text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT code FROM registry.facilities WHERE code = diagnosing AND level = 'primary' AND active),
        (SELECT f.code FROM registry.residents r JOIN registry.facilities f ON f.code = r.registered_by
          WHERE r.id = resident AND f.level = 'primary' AND f.active),
        (SELECT f.code FROM registry.residents r JOIN registry.facilities f ON f.division = r.division
          WHERE r.id = resident AND f.level = 'primary' AND f.primary_kind IN ('community', 'township') AND f.active
          ORDER BY f.code LIMIT 1),
        diagnosing)
$$;

-- A qualifying diagnosis enrols the resident whichever way it entered the record (API, HL7 ADT,
-- CDA): a trigger, because every one of those paths writes records.entries in its own
-- transaction, and the enrolment must commit with the diagnosis or not at all.
CREATE FUNCTION chronic_care.enrol_from_diagnosis() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH enrolled AS (
        INSERT INTO chronic_care.enrolments
            (id, resident_id, programme, facility, source, source_entry, enrolled_by, follow_up_days, next_follow_up_due)
        SELECT gen_random_uuid(), NEW.resident_id, p.code, chronic_care.managing_facility(NEW.resident_id, NEW.facility),
               'diagnosis', NEW.id, 'diagnosis:' || NEW.facility, p.follow_up_days,
               now() + make_interval(days => p.follow_up_days)
          FROM chronic_care.programmes p
         WHERE p.active AND EXISTS (
                SELECT 1 FROM chronic_care.programme_diagnoses d
                 WHERE d.programme = p.code
                   AND (upper(NEW.code) = d.prefix OR upper(NEW.code) LIKE d.prefix || '.%'
                        OR (strpos(d.prefix, '.') > 0 AND upper(NEW.code) LIKE d.prefix || '%')))
        ON CONFLICT (resident_id, programme) WHERE status = 'active' DO NOTHING
        RETURNING id, programme, facility
    )
    INSERT INTO chronic_care.outbox (topic, facility, payload)
    SELECT 'enrolment.created', facility, jsonb_build_object('enrolment', id, 'programme', programme, 'source', 'diagnosis')
      FROM enrolled;
    RETURN NULL;
END
$$;

CREATE TRIGGER entries_enrol AFTER INSERT ON records.entries
    FOR EACH ROW WHEN (NEW.kind = 'diagnosis' AND NEW.code IS NOT NULL AND NEW.current
                       AND coalesce(NEW.certainty, 'confirmed') = 'confirmed')
    EXECUTE FUNCTION chronic_care.enrol_from_diagnosis();

-- Vital signs and glucose that reach the record as results (HL7 ORU, CDA) become readings too,
-- by LOINC code; the two halves of a blood pressure (two OBX) meet in one row. They wait for the
-- evaluator (evaluated_at NULL) rather than holding the gateway's transaction.
CREATE FUNCTION chronic_care.reading_from_result() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    at timestamptz := coalesce(NEW.effective_at, NEW.recorded_at);
BEGIN
    kind := CASE NEW.code
        WHEN '8480-6' THEN 'blood-pressure' WHEN '8462-4' THEN 'blood-pressure'
        WHEN '8867-4' THEN 'heart-rate'
        WHEN '1558-6' THEN 'glucose-fasting' WHEN '2339-0' THEN 'glucose-random' WHEN '2345-7' THEN 'glucose-random'
        WHEN '8310-5' THEN 'temperature' WHEN '29463-7' THEN 'weight'
        WHEN '59408-5' THEN 'spo2' WHEN '2708-6' THEN 'spo2'
    END;
    -- Only residents under management: a ward's vital signs are the record's business, not ours.
    IF kind IS NULL OR NOT EXISTS (
        SELECT 1 FROM chronic_care.enrolments WHERE resident_id = NEW.resident_id AND status = 'active') THEN
        RETURN NULL;
    END IF;
    INSERT INTO chronic_care.readings
        (id, resident_id, device_id, type, measured_at, utc_offset_minutes, systolic, diastolic, heart_rate, value,
         reported_unit, source, client_id)
    VALUES (gen_random_uuid(), NEW.resident_id, 'record:' || NEW.facility, kind, at, 480,
            CASE WHEN NEW.code = '8480-6' THEN NEW.value_number END,
            CASE WHEN NEW.code = '8462-4' THEN NEW.value_number END,
            NULL,
            CASE WHEN kind NOT IN ('blood-pressure') THEN
                CASE WHEN kind LIKE 'glucose%' AND lower(coalesce(NEW.unit, '')) = 'mg/dl' THEN NEW.value_number / 18.016
                     ELSE NEW.value_number END END,
            NEW.unit, 'record', 'record:' || NEW.facility)
    ON CONFLICT (resident_id, measured_at, type, device_id) DO UPDATE
        SET systolic = coalesce(EXCLUDED.systolic, chronic_care.readings.systolic),
            diastolic = coalesce(EXCLUDED.diastolic, chronic_care.readings.diastolic),
            value = coalesce(EXCLUDED.value, chronic_care.readings.value),
            evaluated_at = NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER entries_reading AFTER INSERT ON records.entries
    FOR EACH ROW WHEN (NEW.kind = 'observation' AND NEW.current AND NEW.value_number IS NOT NULL
                       AND NEW.code IN ('8480-6', '8462-4', '8867-4', '1558-6', '2339-0', '2345-7', '8310-5', '29463-7', '59408-5', '2708-6'))
    EXECUTE FUNCTION chronic_care.reading_from_result();
