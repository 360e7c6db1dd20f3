-- The shared medical record. Every item keeps its source (facility, and the HL7 message or the
-- clinical document it came from) and its history: a correction or a new document version adds
-- a row and retires the old one (`current = false`); nothing is updated in place or erased.

-- Clinical documents (CDA R2) as hospitals send them: the original bytes sealed, the header read
-- out, the schema's findings kept. A document set's versions share `set_key`; exactly one is current.
CREATE TABLE records.documents (
    id uuid PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    facility text NOT NULL REFERENCES registry.facilities (code),
    -- ClinicalDocument/id as root^extension: an instance identifier is globally unique.
    document_key text NOT NULL UNIQUE,
    set_key text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    type_code text NOT NULL,
    type_system text,
    type_display text,
    title text,
    effective_at timestamptz NOT NULL,
    author text,
    custodian text,
    content_hash bytea NOT NULL,
    byte_count integer NOT NULL,
    raw_ciphertext bytea NOT NULL,
    raw_key_id text NOT NULL,
    schema_valid boolean NOT NULL,
    findings jsonb NOT NULL DEFAULT '[]',
    current boolean NOT NULL DEFAULT true,
    superseded_by uuid REFERENCES records.documents (id),
    received_at timestamptz NOT NULL DEFAULT now(),
    received_by text NOT NULL
);
CREATE UNIQUE INDEX documents_current_idx ON records.documents (set_key) WHERE current;
-- The timeline's order (see RecordReader): a page is an index range, however deep the cursor.
CREATE INDEX documents_timeline_idx ON records.documents (resident_id, effective_at DESC, id DESC) WHERE current;

-- Visits: from ADT (A01/A03/A04), from a document's encompassing encounter, or online consultations.
CREATE TABLE records.encounters (
    id uuid PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    facility text NOT NULL REFERENCES registry.facilities (code),
    -- The facility's own visit number, when it sends one.
    encounter_key text,
    class text NOT NULL CHECK (class IN ('outpatient', 'emergency', 'inpatient', 'online', 'other')),
    status text NOT NULL CHECK (status IN ('planned', 'in-progress', 'finished', 'cancelled')),
    started_at timestamptz,
    ended_at timestamptz,
    department text,
    source_kind text NOT NULL CHECK (source_kind IN ('hl7', 'cda', 'api')),
    source_id uuid,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX encounters_key_idx ON records.encounters (facility, encounter_key) WHERE encounter_key IS NOT NULL;
CREATE INDEX encounters_timeline_idx ON records.encounters (resident_id, (coalesce(started_at, recorded_at)) DESC, id DESC);
-- The treatment relationship: has this facility seen this resident lately?
CREATE INDEX encounters_relationship_idx ON records.encounters (resident_id, facility, started_at DESC);

-- Diagnoses, observations and results, medications, allergies, procedures.
CREATE TABLE records.entries (
    id uuid PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    facility text NOT NULL REFERENCES registry.facilities (code),
    kind text NOT NULL CHECK (kind IN ('diagnosis', 'observation', 'medication', 'allergy', 'procedure')),
    -- The facility's own id of the item (an OBX's order and observation id), so a correction
    -- finds what it corrects.
    item_key text,
    encounter_id uuid REFERENCES records.encounters (id),
    document_id uuid REFERENCES records.documents (id),
    message_id uuid,
    code text,
    code_system text,
    display text,
    value_text text,
    value_number numeric,
    unit text,
    reference_range text,
    abnormal_flag text,
    status text,
    certainty text CHECK (certainty IN ('confirmed', 'suspected', 'refuted')),
    is_primary boolean,
    effective_at timestamptz,
    detail jsonb NOT NULL DEFAULT '{}',
    current boolean NOT NULL DEFAULT true,
    supersedes uuid REFERENCES records.entries (id),
    superseded_by uuid REFERENCES records.entries (id),
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_timeline_idx ON records.entries (resident_id, (coalesce(effective_at, recorded_at)) DESC, id DESC) WHERE current;
CREATE UNIQUE INDEX entries_item_idx ON records.entries (facility, kind, item_key) WHERE current AND item_key IS NOT NULL;
CREATE INDEX entries_document_idx ON records.entries (document_id) WHERE document_id IS NOT NULL;

-- A resident's consent that a facility may read their whole record.
CREATE TABLE records.consents (
    id bigserial PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    facility text NOT NULL REFERENCES registry.facilities (code),
    granted_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    granted_by text NOT NULL
);
CREATE INDEX consents_resident_idx ON records.consents (resident_id, facility);

-- Senders whose documents must pass the CDA schema (others' failing documents are kept, flagged).
CREATE TABLE records.document_policies (
    facility text PRIMARY KEY REFERENCES registry.facilities (code),
    strict_schema boolean NOT NULL DEFAULT false
);
