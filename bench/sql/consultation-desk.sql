-- The consultation desk of bench/consultation-queue, written straight into the tables. Run as the
-- owner of the service's tables after migrations and the demo fixtures:
--   psql -v departments=10 -v clinicians=100 -v residents=2000 -f bench/sql/consultation-desk.sql "$QIANYUN_DATABASE_URL"
--
-- At 贵州省人民医院 (5201020001): `departments` departments (BENCH-D01 …), `clinicians`
-- clinicians spread over them round-robin, each bound to an API client of role clinician
-- (ids bench-clinician-001 …; no usable secret: the benchmark signs its own tokens with the
-- service's JWT secret), each on duty in their department from an hour ago for 23 hours; and
-- `residents` residents (ids md5('qianyun-consultation-bench/<n>')::uuid, no identity document)
-- who ask for the consultations.
\set ON_ERROR_STOP on

BEGIN;

INSERT INTO scheduling.departments (id, facility, code, name)
SELECT md5('qianyun-consultation-bench/department/' || d)::uuid, '5201020001', 'BENCH-D' || lpad(d::text, 2, '0'), '基准科室 ' || d
FROM generate_series(1, :departments) AS d;

INSERT INTO access.clients (id, name, role, facility_code, scopes, secret_hash)
SELECT 'bench-clinician-' || lpad(c::text, 3, '0'), 'consultation benchmark clinician ' || c, 'clinician', '5201020001',
       ARRAY['consultation.write', 'facilities.read', 'monitoring.read', 'monitoring.write', 'records.read', 'records.write',
             'registry.read', 'scheduling.read'],
       'bench$no$secret'
FROM generate_series(1, :clinicians) AS c;

INSERT INTO scheduling.providers (id, facility, department_id, kind, code, name, client_id)
SELECT md5('qianyun-consultation-bench/clinician/' || c)::uuid, '5201020001',
       md5('qianyun-consultation-bench/department/' || (1 + (c - 1) % :departments))::uuid, 'clinician',
       'BENCH-C' || lpad(c::text, 3, '0'), '医生 ' || c, 'bench-clinician-' || lpad(c::text, 3, '0')
FROM generate_series(1, :clinicians) AS c;

INSERT INTO consultation.duty_shifts (id, provider_id, department_id, starts_at, ends_at, created_by)
SELECT md5('qianyun-consultation-bench/shift/' || p.code)::uuid, p.id, p.department_id, now() - interval '1 hour',
       now() + interval '22 hours', 'bench-seed'
FROM scheduling.providers p WHERE p.code LIKE 'BENCH-C%';

INSERT INTO registry.residents (id, name, name_pinyin, sex, birth_date, division, registered_by, pseudonym)
SELECT md5('qianyun-consultation-bench/' || n)::uuid, '居民' || n, 'jumin' || n, 1 + (n % 2),
       date '1950-01-01' + (n * 37) % 20000, '520102', '5201020001', 'bench-' || md5('consultation-pseudonym/' || n)
FROM generate_series(1, :residents) AS n;

COMMIT;
