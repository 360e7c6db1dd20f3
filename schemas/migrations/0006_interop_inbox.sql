-- The HL7 v2 gateway's durable inbox: every message a sender framed, kept whatever became of it.

-- How MSH-3/MSH-4 name a registered facility, and how that sender writes text. A sender whose
-- MSH-4 is itself an active facility code needs no row here.
CREATE TABLE interop.senders (
    sending_facility    text NOT NULL CHECK (length(sending_facility) BETWEEN 1 AND 180),
    -- '' matches any MSH-3 from that MSH-4.
    sending_application text NOT NULL DEFAULT '' CHECK (length(sending_application) <= 180),
    facility            text NOT NULL REFERENCES registry.facilities (code),
    -- What the sender means when its bytes are not UTF-8 and MSH-18 is empty (many HIS send GBK).
    default_charset     text CHECK (default_charset IN ('UNICODE UTF-8', 'GB 18030-2000', 'ASCII', '8859/1')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sending_facility, sending_application)
);

CREATE TABLE interop.messages (
    id                  uuid PRIMARY KEY,
    received_at         timestamptz NOT NULL,
    peer_address        text,
    -- The registered facility the sender resolved to; NULL when it did not (answered AR).
    facility            text REFERENCES registry.facilities (code),
    sending_application text,
    sending_facility    text,
    control_id          text,
    message_type        text,
    trigger_event       text,
    structure           text,
    version             text,
    charset             text,
    processing_id       text,
    -- SHA-256 of the bytes as received: a resend of the same message has the same hash.
    content_hash        bytea NOT NULL,
    byte_count          integer NOT NULL,
    -- The message exactly as framed, AES-256-GCM sealed (it carries names and identity numbers).
    raw_ciphertext      bytea NOT NULL,
    raw_key_id          text NOT NULL,
    -- applied: its effects are committed with this row; rejected: refused before application
    -- (unparseable, unknown sender); failed: application found an error (kept for replay);
    -- unsupported: no handler for its type yet (kept for replay once one exists).
    status              text NOT NULL CHECK (status IN ('applied', 'rejected', 'failed', 'unsupported')),
    ack_code            text NOT NULL CHECK (ack_code IN ('AA', 'AE', 'AR', 'CA', 'CE', 'CR')),
    -- The acknowledgements exactly as sent, in the sender's encoding (no patient data: MSH, MSA,
    -- ERR with codes and positions): the commit ACK of enhanced mode, and the application ACK
    -- (absent when MSH-16 asked for none in this case).
    commit_ack          bytea,
    ack                 bytea,
    error_code          text,
    error_hl7_code      integer,
    error_location      text,
    error_text          text,
    warnings            text[] NOT NULL DEFAULT '{}',
    resident_id         uuid,
    attempts            integer NOT NULL DEFAULT 1,
    applied_at          timestamptz
);

-- A resend of a message (same sender, same MSH-10, same bytes) finds the original here and gets
-- its acknowledgement back; the same MSH-10 with other bytes is a different message.
CREATE UNIQUE INDEX messages_resend_idx ON interop.messages (facility, control_id, content_hash)
    WHERE facility IS NOT NULL AND control_id IS NOT NULL;
CREATE INDEX messages_received_idx ON interop.messages (received_at);
CREATE INDEX messages_facility_idx ON interop.messages (facility, received_at);
-- The dead-letter view: what was kept but not applied.
CREATE INDEX messages_dead_letter_idx ON interop.messages (received_at) WHERE status IN ('failed', 'unsupported', 'rejected');

CREATE VIEW interop.dead_letters AS
SELECT id, received_at, facility, sending_application, sending_facility, control_id, message_type, trigger_event, status,
       ack_code, error_code, error_hl7_code, error_location, error_text, attempts
FROM interop.messages
WHERE status IN ('failed', 'unsupported', 'rejected');

-- Facility ids linked by an HL7 ADT message say so.
ALTER TABLE registry.identifiers DROP CONSTRAINT identifiers_source_check;
ALTER TABLE registry.identifiers ADD CONSTRAINT identifiers_source_check
    CHECK (source IN ('registration', 'import', 'admin', 'link', 'hl7'));
