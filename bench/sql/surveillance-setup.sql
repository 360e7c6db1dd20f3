-- The synthetic population and the sampling tables of bench/surveillance, written straight into
-- the tables. Run as the owner of the service's tables after the service has started once
-- (migrations applied; surveillance.diseases and disease_codes synced from the definitions):
--   psql -v residents=2000000 -v divisions="$(cat schemas/code-tables/guizhou-divisions.json)" \
--        -f bench/sql/surveillance-setup.sql "$QIANYUN_DATABASE_URL"
-- The diagnoses themselves are written chunk by chunk by bench/sql/surveillance-chunk.sql.
--
-- Residents: ids md5('qianyun-surveillance-bench/<n>')::uuid, n = 1 … residents. The first 16 %
-- are children (born 2010–2021: the record's children's diseases pick them), the rest adults
-- (born 1930–2004); sex male or female by a hash of n. Each lives in one of Guizhou's 88
-- counties, drawn with a weight: 1 to 2 by a hash of the code, +1.5 for a city district (codes
-- xxxx01–xxxx20), +0.8 for a county-level city (xxxx81–xxxx82), so Guiyang's and Zunyi's
-- districts are two to three times a mountain county. No identity document, no card.
--
-- Sampling tables in schema `survbench` (hash joins replace weighted draws, set-based):
--   county_slot(slot 0–9999 → division)           the residents' counties, by weight
--   common_slot(slot 0–999 → ICD-10 code)          the non-notifiable diagnoses' mix
--   disease(idx, code, icd, weight, child, …)      the notifiable mix and each disease's season
--   disease_slot(slot 0–99999 → disease idx)       diseases by weight (per 100,000 notifiable)
--   day_slot(disease idx, slot 0–19999 → day)      each disease's days over the five years, by its
--                                                  seasonal curve (and COVID-19's waves)
--   outbreak(disease, division, first day, days, cases)  clusters injected on top
\set ON_ERROR_STOP on

BEGIN;

DROP SCHEMA IF EXISTS survbench CASCADE;
CREATE SCHEMA survbench;

CREATE TABLE survbench.county_slot AS
WITH counties AS (
    SELECT c->>'code' AS division,
           1.0 + (hashtext(c->>'code') & 1023) / 1023.0
             + CASE WHEN right(c->>'code', 2)::int BETWEEN 1 AND 20 THEN 1.5
                    WHEN right(c->>'code', 2)::int BETWEEN 81 AND 82 THEN 0.8 ELSE 0 END AS weight
    FROM jsonb_array_elements(:'divisions'::jsonb -> 'prefectures') AS p,
         jsonb_array_elements(p -> 'counties') AS c
), cumulative AS (
    SELECT division, floor(10000 * sum(weight) OVER (ORDER BY division) / sum(weight) OVER ())::int AS upto,
           floor(10000 * (sum(weight) OVER (ORDER BY division) - weight) / sum(weight) OVER ())::int AS from_slot
    FROM counties
)
SELECT s AS slot, division FROM cumulative, generate_series(from_slot, upto - 1) AS s;
ALTER TABLE survbench.county_slot ADD PRIMARY KEY (slot);

-- Everyday diagnoses of primary care and outpatient clinics, in per-mille.
CREATE TABLE survbench.common_slot AS
WITH mix(code, display, weight) AS (VALUES
    ('I10', '原发性高血压', 200), ('E11.9', '2型糖尿病', 90), ('J06.9', '急性上呼吸道感染', 150),
    ('K29.7', '胃炎', 70), ('J20.9', '急性支气管炎', 60), ('M54.5', '腰痛', 45), ('J02.9', '急性咽炎', 40),
    ('K21.9', '胃食管反流病', 25), ('I25.1', '动脉粥样硬化性心脏病', 35), ('E78.5', '高脂血症', 40),
    ('M17.9', '膝关节病', 25), ('N39.0', '泌尿道感染', 25), ('L30.9', '皮炎', 25), ('H10.9', '结膜炎', 15),
    ('J45.9', '哮喘', 15), ('I63.9', '脑梗死', 25), ('K59.0', '便秘', 15), ('R51', '头痛', 20), ('Z00.0', '健康检查', 30),
    ('O80.9', '单胎顺产', 10), ('S93.4', '踝扭伤', 15), ('F32.9', '抑郁发作', 10), ('D64.9', '贫血', 15)
), cumulative AS (
    SELECT code, display,
           floor(1000 * sum(weight) OVER (ORDER BY code) / sum(weight) OVER ())::int AS upto,
           floor(1000 * (sum(weight) OVER (ORDER BY code) - weight) / sum(weight) OVER ())::int AS from_slot
    FROM mix
)
SELECT s AS slot, code, display FROM cumulative, generate_series(from_slot, upto - 1) AS s;
ALTER TABLE survbench.common_slot ADD PRIMARY KEY (slot);

-- The notifiable mix per 100,000 notifiable diagnoses (roughly a province's reported shares;
-- plague, SARS, poliomyelitis and diphtheria never, cholera almost never) and each disease's season:
-- a peak day of the year with an amplitude (0 flat), optionally a second peak.
CREATE TABLE survbench.disease (
    idx int PRIMARY KEY,
    code text NOT NULL,
    icd text NOT NULL,
    display text NOT NULL,
    weight numeric NOT NULL,
    child boolean NOT NULL,
    peak int, amplitude numeric NOT NULL DEFAULT 0,
    peak2 int, amplitude2 numeric NOT NULL DEFAULT 0
);
INSERT INTO survbench.disease (idx, code, icd, display, weight, child, peak, amplitude, peak2, amplitude2)
SELECT row_number() OVER (ORDER BY m.code), m.code, m.icd, m.display, m.weight, m.child, m.peak, m.amplitude, m.peak2, m.amplitude2
FROM (VALUES
    ('influenza', 'J11.1', '流行性感冒', 29000, false, 15, 6.0, 190, 1.0),
    ('infectious-diarrhoea', 'A09.0', '感染性腹泻', 12000, false, 205, 2.0, 15, 0.6),
    ('hfmd', 'B08.4', '手足口病', 11000, true, 140, 4.0, 275, 1.5),
    ('covid-19', 'U07.1', '新型冠状病毒感染', 8000, false, NULL, 0, NULL, 0),
    ('hepatitis-b', 'B18.1', '慢性乙型病毒性肝炎', 9000, false, 80, 0.2, NULL, 0),
    ('tuberculosis-pulmonary', 'A15.0', '肺结核', 6500, false, 90, 0.4, NULL, 0),
    ('syphilis', 'A51.9', '早期梅毒', 6500, false, NULL, 0, NULL, 0),
    ('mumps', 'B26.9', '流行性腮腺炎', 2500, true, 130, 1.5, 320, 0.8),
    ('hepatitis-c', 'B18.2', '慢性丙型病毒性肝炎', 2000, false, NULL, 0, NULL, 0),
    ('hiv-aids', 'B20.9', '艾滋病', 1500, false, NULL, 0, NULL, 0),
    ('acute-haemorrhagic-conjunctivitis', 'B30.3', '急性出血性结膜炎', 1500, false, 240, 3.0, NULL, 0),
    ('gonorrhoea', 'A54.0', '淋病', 1200, false, NULL, 0, NULL, 0),
    ('scarlet-fever', 'A38', '猩红热', 1000, true, 140, 2.0, 350, 2.0),
    ('dysentery', 'A03.9', '细菌性痢疾', 800, false, 210, 2.5, NULL, 0),
    ('pertussis', 'A37.9', '百日咳', 800, true, 170, 1.5, NULL, 0),
    ('hepatitis-e', 'B17.2', '戊型病毒性肝炎', 600, false, 60, 0.8, NULL, 0),
    ('typhoid-paratyphoid', 'A01.0', '伤寒', 400, false, 220, 1.5, NULL, 0),
    ('hepatitis-a', 'B15.9', '甲型病毒性肝炎', 300, false, 60, 0.8, NULL, 0),
    ('hepatitis-unspecified', 'B19.9', '未分型病毒性肝炎', 300, false, NULL, 0, NULL, 0),
    ('rubella', 'B06.9', '风疹', 200, true, 120, 2.0, NULL, 0),
    ('dengue', 'A90', '登革热', 200, false, 260, 8.0, NULL, 0),
    ('malaria', 'B54', '疟疾', 100, false, 200, 1.0, NULL, 0),
    ('brucellosis', 'A23.9', '布鲁氏菌病', 100, false, 150, 1.0, NULL, 0),
    ('measles', 'B05.9', '麻疹', 100, true, 100, 2.0, NULL, 0),
    ('hfrs', 'A98.5', '肾综合征出血热', 100, false, 320, 2.5, 150, 1.0),
    ('japanese-encephalitis', 'A83.0', '流行性乙型脑炎', 80, true, 215, 8.0, NULL, 0),
    ('leptospirosis', 'A27.9', '钩端螺旋体病', 80, false, 250, 5.0, NULL, 0),
    ('echinococcosis', 'B67.9', '包虫病', 50, false, NULL, 0, NULL, 0),
    ('typhus', 'A75.2', '斑疹伤寒', 50, false, 280, 3.0, NULL, 0),
    ('schistosomiasis', 'B65.9', '血吸虫病', 30, false, 230, 2.0, NULL, 0),
    ('rabies', 'A82.9', '狂犬病', 30, false, 230, 1.0, NULL, 0),
    ('mpox', 'B04', '猴痘', 30, false, NULL, 0, NULL, 0),
    ('leprosy', 'A30.9', '麻风病', 20, false, NULL, 0, NULL, 0),
    ('meningococcal-meningitis', 'A39.0', '流行性脑脊髓膜炎', 20, true, 60, 2.0, NULL, 0),
    ('kala-azar', 'B55.0', '黑热病', 10, false, NULL, 0, NULL, 0),
    ('neonatal-tetanus', 'A33', '新生儿破伤风', 10, true, NULL, 0, NULL, 0),
    ('anthrax', 'A22.9', '炭疽', 10, false, 210, 2.0, NULL, 0),
    ('filariasis', 'B74.9', '丝虫病', 5, false, NULL, 0, NULL, 0),
    ('cholera', 'A00.9', '霍乱', 3, false, 215, 3.0, NULL, 0)
) AS m(code, icd, display, weight, child, peak, amplitude, peak2, amplitude2);

DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(d.code || ' (' || d.icd || ')', ', ') INTO missing
    FROM survbench.disease d
    WHERE NOT EXISTS (SELECT 1 FROM surveillance.disease_codes dc
                      WHERE dc.disease = d.code AND upper(replace(d.icd, '.', '')) LIKE dc.prefix || '%');
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'not notifiable by surveillance.disease_codes (start the service once first?): %', missing;
    END IF;
END
$$;

CREATE TABLE survbench.disease_slot AS
WITH cumulative AS (
    SELECT idx, floor(100000 * sum(weight) OVER (ORDER BY idx) / sum(weight) OVER ())::int AS upto,
           floor(100000 * (sum(weight) OVER (ORDER BY idx) - weight) / sum(weight) OVER ())::int AS from_slot
    FROM survbench.disease
)
SELECT s AS slot, idx FROM cumulative, generate_series(from_slot, upto - 1) AS s;
ALTER TABLE survbench.disease_slot ADD PRIMARY KEY (slot);

-- Day 0 is 2021-12-01, the last day 1825 is 2026-11-30. A seasonal disease's weight on a day is
-- 1 + A·exp(3·(cos(2π(doy − peak)/365.25) − 1)) (+ the same for a second peak): a peak some six
-- weeks wide. COVID-19: the December 2022 wave, then smaller ones in May 2023 and autumn 2024.
CREATE TABLE survbench.day_slot AS
WITH days AS (
    SELECT d.idx, day,
           CASE WHEN d.code = 'covid-19' THEN
                    0.4 + 60 * exp(-least(50, (((date '2021-12-01' + day) - date '2022-12-22') / 12.0)::float8 ^ 2))
                        + 6 * exp(-least(50, (((date '2021-12-01' + day) - date '2023-05-20') / 18.0)::float8 ^ 2))
                        + 3 * exp(-least(50, (((date '2021-12-01' + day) - date '2024-08-25') / 20.0)::float8 ^ 2))
                        + CASE WHEN date '2021-12-01' + day < date '2022-12-01' THEN 0.6 ELSE 0 END
                ELSE 1
                    + d.amplitude::float8 * exp(3 * (cos(2 * pi() * (extract(doy FROM date '2021-12-01' + day) - coalesce(d.peak, 0)) / 365.25) - 1))
                    + d.amplitude2::float8 * exp(3 * (cos(2 * pi() * (extract(doy FROM date '2021-12-01' + day) - coalesce(d.peak2, 0)) / 365.25) - 1))
           END
           -- Weekends see fewer diagnoses.
           * CASE WHEN extract(isodow FROM date '2021-12-01' + day) >= 6 THEN 0.7 ELSE 1 END AS weight
    FROM survbench.disease d, generate_series(0, 1825) AS day
), cumulative AS (
    SELECT idx, day, floor(20000 * sum(weight) OVER w / sum(weight) OVER (PARTITION BY idx))::int AS upto,
           floor(20000 * (sum(weight) OVER w - weight) / sum(weight) OVER (PARTITION BY idx))::int AS from_slot
    FROM days
    WINDOW w AS (PARTITION BY idx ORDER BY day)
)
SELECT idx, s AS slot, day FROM cumulative, generate_series(from_slot, upto - 1) AS s;
ALTER TABLE survbench.day_slot ADD PRIMARY KEY (idx, slot);

-- Clusters on top of the background (a school, a village well, a care home): the last four are
-- in the fortnight before 2026-11-30, the day the signal run evaluates.
CREATE TABLE survbench.outbreak (disease text, division text, first_day date, days int, cases int);
INSERT INTO survbench.outbreak VALUES
    ('hfmd', '520302', '2023-05-08', 21, 140),
    ('infectious-diarrhoea', '522601', '2024-07-15', 10, 90),
    ('mumps', '520111', '2023-04-03', 28, 60),
    ('influenza', '520502', '2025-01-06', 14, 300),
    ('scarlet-fever', '522301', '2025-12-01', 21, 45),
    ('dysentery', '520402', '2022-08-01', 7, 35),
    ('influenza', '520102', '2026-11-17', 14, 260),
    ('measles', '522701', '2026-11-20', 11, 12),
    ('infectious-diarrhoea', '522634', '2026-11-25', 6, 40),
    ('cholera', '522301', '2026-11-28', 1, 1);

-- The population.
INSERT INTO registry.residents (id, name, name_pinyin, sex, birth_date, division, pseudonym)
SELECT md5('qianyun-surveillance-bench/' || n)::uuid,
       (ARRAY['王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周', '徐', '孙', '马', '朱', '胡', '郭', '何', '罗', '龙', '石'])[1 + h1 % 20]
           || (ARRAY['伟', '芳', '娜', '敏', '静', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明', '超'])[1 + h2 % 16],
       (ARRAY['wang', 'li', 'zhang', 'liu', 'chen', 'yang', 'huang', 'zhao', 'wu', 'zhou', 'xu', 'sun', 'ma', 'zhu', 'hu', 'guo',
              'he', 'luo', 'long', 'shi'])[1 + h1 % 20]
           || (ARRAY['wei', 'fang', 'na', 'min', 'jing', 'qiang', 'lei', 'jun', 'yang', 'yong', 'yan', 'jie', 'juan', 'tao', 'ming',
                     'chao'])[1 + h2 % 16],
       1 + (h1 / 20) % 2,
       CASE WHEN n <= :residents * 16 / 100 THEN date '2010-01-01' + (h2 / 16) % 4383
            ELSE date '1930-01-01' + (h2 / 16) % 27393 END,
       c.division,
       'bench-' || md5('qianyun-surveillance-bench/pseudonym/' || n)
FROM (SELECT n, hashint4(n) & 2147483647 AS h1, hashint4(n # 1431655765) & 2147483647 AS h2
      FROM generate_series(1, :residents) AS n) AS p
JOIN survbench.county_slot c ON c.slot = (hashint4(p.n # 715827882) & 2147483647) % 10000;

-- Diagnosing facilities: the demo fixtures' (which one does not matter to detection).
CREATE TABLE survbench.facility AS
SELECT row_number() OVER (ORDER BY code)::int - 1 AS slot, code FROM registry.facilities WHERE active;

COMMIT;

ANALYZE registry.residents;
ANALYZE survbench.county_slot;
ANALYZE survbench.common_slot;
ANALYZE survbench.disease;
ANALYZE survbench.disease_slot;
ANALYZE survbench.day_slot;
ANALYZE survbench.facility;
ANALYZE survbench.outbreak;
