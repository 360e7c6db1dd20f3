-- Residents, their facility identifiers, health cards and the master patient index.

CREATE TABLE registry.residents (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- The most common reading run together (张三 → zhangsan), for search by pinyin.
    name_pinyin          text NOT NULL,
    -- GB/T 2261.1: 0 unknown, 1 male, 2 female, 9 unspecified.
    sex                  smallint NOT NULL CHECK (sex IN (0, 1, 2, 9)),
    birth_date           date,
    -- GB 3304 two-digit ethnicity code (01 Han … 56 Jino, 97 other, 98 naturalised foreigner).
    ethnicity            text CHECK (ethnicity ~ '^[0-9]{2}$'),
    document_type        text CHECK (document_type IN ('resident-id', 'passport', 'hk-macao-permit', 'taiwan-permit',
                                                       'foreign-permanent-residence', 'birth-certificate')),
    -- AES-256-GCM of the normalised number, its key id, a keyed hash to find it, and the masked form.
    document_ciphertext  bytea,
    document_key_id      text,
    document_hash        text,
    document_masked      text,
    phone                text CHECK (phone ~ '^[0-9+-]{3,20}$'),
    division             text CHECK (division ~ '^[1-8][0-9]{5}$'),
    address              text CHECK (length(address) <= 300),
    guardian_id          uuid REFERENCES registry.residents (id),
    guardian_name        text,
    guardian_relation    text,
    guardian_phone       text,
    deceased             boolean NOT NULL DEFAULT false,
    deceased_date        date,
    -- The facility that first registered the resident (null for admin and bulk-admin entries).
    registered_by        text REFERENCES registry.facilities (code),
    status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'merged')),
    merged_into          uuid REFERENCES registry.residents (id),
    -- HMAC of the id for audit rows, so a card verification writes its audit row in the same statement.
    pseudonym            text NOT NULL,
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((document_type IS NULL) = (document_hash IS NULL)),
    CHECK ((status = 'merged') = (merged_into IS NOT NULL))
);

-- One identity number, one resident (a merged record keeps its number for the unmerge).
CREATE UNIQUE INDEX residents_document_idx ON registry.residents (document_hash) WHERE status = 'active';
CREATE INDEX residents_pinyin_idx ON registry.residents (name_pinyin, birth_date);
CREATE INDEX residents_phone_idx ON registry.residents (phone) WHERE phone IS NOT NULL;
CREATE INDEX residents_merged_into_idx ON registry.residents (merged_into) WHERE merged_into IS NOT NULL;

-- Each facility's own patient id, linked to one resident (the PIX cross-reference).
CREATE TABLE registry.identifiers (
    facility     text NOT NULL REFERENCES registry.facilities (code),
    local_id     text NOT NULL CHECK (length(local_id) BETWEEN 1 AND 64),
    resident_id  uuid NOT NULL REFERENCES registry.residents (id),
    source       text NOT NULL CHECK (source IN ('registration', 'import', 'admin', 'link')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (facility, local_id)
);

CREATE INDEX identifiers_resident_idx ON registry.identifiers (resident_id);

-- Blocking keys: the first 8 bytes of an HMAC of each key (`Matcher.blockingKeys`), so neither an
-- identity number nor a name can be read back from the index.
CREATE TABLE registry.match_keys (
    key          bigint NOT NULL,
    resident_id  uuid NOT NULL REFERENCES registry.residents (id),
    PRIMARY KEY (key, resident_id)
);

CREATE INDEX match_keys_resident_idx ON registry.match_keys (resident_id);

CREATE TABLE registry.health_cards (
    card_number       text PRIMARY KEY CHECK (card_number ~ '^[A-Z0-9]{6,32}$'),
    resident_id       uuid NOT NULL REFERENCES registry.residents (id),
    issuing_facility  text REFERENCES registry.facilities (code),
    issued_on         date NOT NULL,
    status            text NOT NULL CHECK (status IN ('issued', 'active', 'suspended', 'replaced', 'revoked')),
    -- The card this one replaced; the chain is the card history.
    replaces          text REFERENCES registry.health_cards (card_number),
    status_reason     text,
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX health_cards_one_active ON registry.health_cards (resident_id) WHERE status = 'active';
CREATE INDEX health_cards_resident_idx ON registry.health_cards (resident_id);

-- Pairs the matcher could not decide; an admin resolves them.
CREATE TABLE registry.match_reviews (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The resident created for the registration, and the existing resident it may be.
    resident_id   uuid NOT NULL REFERENCES registry.residents (id),
    candidate_id  uuid NOT NULL REFERENCES registry.residents (id),
    score         double precision NOT NULL,
    evidence      text[] NOT NULL,
    facility      text,
    -- An identity number the registration gave that the candidate already holds: kept here,
    -- encrypted, rather than on a second resident.
    held_document_type        text,
    held_document_ciphertext  bytea,
    held_document_key_id      text,
    held_document_masked      text,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'same', 'different')),
    resolved_by   text,
    resolved_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (resident_id, candidate_id)
);

CREATE INDEX match_reviews_open_idx ON registry.match_reviews (id) WHERE status = 'open';

-- Merges, with what moved, so an unmerge can put it back.
CREATE TABLE registry.merges (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    survivor_id    uuid NOT NULL REFERENCES registry.residents (id),
    merged_id      uuid NOT NULL REFERENCES registry.residents (id),
    identifiers    text[] NOT NULL,
    cards          jsonb NOT NULL,
    merged_by      text NOT NULL,
    merged_at      timestamptz NOT NULL DEFAULT now(),
    undone_by      text,
    undone_at      timestamptz
);

CREATE UNIQUE INDEX merges_live_idx ON registry.merges (merged_id) WHERE undone_at IS NULL;

-- Every change to a resident, in order: created, updated, linked, merged, unmerged, card events.
-- `changes` names the fields touched, never their values.
CREATE TABLE registry.resident_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id  uuid NOT NULL REFERENCES registry.residents (id),
    kind         text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}',
    actor        text NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX resident_events_resident_idx ON registry.resident_events (resident_id, id);
