-- bench/surveillance's fallback when the detection trigger is too slow for a ten-million-row
-- record on the machine at hand: the diagnoses were written with entries_case disabled, and this
-- writes the cases the trigger would have made, set-based, in one statement per table:
--   psql -f bench/sql/surveillance-cases.sql "$QIANYUN_DATABASE_URL"
--
-- It mirrors surveillance.report_case (migration 0012) as the go-live back-fill runs it, item by
-- item in time order:
--   * an item reports disease d when its code without blanks and dots, upper-cased, has one of
--     its first 3–6 characters in surveillance.disease_codes (diagnoses that are current, coded,
--     not refuted; each disease once per item), as `suspected` when the item is suspected, else
--     as the disease's diagnosis_classification;
--   * per resident and disease, in time order (effective_at, else recorded_at; then id), an item
--     joins the open case when it is at most episode_days after the case's last report (the
--     episode window; no window for a disease without episode_days), else opens a new case;
--   * the case: onset, diagnosis and first-report facility from its first item; classification
--     the highest of its items'; confirmed_at the first confirmed item's time; last_event_at the
--     last item's; division, sex and age at diagnosis from the resident; limit_hours from the
--     disease; source_entry the first item;
--   * one case_events row per item: `created` for the first, `upgraded` when it raised the
--     classification, else `repeat`.
-- What the trigger stamps with now() gets a time as a reporting clinic's would have been (as the
-- trigger path's chunks do): reported_at the diagnosis plus 1 to 30 hours (random), report_date
-- and delay_minutes to match; upgraded_at the upgrading item's time plus 2 hours;
-- case_events.recorded_at the item's time plus 1 hour. Lab results are not handled (the
-- benchmark's record has none).
\set ON_ERROR_STOP on
SET work_mem = '512MB';
SET jit = off;

BEGIN;

CREATE TEMP TABLE reports ON COMMIT DROP AS
WITH items AS (
    SELECT e.id, e.resident_id, e.facility, e.certainty, coalesce(e.effective_at, e.recorded_at) AS at,
           upper(regexp_replace(e.code, '[\s.]', '', 'g')) AS normalised
    FROM records.entries e
    WHERE e.kind = 'diagnosis' AND e.current AND e.code IS NOT NULL AND coalesce(e.certainty, 'confirmed') <> 'refuted'
), matched AS (
    SELECT DISTINCT i.id, i.resident_id, i.facility, i.at, dc.disease,
           CASE WHEN i.certainty = 'suspected' THEN 'suspected' ELSE d.diagnosis_classification END AS cls
    FROM items i
    CROSS JOIN LATERAL (VALUES (left(i.normalised, 3)), (left(i.normalised, 4)), (left(i.normalised, 5)), (left(i.normalised, 6)))
        AS p(prefix)
    JOIN surveillance.disease_codes dc ON dc.prefix = p.prefix
    JOIN surveillance.diseases d ON d.code = dc.disease AND d.active
), gaps AS (
    SELECT m.*, d.episode_days,
           CASE WHEN lag(m.at) OVER w IS NULL THEN 1
                WHEN d.episode_days IS NOT NULL AND m.at > lag(m.at) OVER w + make_interval(days => d.episode_days) THEN 1
                ELSE 0 END AS opens
    FROM matched m JOIN surveillance.diseases d ON d.code = m.disease
    WINDOW w AS (PARTITION BY m.resident_id, m.disease ORDER BY m.at, m.id)
), episodes AS (
    SELECT g.*, sum(opens) OVER (PARTITION BY resident_id, disease ORDER BY at, id) AS episode
    FROM gaps g
)
SELECT e.*, surveillance.classification_rank(e.cls) AS rank,
       coalesce(max(surveillance.classification_rank(e.cls)) OVER (
           PARTITION BY e.resident_id, e.disease, e.episode ORDER BY e.at, e.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
           AS rank_before,
       row_number() OVER (PARTITION BY e.resident_id, e.disease, e.episode ORDER BY e.at, e.id) AS k
FROM episodes e;

CREATE TEMP TABLE made ON COMMIT DROP AS
SELECT gen_random_uuid() AS case_id, r.resident_id, r.disease, r.episode,
       (array_agg(r.id ORDER BY r.at, r.id))[1] AS first_entry,
       (array_agg(r.facility ORDER BY r.at, r.id))[1] AS facility,
       min(r.at) AS first_at, max(r.at) AS last_at,
       (ARRAY['suspected', 'clinical', 'confirmed'])[max(r.rank)] AS classification,
       min(r.at) FILTER (WHERE r.cls = 'confirmed') AS confirmed_at,
       max(r.at) FILTER (WHERE r.k > 1 AND r.rank > r.rank_before) AS upgraded_item_at,
       min(r.at) + make_interval(mins => 60 + floor(random() * 1740)::int) AS reported_at
FROM reports r
GROUP BY r.resident_id, r.disease, r.episode;

INSERT INTO surveillance.cases
    (id, resident_id, disease, definition_version, classification, onset_at, diagnosed_at, reported_at, confirmed_at,
     last_event_at, onset_date, report_date, facility, division, age_years, sex, delay_minutes, limit_hours, source_entry,
     upgraded_at)
SELECT m.case_id, m.resident_id, m.disease, d.version, m.classification, m.first_at, m.first_at, m.reported_at, m.confirmed_at,
       m.last_at, (m.first_at AT TIME ZONE 'Asia/Shanghai')::date, (m.reported_at AT TIME ZONE 'Asia/Shanghai')::date,
       m.facility, x.division,
       CASE WHEN x.birth_date IS NOT NULL
            THEN extract(year FROM age((m.first_at AT TIME ZONE 'Asia/Shanghai')::date, x.birth_date))::smallint END,
       x.sex, greatest(0, floor(extract(epoch FROM m.reported_at - m.first_at) / 60))::integer, d.report_within_hours,
       m.first_entry, m.upgraded_item_at + interval '2 hours'
FROM made m
JOIN surveillance.diseases d ON d.code = m.disease
JOIN registry.residents x ON x.id = m.resident_id;

INSERT INTO surveillance.case_events (case_id, entry_id, source, classification, effect, occurred_at, recorded_at)
SELECT m.case_id, r.id, 'diagnosis', r.cls,
       CASE WHEN r.k = 1 THEN 'created' WHEN r.rank > r.rank_before THEN 'upgraded' ELSE 'repeat' END,
       r.at, r.at + interval '1 hour'
FROM reports r
JOIN made m USING (resident_id, disease, episode)
ORDER BY m.case_id, r.k;

COMMIT;
