-- Notifiable-disease surveillance: the case definitions as the service loaded them from
-- schemas/case-definitions/, the cases found in the record, their history, population
-- denominators, early-warning signals, export approvals and the outbox for county CDCs.

-- One row per notifiable disease of the loaded definitions. The file is the source; these rows
-- are what the detection trigger reads, rewritten at every start (MonitoringConfiguration-style).
CREATE TABLE surveillance.diseases (
    code text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9-]{1,39}$'),
    version text NOT NULL,
    name_zh text NOT NULL,
    name_en text NOT NULL,
    class text NOT NULL CHECK (class IN ('A', 'B', 'C')),
    -- The legal limit from diagnosis to report: 2 hours for Class A (and B managed as A), else 24.
    report_within_hours integer NOT NULL CHECK (report_within_hours > 0),
    -- Reports of one resident within this many days of the case's last report are the same
    -- episode; NULL: a resident has the disease once (HIV).
    episode_days integer CHECK (episode_days > 0),
    -- What a confirmed (not suspected) diagnosis makes a case: clinically diagnosed where the
    -- definition wants a laboratory result to confirm, else confirmed.
    diagnosis_classification text NOT NULL CHECK (diagnosis_classification IN ('clinical', 'confirmed')),
    active boolean NOT NULL DEFAULT true
);

-- ICD-10 prefixes without the dot (B18.1 → B181), so a code is found by its 3–6 character heads.
CREATE TABLE surveillance.disease_codes (
    prefix text NOT NULL CHECK (prefix ~ '^[A-Z][0-9]{2}[0-9A-Z]{0,3}$'),
    disease text NOT NULL REFERENCES surveillance.diseases (code),
    PRIMARY KEY (prefix, disease)
);

-- Laboratory results (LOINC) whose positive value confirms a case.
CREATE TABLE surveillance.disease_labs (
    code text NOT NULL,
    disease text NOT NULL REFERENCES surveillance.diseases (code),
    PRIMARY KEY (code, disease)
);

