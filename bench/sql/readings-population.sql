-- The enrolled population of bench/readings-ingest, written straight into the tables (the
-- registry's API would take an hour for 100,000 people; here it takes seconds). Run as the owner
-- of the service's tables, after the service has started once (migrations applied, and
-- chronic_care.programmes synced from schemas/rules/programmes.json):
--   psql -v residents=100000 -f bench/sql/readings-population.sql "$QIANYUN_DATABASE_URL"
--
-- Residents: ids md5('qianyun-readings-bench/<n>')::uuid, names from common surnames and given
-- names (with their pinyin), born 1940-1985, registered by (and living in the division of) one of
-- the community or township clinics of the demo fixtures. No identity document (the document
-- columns stay NULL), so neither the matcher's keys nor a card are needed; the pseudonym is a
-- placeholder (only audit rows and extracts read it, and the ingest path writes none with it).
--
-- Enrolments (source 'clinician', enrolled by 'bench-seed'), by a hash of n:
--   55 % hypertension, 25 % type 2 diabetes, 10 % both, 5 % coronary heart disease,
--   5 % coronary heart disease and hypertension
-- (hypertension 70 %, diabetes 35 %, CHD 10 % of residents), managed by the resident's clinic,
-- enrolled 1 to 13 days ago, follow-up every 90 days and next due 90 days after enrolment: no
-- absence (14 days) or overdue follow-up rule can fire, so every alert of the run comes from the
-- readings sent.
\set ON_ERROR_STOP on

BEGIN;

CREATE TEMP TABLE bench_clinics ON COMMIT DROP AS
SELECT row_number() OVER (ORDER BY code) - 1 AS slot, code, division
FROM registry.facilities
WHERE level = 'primary' AND primary_kind IN ('community', 'township') AND active;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM bench_clinics) THEN
        RAISE EXCEPTION 'no active community or township clinic in registry.facilities (load fixtures/demo first)';
    END IF;
    IF (SELECT count(*) FROM chronic_care.programmes WHERE active
         AND code IN ('hypertension', 'type2-diabetes', 'coronary-heart-disease')) <> 3 THEN
        RAISE EXCEPTION 'chronic_care.programmes lacks the three programmes (start the service once first)';
    END IF;
END
$$;

CREATE TEMP TABLE bench_people ON COMMIT DROP AS
SELECT n,
       md5('qianyun-readings-bench/' || n)::uuid AS id,
       -- Two independent pseudo-random numbers from 0 to 2^31-1.
       hashint4(n) & 2147483647 AS h1,
       hashint4(n # 1431655765) & 2147483647 AS h2
FROM generate_series(1, :residents) AS n;

INSERT INTO registry.residents (id, name, name_pinyin, sex, birth_date, division, registered_by, pseudonym)
SELECT p.id,
       s.surnames[1 + p.h1 % 20] || s.given[1 + p.h2 % 24],
       s.surnames_pinyin[1 + p.h1 % 20] || s.given_pinyin[1 + p.h2 % 24],
       1 + (p.n % 2),
       date '1940-01-01' + (p.h2 / 24) % 16436,
       c.division,
       c.code,
       'bench-' || md5('pseudonym/' || p.n)
FROM bench_people p
CROSS JOIN (SELECT count(*) AS clinics FROM bench_clinics) AS k
JOIN bench_clinics c ON c.slot = p.n % k.clinics
CROSS JOIN (
    SELECT ARRAY['王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周', '徐', '孙', '马', '朱', '胡', '郭', '何', '罗', '龙', '石']
               AS surnames,
           ARRAY['wang', 'li', 'zhang', 'liu', 'chen', 'yang', 'huang', 'zhao', 'wu', 'zhou', 'xu', 'sun', 'ma', 'zhu', 'hu',
                 'guo', 'he', 'luo', 'long', 'shi'] AS surnames_pinyin,
           ARRAY['伟', '芳', '娜', '敏', '静', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明', '超', '秀英', '桂英',
                 '建国', '志强', '丽', '平', '刚', '华'] AS given,
           ARRAY['wei', 'fang', 'na', 'min', 'jing', 'qiang', 'lei', 'jun', 'yang', 'yong', 'yan', 'jie', 'juan', 'tao', 'ming',
                 'chao', 'xiuying', 'guiying', 'jianguo', 'zhiqiang', 'li', 'ping', 'gang', 'hua'] AS given_pinyin
) AS s;

INSERT INTO chronic_care.enrolments (id, resident_id, programme, facility, risk_level, source, enrolled_by, enrolled_at,
                                     follow_up_days, next_follow_up_due)
SELECT gen_random_uuid(), p.id, g.programme, r.registered_by, (ARRAY['low', 'medium', 'high'])[1 + p.h2 % 3], 'clinician',
       'bench-seed', e.enrolled_at, 90, e.enrolled_at + interval '90 days'
FROM bench_people p
JOIN registry.residents r ON r.id = p.id
CROSS JOIN LATERAL (SELECT now() - make_interval(days => 1 + p.h1 % 13, mins => p.h2 % 1440) AS enrolled_at) AS e
CROSS JOIN LATERAL unnest(CASE
        WHEN p.h1 % 100 < 55 THEN ARRAY['hypertension']
        WHEN p.h1 % 100 < 80 THEN ARRAY['type2-diabetes']
        WHEN p.h1 % 100 < 90 THEN ARRAY['hypertension', 'type2-diabetes']
        WHEN p.h1 % 100 < 95 THEN ARRAY['coronary-heart-disease']
        ELSE ARRAY['coronary-heart-disease', 'hypertension']
    END) AS g(programme);

COMMIT;

ANALYZE registry.residents;
ANALYZE chronic_care.enrolments;
