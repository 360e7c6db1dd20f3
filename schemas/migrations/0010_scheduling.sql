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

-- A recurring session of a provider: which weekdays, which hours, how many places per slot, when
-- its slots are released to the public and how many places are held back for referrals.
CREATE TABLE scheduling.schedules (
    id uuid PRIMARY KEY,
    provider_id uuid NOT NULL REFERENCES scheduling.providers (id),
    -- ISO weekdays the session runs on (1 = Monday).
    weekdays smallint[] NOT NULL CHECK (cardinality(weekdays) BETWEEN 1 AND 7 AND weekdays <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]),
    session text NOT NULL CHECK (session IN ('morning', 'afternoon', 'evening', 'night')),
    starts time NOT NULL,
    ends time NOT NULL CHECK (ends > starts),
    -- Minutes per time slot; NULL books the session as one slot with `capacity` places.
    slot_minutes integer CHECK (slot_minutes BETWEEN 5 AND 240),
    capacity integer NOT NULL CHECK (capacity BETWEEN 1 AND 1000),
    -- Places per slot held for referrals from lower-level facilities until `referral_release_hours`
    -- before the slot starts, when unused ones go to the public.
    referral_capacity integer NOT NULL DEFAULT 0 CHECK (referral_capacity BETWEEN 0 AND capacity),
    referral_release_hours integer NOT NULL DEFAULT 24 CHECK (referral_release_hours BETWEEN 0 AND 720),
    fee_class text NOT NULL CHECK (fee_class IN ('general', 'specialist', 'expert', 'special-needs', 'exam')),
    fee_cents integer CHECK (fee_cents BETWEEN 0 AND 10000000),
    -- Slots open to the public `release_days_ahead` days before, at `release_time` local time.
    release_days_ahead integer NOT NULL DEFAULT 7 CHECK (release_days_ahead BETWEEN 0 AND 90),
    release_time time NOT NULL DEFAULT '08:00',
    -- A resident may cancel until this many hours before the slot starts.
    cancel_deadline_hours integer NOT NULL DEFAULT 24 CHECK (cancel_deadline_hours BETWEEN 0 AND 168),
    time_zone text NOT NULL DEFAULT 'Asia/Shanghai',
    valid_from date NOT NULL,
    valid_until date CHECK (valid_until IS NULL OR valid_until >= valid_from),
    active boolean NOT NULL DEFAULT true,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (slot_minutes IS NULL OR slot_minutes <= extract(epoch FROM ends - starts) / 60)
);
CREATE INDEX schedules_provider_idx ON scheduling.schedules (provider_id);

-- One bookable slot. The counters are the only shared state of a booking: a booking moves one of
-- them in a single conditional UPDATE, so the row lock decides who gets the last place.
CREATE TABLE scheduling.slots (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule_id uuid NOT NULL REFERENCES scheduling.schedules (id),
    provider_id uuid NOT NULL REFERENCES scheduling.providers (id),
    department_id uuid NOT NULL REFERENCES scheduling.departments (id),
    facility text NOT NULL REFERENCES registry.facilities (code),
    day date NOT NULL,
    session text NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    capacity integer NOT NULL,
    referral_capacity integer NOT NULL,
    public_booked integer NOT NULL DEFAULT 0,
    referral_booked integer NOT NULL DEFAULT 0,
    fee_class text NOT NULL,
    fee_cents integer,
    release_at timestamptz NOT NULL,
    referral_release_at timestamptz NOT NULL,
    cancel_deadline_hours integer NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'cancelled')),
    UNIQUE (schedule_id, starts_at),
    CHECK (public_booked >= 0 AND referral_booked >= 0 AND public_booked + referral_booked <= capacity)
);
CREATE INDEX slots_search_idx ON scheduling.slots (facility, day, department_id);
CREATE INDEX slots_provider_idx ON scheduling.slots (provider_id, day);

-- Referrals up the tiers of care: a township or community clinic (or a secondary hospital) sends a
-- resident to a specialist department of a higher-level hospital.
CREATE TABLE scheduling.referrals (
    id uuid PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    from_facility text NOT NULL REFERENCES registry.facilities (code),
    from_clinician text NOT NULL CHECK (length(from_clinician) BETWEEN 1 AND 100),
    to_facility text NOT NULL REFERENCES registry.facilities (code),
    to_department_id uuid REFERENCES scheduling.departments (id),
    reason text CHECK (length(reason) <= 2000),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'booked', 'cancelled')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    booking_id uuid
);
CREATE INDEX referrals_resident_idx ON scheduling.referrals (resident_id, created_at DESC);
CREATE INDEX referrals_to_idx ON scheduling.referrals (to_facility, created_at DESC);
CREATE INDEX referrals_from_idx ON scheduling.referrals (from_facility, created_at DESC);

