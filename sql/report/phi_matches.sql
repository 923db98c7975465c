-- Which of the texts in $texts (finding details, paths, notes, labels) contain a patient name of the
-- index, so that the report can hide them. A name is looked for as norm_name() gives it and as people
-- write it (^ as space, underscore or comma; given name first), case and whitespace ignored. To stay
-- fast on millions of files, a text is only compared with the names whose first or last word is a word of it.
WITH base AS (
    SELECT DISTINCT norm_name(patient_name) AS name
    FROM files
    WHERE patient_name IS NOT NULL
    UNION
    SELECT norm_name(patient_name) FROM manifest WHERE patient_name IS NOT NULL  -- names corrected in the old PACS's database
),
variants AS (
    SELECT DISTINCT unnest([
               name,
               regexp_replace(name, '\^+', ' ', 'g'),
               regexp_replace(name, '\^+', '_', 'g'),
               regexp_replace(name, '\^+', ', ', 'g'),
               CASE WHEN split_part(name, '^', 2) <> ''
                    THEN split_part(name, '^', 2) || ' ' || split_part(name, '^', 1) END
           ]) AS variant
    FROM base
    WHERE name IS NOT NULL
),
names AS (
    SELECT DISTINCT variant,
           unnest([regexp_extract(variant, '[\pL\pN]+'),
                   regexp_extract(variant, '([\pL\pN]+)[^\pL\pN]*$', 1)]) AS word
    FROM variants
    WHERE variant IS NOT NULL
),
texts AS (
    SELECT generate_subscripts($texts, 1) AS i,
           upper(regexp_replace(unnest($texts), '\s+', ' ', 'g')) AS text
),
words AS (
    SELECT DISTINCT i, unnest(regexp_split_to_array(text, '[^\pL\pN]+')) AS word
    FROM texts
)
SELECT DISTINCT t.i
FROM words w
JOIN names n ON n.word = w.word
JOIN texts t ON t.i = w.i
WHERE contains(t.text, n.variant)
ORDER BY t.i;