-- The definitions file's version and content hash: a changed file must carry a new version.
CREATE TABLE surveillance.definition_versions (
    version text PRIMARY KEY,
    content_hash text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE surveillance.cases (
    id uuid PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    disease text NOT NULL REFERENCES surveillance.diseases (code),
    definition_version text NOT NULL,
    classification text NOT NULL CHECK (classification IN ('suspected', 'clinical', 'confirmed')),
    -- CDC review: reported until someone reviews it.
    review_status text NOT NULL DEFAULT 'reported' CHECK (review_status IN ('reported', 'confirmed', 'excluded')),
    onset_at timestamptz NOT NULL,
    diagnosed_at timestamptz NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    -- The latest report joined to this case: the episode window runs from it.
    last_event_at timestamptz NOT NULL,
    -- Local (Asia/Shanghai) dates, which is what counts are grouped and filtered by.
    onset_date date NOT NULL,
    report_date date NOT NULL,
    facility text NOT NULL REFERENCES registry.facilities (code),
    -- The resident's county (GB/T 2260) at the report; NULL when the registry has none.
    division text CHECK (division ~ '^[1-8][0-9]{5}$'),
    age_years smallint,
    -- GB/T 2261.1: 0 unknown, 1 male, 2 female, 9 unspecified.
    sex smallint NOT NULL,
    -- Diagnosis to report, against the disease's legal limit at the time.
    delay_minutes integer NOT NULL,
    limit_hours integer NOT NULL,
    source_entry uuid NOT NULL,
    upgraded_at timestamptz,
    reviewed_at timestamptz,
    reviewed_by text,
    review_note text CHECK (length(review_note) <= 2000)
);
CREATE INDEX cases_episode_idx ON surveillance.cases (resident_id, disease, last_event_at DESC) WHERE review_status <> 'excluded';
CREATE INDEX cases_onset_idx ON surveillance.cases (onset_date, disease);
CREATE INDEX cases_report_idx ON surveillance.cases (report_date, disease);

-- Every record item that made or joined a case, and what it did to it.
CREATE TABLE surveillance.case_events (
    id bigserial PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES surveillance.cases (id),
    entry_id uuid NOT NULL,
    source text NOT NULL CHECK (source IN ('diagnosis', 'result')),
    classification text NOT NULL,
    effect text NOT NULL CHECK (effect IN ('created', 'upgraded', 'repeat')),
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_events_case_idx ON surveillance.case_events (case_id, id);
CREATE INDEX case_events_entry_idx ON surveillance.case_events (entry_id);

CREATE FUNCTION surveillance.classification_rank(c text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE c WHEN 'suspected' THEN 1 WHEN 'clinical' THEN 2 WHEN 'confirmed' THEN 3 ELSE 0 END $$;

-- A result confirms when the sender flags it positive or abnormal-coded (HL7 0078: A, POS, DET,
-- R for reactive), or its text says so, in English or Chinese, without a negation.
CREATE FUNCTION surveillance.is_positive(flag text, value text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT upper(coalesce(flag, '')) IN ('A', 'AA', 'POS', 'DET', 'R')
        OR (lower(coalesce(value, '')) ~ '(positive|detected|reactive|阳性|^\s*\++\s*$|^\s*pos\s*$)'
            AND lower(coalesce(value, '')) !~ '(negative|not detected|non-?reactive|阴性|weakly)')
$$;

-- One report (a diagnosis or a positive result) for one disease: joins the resident's case of
-- the episode, upgrading its classification, or opens a new case. Serialised per resident, so
-- two senders reporting at once still make one case.
CREATE FUNCTION surveillance.report_case(entry records.entries, d surveillance.diseases, cls text, source text, backfill boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := coalesce(entry.effective_at, entry.recorded_at);
    onset timestamptz;
    found_case surveillance.cases;
    resident registry.residents;
    reported timestamptz := now();
BEGIN
    -- The resident's row lock, not an advisory lock: a bulk load or a go-live back-fill reports
    -- hundreds of thousands of residents in one transaction, more than the lock table holds.
    PERFORM 1 FROM registry.residents WHERE id = entry.resident_id FOR NO KEY UPDATE;
    -- A back-fill reads items some of which already reported this disease live.
    IF backfill AND EXISTS (SELECT 1 FROM surveillance.case_events ev JOIN surveillance.cases c ON c.id = ev.case_id
                            WHERE ev.entry_id = entry.id AND c.disease = d.code) THEN
        RETURN;
    END IF;
    SELECT * INTO found_case FROM surveillance.cases c
     WHERE c.resident_id = entry.resident_id AND c.disease = d.code AND c.review_status <> 'excluded'
       AND (d.episode_days IS NULL
            OR at BETWEEN c.onset_at - make_interval(days => d.episode_days) AND c.last_event_at + make_interval(days => d.episode_days))
     ORDER BY c.last_event_at DESC LIMIT 1
     FOR UPDATE;
    IF FOUND THEN
        UPDATE surveillance.cases c
           SET last_event_at = greatest(c.last_event_at, at),
               classification = CASE WHEN surveillance.classification_rank(cls) > surveillance.classification_rank(c.classification)
                                     THEN cls ELSE c.classification END,
               upgraded_at = CASE WHEN surveillance.classification_rank(cls) > surveillance.classification_rank(c.classification)
                                  THEN reported ELSE c.upgraded_at END,
               confirmed_at = CASE WHEN cls = 'confirmed' AND c.confirmed_at IS NULL THEN at ELSE c.confirmed_at END
         WHERE c.id = found_case.id;
        INSERT INTO surveillance.case_events (case_id, entry_id, source, classification, effect, occurred_at)
        VALUES (found_case.id, entry.id, source, cls,
                CASE WHEN surveillance.classification_rank(cls) > surveillance.classification_rank(found_case.classification)
                     THEN 'upgraded' ELSE 'repeat' END, at);
        RETURN;
    END IF;
    SELECT * INTO resident FROM registry.residents WHERE id = entry.resident_id;
    -- A sender may say when the illness began (CDA problem onset); else the diagnosis time stands in.
    onset := least(at, CASE WHEN entry.detail->>'onset' ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$'
                            THEN (entry.detail->>'onset')::timestamptz END);
    onset := coalesce(onset, at);
    WITH made AS (
        INSERT INTO surveillance.cases
            (id, resident_id, disease, definition_version, classification, onset_at, diagnosed_at, reported_at, confirmed_at,
             last_event_at, onset_date, report_date, facility, division, age_years, sex, delay_minutes, limit_hours, source_entry)
        VALUES (gen_random_uuid(), entry.resident_id, d.code, d.version, cls, onset, at, reported,
                CASE WHEN cls = 'confirmed' THEN at END, at,
                (onset AT TIME ZONE 'Asia/Shanghai')::date, (reported AT TIME ZONE 'Asia/Shanghai')::date,
                entry.facility, resident.division,
                CASE WHEN resident.birth_date IS NOT NULL
                     THEN extract(year FROM age((at AT TIME ZONE 'Asia/Shanghai')::date, resident.birth_date))::smallint END,
                resident.sex, greatest(0, floor(extract(epoch FROM reported - at) / 60))::integer, d.report_within_hours,
                entry.id)
        RETURNING id
    )
    INSERT INTO surveillance.case_events (case_id, entry_id, source, classification, effect, occurred_at)
    SELECT id, entry.id, source, cls, 'created', at FROM made;
END
$$;

-- Which diseases one record item reports, and as what.
CREATE FUNCTION surveillance.detect(entry records.entries, backfill boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d surveillance.diseases;
    normalised text;
    heads text[];
BEGIN
    IF entry.kind = 'diagnosis' THEN
        normalised := upper(regexp_replace(entry.code, '[\s.]', '', 'g'));
        -- The code's 3–6 character heads, computed once: the lookup is then an index probe, which
        -- matters because every diagnosis, notifiable or not, passes through here.
        heads := ARRAY[left(normalised, 3), left(normalised, 4), left(normalised, 5), left(normalised, 6)];
        IF NOT EXISTS (SELECT 1 FROM surveillance.disease_codes dc WHERE dc.prefix = ANY(heads)) THEN
            RETURN 1;
        END IF;
        FOR d IN SELECT s.* FROM surveillance.diseases s
                  WHERE s.active AND s.code IN (SELECT dc.disease FROM surveillance.disease_codes dc WHERE dc.prefix = ANY(heads))
        LOOP
            PERFORM surveillance.report_case(entry, d,
                CASE WHEN entry.certainty = 'suspected' THEN 'suspected' ELSE d.diagnosis_classification END, 'diagnosis', backfill);
        END LOOP;
    ELSIF surveillance.is_positive(entry.abnormal_flag, entry.value_text) THEN
        FOR d IN SELECT s.* FROM surveillance.diseases s JOIN surveillance.disease_labs l ON l.disease = s.code
                  WHERE s.active AND l.code = entry.code
        LOOP
            PERFORM surveillance.report_case(entry, d, 'confirmed', 'result', backfill);
        END LOOP;
    END IF;
    RETURN 1;
END
$$;

-- Cases come from the record whichever way an item entered it (API, HL7, CDA): a trigger, so a
-- case commits with the diagnosis or result that made it, or not at all.
CREATE FUNCTION surveillance.detect_case() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM surveillance.detect(NEW, false);
    RETURN NULL;
END
$$;

CREATE TRIGGER entries_case AFTER INSERT ON records.entries
    FOR EACH ROW WHEN (NEW.current AND NEW.code IS NOT NULL
                       AND ((NEW.kind = 'diagnosis' AND coalesce(NEW.certainty, 'confirmed') <> 'refuted')
                            OR (NEW.kind = 'observation' AND (NEW.value_text IS NOT NULL OR NEW.abnormal_flag IS NOT NULL))))
    EXECUTE FUNCTION surveillance.detect_case();

-- Go-live: an item already in the record when a code or result is first configured.
CREATE FUNCTION surveillance.backfill_entry(id uuid) RETURNS integer
LANGUAGE sql AS $$
    SELECT surveillance.detect(e, true) FROM records.entries e WHERE e.id = backfill_entry.id
$$;

-- Registered residents per county, the rates' denominator, refreshed by the signal job.
CREATE TABLE surveillance.population (
    division text PRIMARY KEY,
    residents integer NOT NULL,
    counted_at timestamptz NOT NULL DEFAULT now()
);

-- Early-warning signals: one open signal per disease, county and method; a later alarm on the
-- same series joins it.
CREATE TABLE surveillance.signals (
    id uuid PRIMARY KEY,
    disease text NOT NULL REFERENCES surveillance.diseases (code),
    division text NOT NULL,
    method text NOT NULL,
    status text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'investigating', 'confirmed', 'dismissed')),
    first_alarm_on date NOT NULL,
    last_alarm_on date NOT NULL,
    observed integer NOT NULL,
    upperbound double precision,
    raised_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz
);
CREATE UNIQUE INDEX signals_open_idx ON surveillance.signals (disease, division, method) WHERE status IN ('new', 'investigating');
CREATE INDEX signals_status_idx ON surveillance.signals (status, last_alarm_on DESC);

-- Each day a method alarmed on a series, once: a re-run of the same days adds nothing, and a day
-- already judged in a closed signal does not open another.
CREATE TABLE surveillance.signal_alarms (
    disease text NOT NULL,
    division text NOT NULL,
    method text NOT NULL,
    alarm_on date NOT NULL,
    signal_id uuid NOT NULL REFERENCES surveillance.signals (id),
    observed integer NOT NULL,
    upperbound double precision,
    PRIMARY KEY (disease, division, method, alarm_on)
);
CREATE INDEX signal_alarms_signal_idx ON surveillance.signal_alarms (signal_id, alarm_on);

CREATE TABLE surveillance.signal_notes (
    id bigserial PRIMARY KEY,
    signal_id uuid NOT NULL REFERENCES surveillance.signals (id),
    from_status text,
    to_status text NOT NULL,
    note text CHECK (length(note) <= 2000),
    author text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signal_notes_signal_idx ON surveillance.signal_notes (signal_id, id);

-- The runs of the signal job: which day it evaluated, so a restarted service does not run twice.
CREATE TABLE surveillance.signal_runs (
    id bigserial PRIMARY KEY,
    evaluated_on date NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    series integer NOT NULL,
    alarms integer NOT NULL,
    signals_raised integer NOT NULL,
    trigger text NOT NULL CHECK (trigger IN ('schedule', 'request'))
);

-- The notification contract for county CDCs (see chronic_care.outbox): ids, disease, county.
CREATE TABLE surveillance.outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL CHECK (topic IN ('signal.raised')),
    division text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX surveillance_outbox_pending_idx ON surveillance.outbox (id) WHERE delivered_at IS NULL;

-- Gray ("shared on approval") fields an analyst client may export, until the approval lapses.
CREATE TABLE surveillance.export_approvals (
    id uuid PRIMARY KEY,
    client_id text NOT NULL REFERENCES access.clients (id),
    fields text[] NOT NULL,
    purpose text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 500),
    approved_by text NOT NULL,
    approved_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX export_approvals_client_idx ON surveillance.export_approvals (client_id, expires_at);

-- Analysts review cases and signals: a scope new with this module.
UPDATE access.clients SET scopes = scopes || ARRAY['surveillance.review']
WHERE role = 'analyst' AND NOT scopes @> ARRAY['surveillance.review'] AND scopes @> ARRAY['facilities.read', 'surveillance.read'];
