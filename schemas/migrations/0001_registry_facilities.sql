-- The registry schema starts with the facilities every later table refers to.
CREATE SCHEMA registry;

CREATE TABLE registry.facilities (
    code         text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_-]{1,31}$'),
    name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    -- Chinese hospital grading: tertiary (三级), secondary (二级), primary (一级/基层).
    level        text NOT NULL CHECK (level IN ('tertiary', 'secondary', 'primary')),
    -- For primary-level facilities: township health centre, community health centre, village clinic.
    primary_kind text CHECK (primary_kind IN ('township', 'community', 'village')),
    -- GB/T 2260 six-digit administrative division, e.g. 520102 (Nanming district, Guiyang).
    division     text NOT NULL CHECK (division ~ '^[1-8][0-9]{5}$'),
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (primary_kind IS NULL OR level = 'primary')
);

CREATE INDEX facilities_division_idx ON registry.facilities (division text_pattern_ops);