CREATE TABLE scheduling.bookings (
    id uuid PRIMARY KEY,
    slot_id uuid NOT NULL REFERENCES scheduling.slots (id),
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    provider_id uuid NOT NULL REFERENCES scheduling.providers (id),
    facility text NOT NULL REFERENCES registry.facilities (code),
    day date NOT NULL,
    starts_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'checked-in', 'completed', 'cancelled', 'no-show')),
    -- Which of the slot's counters the place was taken from.
    pool text NOT NULL CHECK (pool IN ('public', 'referral')),
    referral_id uuid REFERENCES scheduling.referrals (id),
    channel text NOT NULL CHECK (channel IN ('app', 'his', 'waitlist')),
    booked_by text NOT NULL,
    booked_at timestamptz NOT NULL DEFAULT now(),
    rescheduled_from uuid REFERENCES scheduling.bookings (id),
    queue_number integer,
    checked_in_at timestamptz,
    cancelled_at timestamptz,
    cancelled_by text,
    cancel_reason text CHECK (length(cancel_reason) <= 500),
    no_show_at timestamptz,
    reminded_at timestamptz,
    CHECK ((pool = 'referral') = (referral_id IS NOT NULL))
);
-- The platforms' first rule, kept by the database itself: one booking per resident per provider per day.
CREATE UNIQUE INDEX bookings_one_per_day_idx ON scheduling.bookings (resident_id, provider_id, day)
    WHERE status IN ('booked', 'checked-in', 'completed');
CREATE INDEX bookings_resident_idx ON scheduling.bookings (resident_id, starts_at DESC);
CREATE INDEX bookings_slot_idx ON scheduling.bookings (slot_id, booked_at);
CREATE INDEX bookings_facility_day_idx ON scheduling.bookings (facility, day);
CREATE INDEX bookings_no_show_idx ON scheduling.bookings (resident_id, no_show_at) WHERE status = 'no-show';
CREATE INDEX bookings_reminder_idx ON scheduling.bookings (day) WHERE status = 'booked' AND reminded_at IS NULL;

-- Queue numbers are per provider, day and session, whatever the slot size.
CREATE TABLE scheduling.session_queues (
    provider_id uuid NOT NULL REFERENCES scheduling.providers (id),
    day date NOT NULL,
    session text NOT NULL,
    last_number integer NOT NULL,
    PRIMARY KEY (provider_id, day, session)
);

CREATE TABLE scheduling.waitlist (
    id uuid PRIMARY KEY,
    slot_id uuid NOT NULL REFERENCES scheduling.slots (id),
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    joined_by text NOT NULL,
    joined_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'booked', 'skipped', 'cancelled')),
    -- Why a waiting resident was passed over when a place was freed (a rule refused them).
    skipped_reason text,
    booking_id uuid REFERENCES scheduling.bookings (id),
    resolved_at timestamptz
);
CREATE UNIQUE INDEX waitlist_once_idx ON scheduling.waitlist (slot_id, resident_id) WHERE status = 'waiting';
CREATE INDEX waitlist_queue_idx ON scheduling.waitlist (slot_id, joined_at, id) WHERE status = 'waiting';
CREATE INDEX waitlist_resident_idx ON scheduling.waitlist (resident_id, joined_at DESC);

-- Online booking suspended after repeated no-shows.
CREATE TABLE scheduling.suspensions (
    id bigserial PRIMARY KEY,
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    starts_at timestamptz NOT NULL DEFAULT now(),
    ends_at timestamptz NOT NULL,
    reason text NOT NULL
);
CREATE INDEX suspensions_resident_idx ON scheduling.suspensions (resident_id, ends_at DESC);

-- Notifications for the resident's app (or SMS gateway): the delivery worker drains this table,
-- and whatever delivers them reads only these rows. Payloads carry ids and times, never names.
CREATE TABLE scheduling.outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL CHECK (topic IN ('booking.confirmed', 'booking.cancelled', 'booking.reminder', 'waitlist.booked', 'slot.cancelled')),
    resident_id uuid NOT NULL REFERENCES registry.residents (id),
    booking_id uuid REFERENCES scheduling.bookings (id),
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    delivered_at timestamptz
);
CREATE INDEX scheduling_outbox_pending_idx ON scheduling.outbox (id) WHERE delivered_at IS NULL;

