-- How an export's values are normalised on the way in (the loader applies them per column while
-- reading the file into the manifest table): as pacscopy normalises headers, padding stripped
-- and empty -> NULL; dates as YYYYMMDD (YYYY-MM-DD, YYYY.MM.DD, YYYY/MM/DD and timestamps are
-- converted when they are real dates; anything else is kept as given, for validate.sql to name it).
CREATE OR REPLACE TEMP MACRO manifest_value(v) AS nullif(trim(v), '');
CREATE OR REPLACE TEMP MACRO manifest_date(v) AS
    CASE WHEN regexp_full_match(manifest_value(v), '\d{4}[-./]\d{2}[-./]\d{2}([ T].*)?')
              AND try_strptime(substr(manifest_value(v), 1, 4) || substr(manifest_value(v), 6, 2)
                               || substr(manifest_value(v), 9, 2), '%Y%m%d') IS NOT NULL
         THEN substr(manifest_value(v), 1, 4) || substr(manifest_value(v), 6, 2) || substr(manifest_value(v), 9, 2)
         ELSE manifest_value(v) END;
