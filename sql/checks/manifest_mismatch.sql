-- Header and the old PACS's database disagree on patient or study attributes (warning) or on UIDs (error); the detail names the attributes and both values
SELECT CASE WHEN len(uids) > 0 THEN 'error' ELSE 'warning' END AS severity,
       path,
       sop_instance_uid,
       array_to_string(list_transform(uids || demographics, lambda x: x.attribute), ',') AS group_key,
       'file and database differ: '
       || array_to_string(list_transform(uids || demographics,
              lambda x: x.attribute || ' file ' || coalesce('''' || x.file || '''', '(empty)')
                        || ', database ''' || x.manifest || ''''), '; ') AS detail,
       NULL::BOOLEAN AS recoverable
FROM manifest_compare
WHERE len(uids) + len(demographics) > 0
