-- One chunk of bench/surveillance's diagnoses, rows n = first … last of the whole record, in one
-- transaction, through the real detection trigger (records.entries → surveillance.detect):
--   psql -v first=1 -v last=100000 -v residents=2000000 -v permille=70 -v loaders=2 -v loader=0 \
--        -v outbreaks=0 -v finish=COMMIT -f bench/sql/surveillance-chunk.sql "$QIANYUN_DATABASE_URL"
-- after bench/sql/surveillance-setup.sql. With outbreaks=1 it writes the injected clusters
-- (survbench.outbreak) instead of rows first … last. Only the rows whose resident number is
-- `loader` modulo `loaders` are written, so loaders running at once never share a resident (nor
-- the detection trigger's per-resident-and-disease lock, on which they could deadlock).
-- finish=ROLLBACK measures a chunk and keeps nothing.
--
-- Each n is one diagnosis (kind 'diagnosis', ICD-10, effective 2021-12-01 … 2026-11-30 at a
-- clinic hour, China time, recorded 10 minutes to 2 hours later), drawn by hashes of n:
--   * `permille` of the n (default 70) are notifiable: a disease by survbench.disease_slot, its
--     day by that disease's season (survbench.day_slot), a resident among all (or among the
--     children for children's diseases); one in ten of them suspected (DG1-6 'W'), the rest
--     confirmed. A tenth of those n (h1 % 1000 < permille / 10) also get a follow-up visit 2–13
--     days later with the diagnosis confirmed: a repeat, or an upgrade, of the same case.
--   * the next permille / 10 n write nothing (the follow-ups took their place, so the chunk
--     writes about last − first + 1 rows), and the rest are everyday diagnoses
--     (survbench.common_slot) of any resident on any day.
-- Then the cases this transaction made get a report time as a reporting clinic's would have
-- been: the trigger stamps now(); here reported_at becomes the diagnosis time plus 1 to 30 hours
-- (random), with report_date and delay_minutes to match, and upgraded_at (also now()) the
-- upgrading diagnosis's time plus 2 hours.
\set ON_ERROR_STOP on
SET work_mem = '256MB';
SET jit = off;

BEGIN;

\if :outbreaks
INSERT INTO records.entries (id, resident_id, facility, kind, code, code_system, display, certainty, is_primary, status,
                             effective_at, recorded_at)
WITH o AS MATERIALIZED (
    -- Materialised first: one pass over the residents per outbreak, whatever the estimates.
    SELECT o.*, d.icd, d.display, d.child FROM survbench.outbreak o JOIN survbench.disease d ON d.code = o.disease
)
SELECT gen_random_uuid(), r.id, f.code, 'diagnosis', o.icd, 'ICD10', o.display, 'confirmed', true, 'active', t.at,
       t.at + interval '40 minutes'
FROM o
CROSS JOIN LATERAL (
    SELECT x.id, row_number() OVER () AS k
    FROM registry.residents x
    WHERE x.division = o.division AND x.pseudonym LIKE 'bench-%'
      AND (NOT o.child OR x.birth_date >= date '2010-01-01')
    ORDER BY md5(x.id::text || o.disease)
    LIMIT o.cases
) AS r
JOIN survbench.facility f ON f.slot = r.k % (SELECT count(*) FROM survbench.facility)
CROSS JOIN LATERAL (
    SELECT ((o.first_day + (r.k % o.days)::int) + time '08:00' + make_interval(mins => (r.k * 37 % 600)::int))
           AT TIME ZONE 'Asia/Shanghai' AS at
) AS t;
\else
WITH base AS (
    SELECT n,
           hashint4(n) & 2147483647 AS h1,
           hashint4(n # 624228497) & 2147483647 AS h2,
           hashint4(n # 1779033703) & 2147483647 AS h3,
           hashint4(n # 1013904242) & 2147483647 AS h4,
           hashint4(n # 338241895) & 2147483647 AS h5
    FROM generate_series(:first::int, :last::int) AS n
    WHERE (hashint4(n) & 2147483647) % 1000 < :permille
)
INSERT INTO records.entries (id, resident_id, facility, kind, code, code_system, display, certainty, is_primary, status,
                             effective_at, recorded_at)
SELECT gen_random_uuid(),
       md5('qianyun-surveillance-bench/' || (1 + b.h5 % CASE WHEN d.child THEN :residents * 16 / 100 ELSE :residents END))::uuid,
       f.code, 'diagnosis', d.icd, 'ICD10', d.display,
       CASE WHEN v.visit = 0 AND b.h3 % 10 = 0 THEN 'suspected' ELSE 'confirmed' END, true, 'active',
       t.at, t.at + make_interval(mins => 10 + b.h4 % 110)
FROM base b
JOIN survbench.disease_slot ds ON ds.slot = b.h2 % 100000
JOIN survbench.disease d ON d.idx = ds.idx
JOIN survbench.day_slot dy ON dy.idx = ds.idx AND dy.slot = b.h3 % 20000
JOIN survbench.facility f ON f.slot = b.h4 % (SELECT count(*) FROM survbench.facility)
CROSS JOIN LATERAL (VALUES (0), (1)) AS v(visit)
CROSS JOIN LATERAL (
    SELECT ((date '2021-12-01' + least(1825, dy.day + v.visit * (2 + b.h2 % 12))) + time '08:00'
            + make_interval(mins => b.h1 / 1000 % 600)) AT TIME ZONE 'Asia/Shanghai' AS at
) AS t
WHERE (v.visit = 0 OR b.h1 % 1000 < :permille / 10)
  AND (1 + b.h5 % CASE WHEN d.child THEN :residents * 16 / 100 ELSE :residents END) % :loaders = :loader;

WITH base AS (
    SELECT n,
           hashint4(n) & 2147483647 AS h1,
           hashint4(n # 624228497) & 2147483647 AS h2,
           hashint4(n # 1779033703) & 2147483647 AS h3,
           hashint4(n # 1013904242) & 2147483647 AS h4,
           hashint4(n # 338241895) & 2147483647 AS h5
    FROM generate_series(:first::int, :last::int) AS n
    WHERE (hashint4(n) & 2147483647) % 1000 >= :permille + :permille / 10
)
INSERT INTO records.entries (id, resident_id, facility, kind, code, code_system, display, certainty, is_primary, status,
                             effective_at, recorded_at)
SELECT gen_random_uuid(), md5('qianyun-surveillance-bench/' || (1 + b.h5 % :residents))::uuid, f.code, 'diagnosis', c.code,
       'ICD10', c.display, 'confirmed', true, 'active', t.at, t.at + make_interval(mins => 10 + b.h4 % 110)
FROM base b
JOIN survbench.common_slot c ON c.slot = b.h2 % 1000
JOIN survbench.facility f ON f.slot = b.h4 % (SELECT count(*) FROM survbench.facility)
CROSS JOIN LATERAL (
    SELECT ((date '2021-12-01' + (b.h3 % 1826)::int) + time '08:00' + make_interval(mins => b.h1 / 1000 % 600))
           AT TIME ZONE 'Asia/Shanghai' AS at
) AS t
WHERE (1 + b.h5 % :residents) % :loaders = :loader;
\endif

-- now() is this transaction's start: exactly the cases (and upgrades) it made.
UPDATE surveillance.cases c
   SET reported_at = x.at, report_date = (x.at AT TIME ZONE 'Asia/Shanghai')::date,
       delay_minutes = greatest(0, floor(extract(epoch FROM x.at - c.diagnosed_at) / 60))::int
  FROM (SELECT id, diagnosed_at + make_interval(mins => 60 + floor(random() * 1740)::int) AS at
          FROM surveillance.cases WHERE reported_at = now()) AS x
 WHERE c.id = x.id;
UPDATE surveillance.cases SET upgraded_at = last_event_at + interval '2 hours' WHERE upgraded_at = now();

:finish;