-- The slots of one schedule from `first` to `last` (local dates), idempotently: a slot that exists
-- already is left as it is, booked places and all. Returns how many were created.
CREATE FUNCTION scheduling.generate_slots(schedule uuid, first date, last date) RETURNS integer
LANGUAGE sql AS $$
    WITH s AS (
        SELECT sc.*, p.facility, p.department_id
        FROM scheduling.schedules sc JOIN scheduling.providers p ON p.id = sc.provider_id
        WHERE sc.id = schedule AND sc.active AND p.active
    ), days AS (
        SELECT d::date AS day
        FROM s, generate_series(greatest(first, s.valid_from), least(last, coalesce(s.valid_until, last)), interval '1 day') AS d
        WHERE extract(isodow FROM d)::smallint = ANY (s.weekdays)
    ), times AS (
        SELECT days.day, s.starts + make_interval(mins => n * coalesce(s.slot_minutes, 0)) AS start_time,
               CASE WHEN s.slot_minutes IS NULL THEN s.ends
                    ELSE s.starts + make_interval(mins => (n + 1) * s.slot_minutes) END AS end_time
        FROM s, days,
             generate_series(0, CASE WHEN s.slot_minutes IS NULL THEN 0
                                     ELSE (extract(epoch FROM s.ends - s.starts)::integer / 60 / s.slot_minutes) - 1 END) AS n
    ), inserted AS (
        INSERT INTO scheduling.slots (
            schedule_id, provider_id, department_id, facility, day, session, starts_at, ends_at, capacity, referral_capacity,
            fee_class, fee_cents, release_at, referral_release_at, cancel_deadline_hours)
        SELECT s.id, s.provider_id, s.department_id, s.facility, t.day, s.session,
               (t.day + t.start_time) AT TIME ZONE s.time_zone, (t.day + t.end_time) AT TIME ZONE s.time_zone,
               s.capacity, s.referral_capacity, s.fee_class, s.fee_cents,
               ((t.day - s.release_days_ahead) + s.release_time) AT TIME ZONE s.time_zone,
               ((t.day + t.start_time) AT TIME ZONE s.time_zone) - make_interval(hours => s.referral_release_hours),
               s.cancel_deadline_hours
        FROM s, times AS t
        ON CONFLICT (schedule_id, starts_at) DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer FROM inserted
$$;

-- Roles gained scopes with chronic-disease monitoring (0009 did not grant them to clients already
-- registered) and with appointments (a HIS reads its bookings, a clinician refers, an admin keeps
-- schedules). Clients registered with their role's whole default set before then get the new
-- ones too; a client deliberately registered with fewer keeps exactly what it was given.
UPDATE access.clients SET scopes = scopes || ARRAY['monitoring.read', 'monitoring.write']
WHERE role IN ('his', 'clinician') AND NOT scopes && ARRAY['monitoring.read', 'monitoring.write']
  AND scopes @> CASE role WHEN 'his' THEN ARRAY['facilities.read', 'registry.read', 'registry.write', 'records.read', 'records.write', 'scheduling.write']
                          ELSE ARRAY['facilities.read', 'registry.read', 'records.read', 'records.write', 'scheduling.read', 'consultation.write'] END;
UPDATE access.clients SET scopes = scopes || ARRAY['scheduling.read']
WHERE role = 'his' AND NOT scopes @> ARRAY['scheduling.read']
  AND scopes @> ARRAY['facilities.read', 'registry.read', 'registry.write', 'records.read', 'records.write', 'scheduling.write'];
UPDATE access.clients SET scopes = scopes || ARRAY['scheduling.write']
WHERE role = 'clinician' AND NOT scopes @> ARRAY['scheduling.write']
  AND scopes @> ARRAY['facilities.read', 'registry.read', 'records.read', 'records.write', 'scheduling.read', 'consultation.write'];
UPDATE access.clients SET scopes = scopes || ARRAY['scheduling.write']
WHERE role = 'admin' AND NOT scopes @> ARRAY['scheduling.write']
  AND scopes @> ARRAY['facilities.read', 'facilities.write', 'registry.read', 'registry.admin', 'audit.read', 'clients.admin'];
