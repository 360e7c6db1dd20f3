-- The SQL of bench/sql/adt-registration.pgbench as one server-side call (one round trip, one
-- implicit transaction): what PostgreSQL itself can do with one registration message when the
-- client costs nothing and no round trip is spent. bench/hl7-ingest creates it in the throw-away
-- database the ingest filled and runs bench/sql/adt-registration-call.pgbench against it.
CREATE SCHEMA IF NOT EXISTS bench;
CREATE OR REPLACE FUNCTION bench.adt_registration(seq int8, k1 int8, k2 int8, k3 int8, k4 int8, k5 int8, k6 int8)
RETURNS int LANGUAGE plpgsql AS $f$
DECLARE
    x int;
    u uuid;
BEGIN
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(18487, hashtext('5201020001' || chr(31) || 'PB' || seq::int8))) AS n
), hit AS (
    UPDATE interop.messages SET attempts = attempts + 1
    WHERE facility = '5201020001' AND control_id = 'PB-' || seq::int8 AND content_hash = sha256(('PB-' || seq::int8)::bytea)
    RETURNING commit_ack, ack
)
SELECT (SELECT count(*) FROM hit)::int + (EXISTS (SELECT 1 FROM interop.messages WHERE facility = '5201020001' AND control_id = 'PB-' || seq::int8))::int INTO x
FROM locked;
PERFORM * FROM (SELECT 'l', i.resident_id FROM unnest(ARRAY['5201020001'], ARRAY['PB' || seq::int8]) AS p(facility, local_id),
    LATERAL (SELECT resident_id FROM registry.identifiers i WHERE i.facility = p.facility AND i.local_id = p.local_id LIMIT 1) AS i
UNION ALL SELECT 'f', NULL FROM unnest(ARRAY['5201020001']) AS c,
    LATERAL (SELECT code FROM registry.facilities WHERE code = c AND active LIMIT 1) AS f
UNION ALL SELECT 'n', NULL FROM (SELECT count(pg_advisory_xact_lock(20825, b)) FROM (SELECT DISTINCT b FROM
    unnest(ARRAY[(k1::int8 % 65536)::int4, (k2::int8 % 65536)::int4, (k3::int8 % 65536)::int4, (k4::int8 % 65536)::int4, (k5::int8 % 65536)::int4,
                 (k6::int8 % 65536)::int4]) AS b ORDER BY b) AS s) AS locked) AS q;
PERFORM * FROM (SELECT r.*, m.keys FROM (
    SELECT mk.resident_id, array_agg(k) AS keys FROM unnest(ARRAY[k1::int8, k2::int8, k3::int8, k4::int8, k5::int8, k6::int8]::int8[]) AS k,
      LATERAL (SELECT resident_id FROM registry.match_keys WHERE key = k LIMIT 64) AS mk
    GROUP BY mk.resident_id
) AS m, LATERAL (SELECT * FROM registry.residents r WHERE r.id = m.resident_id AND r.status = 'active' LIMIT 1) AS r) AS q;
WITH v AS (SELECT gen_random_uuid() AS id), r AS (
    INSERT INTO registry.residents (id, name, name_pinyin, sex, birth_date, document_type, document_ciphertext, document_key_id,
        document_hash, document_masked, phone, division, address, registered_by, pseudonym)
    SELECT v.id, '钱伟', 'qian wei', 1, DATE '1970-01-01' + (seq::int8 % 20000)::int, 'resident-id',
        decode(md5(seq::text) || md5((seq::int8 + 1)::text) || md5((seq::int8 + 2)::text), 'hex'), 'k1', encode(sha256(('d' || seq::int8)::bytea), 'hex'),
        '5201**********1234', '139' || lpad((seq::int8 % 100000000)::text, 8, '0'), '520102', '贵州省贵阳市南明区中华北路', '5201020001',
        encode(sha256(('p' || seq::int8)::bytea), 'hex')
    FROM v
), k AS (
    INSERT INTO registry.match_keys (key, resident_id) SELECT k, v.id FROM v, unnest(ARRAY[k1::int8, k2::int8, k3::int8, k4::int8, k5::int8, k6::int8]::int8[]) AS k
), i AS (
    INSERT INTO registry.identifiers (facility, local_id, resident_id, source) SELECT '5201020001', 'PB' || seq::int8, v.id, 'hl7' FROM v
), e AS (
    INSERT INTO registry.resident_events (resident_id, kind, actor, detail) SELECT v.id, 'created', 'hl7:5201020001', '{"source": "hl7"}' FROM v
), a AS (
    INSERT INTO access.audit_log (occurred_at, actor, role, facility, action, resource, resident_pseudonym, purpose, outcome, request_id)
    SELECT date_trunc('microseconds', clock_timestamp()), 'hl7:5201020001', 'his', '5201020001', 'resident.create', 'resident/' || v.id,
        encode(sha256(('p' || seq::int8)::bytea), 'hex'), 'registration', 'success', gen_random_uuid()::text FROM v
)
SELECT 1 INTO x;
INSERT INTO interop.messages (id, received_at, peer_address, facility, sending_application, sending_facility, control_id,
    message_type, trigger_event, structure, version, charset, processing_id, content_hash, byte_count, raw_ciphertext,
    raw_key_id, status, ack_code, ack, warnings, resident_id, applied_at)
VALUES (gen_random_uuid(), now(), '127.0.0.1:40000', '5201020001', 'HIS', '5201020001', 'PB-' || seq::int8, 'ADT', 'A04', 'ADT_A01', '2.4',
    'UNICODE UTF-8', 'P', sha256(('PB-' || seq::int8)::bytea), 380,
    decode(repeat(md5(seq::text), 13), 'hex'), 'k1', 'applied', 'AA', decode(repeat(md5((seq::int8 + 3)::text), 6), 'hex'), '{}', NULL, now())
ON CONFLICT (facility, control_id, content_hash) WHERE facility IS NOT NULL AND control_id IS NOT NULL DO NOTHING
RETURNING id INTO u;
RETURN 1;
END
$f$;
