-- Appointments: departments, the clinicians and exam resources they book, schedules, the slots
-- generated from them, bookings, waiting lists, referrals, no-show suspensions and the outbox.
-- Departments and clinicians are shared with the online-consultation queue.

CREATE TABLE scheduling.departments (
    id uuid PRIMARY KEY,
    facility text NOT NULL REFERENCES registry.facilities (code),
    code text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (facility, code)
);

-- What a schedule books: a clinician (a doctor's clinic) or an exam resource (a CT, an MRI, an
-- ultrasound room). A clinician may be bound to the API client they sign in with, which is how the
-- consultation desk knows who is claiming.
CREATE TABLE scheduling.providers (
    id uuid PRIMARY KEY,
    facility text NOT NULL REFERENCES registry.facilities (code),
    department_id uuid NOT NULL REFERENCES scheduling.departments (id),
    kind text NOT NULL CHECK (kind IN ('clinician', 'resource')),
    code text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- A clinician's title (主任医师, 副主任医师, …); a resource's modality (CT, MR, US, …).
    title text CHECK (length(title) <= 40),
    modality text CHECK (modality IN ('CT', 'MR', 'US', 'XR', 'NM', 'ES', 'OT')),
    client_id text UNIQUE REFERENCES access.clients (id),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (facility, code),
    CHECK ((kind = 'resource') = (modality IS NOT NULL)),
    CHECK (kind = 'clinician' OR client_id IS NULL)
);
CREATE INDEX providers_department_idx ON scheduling.providers (department_id);
